"""The gateway's files hold no patient identity in clear (issue 10 §1.8): after reports with a known
ID number and name are queued (with a PDF, refused with a reason naming the patient) and the
preload cache holds that patient's answers and decisions, neither the ID number nor the name is
in the bytes of ``outbox.db``, its ``-wal``, or the cache's files; the data keys live in ``keys/``
beside the outbox (0700, file 0600). An outbox and a cache written by the older, clear version are
converted when opened — in batches, resumable, nothing lost or doubled; ``huren gateway keys
rotate-data`` re-seals everything under a new key, resumably."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest

from huren import cli as huren_cli
from huren.crypto import aead
from huren.gateway import cli as gwcli
from huren.gateway import outbox_seal, preload_seal
from huren.gateway.config import ConfigError, parse
from huren.gateway.config import load as load_config
from huren.gateway.model import Record
from huren.gateway.outbox import Outbox, digest, report_key
from huren.gateway.preload_store import Entry, PreloadStore
from huren.gateway.runner import outbox_cipher
from huren.gateway.sealing import Sealer, data_keys
from tests import samples

ID_NO = samples.ID_NO
NAME = "欧阳明月"
REPORT_ID = "r1AbCdEfGhIjKlMnOpQrSt"  # the platform's opaque report id (22 characters)


def _lab(form: str) -> dict[str, Any]:
    p = samples.lab()
    p["labmaster"] |= {"report_form_no": form, "id_no": ID_NO, "name": NAME}
    p["labmaster"].pop("pdf", None)
    for item in p["lab_subitem"]:
        item["report_form_no"] = form
    return p


def _record(form: str, **kw: Any) -> Record:
    p = _lab(form)
    return Record("lab", report_key("lab", p["labmaster"]), p, "lis", form, **kw)


PDF = b"%PDF-1.4\n(" + NAME.encode() + b" " + ID_NO.encode() + b")\n%%EOF\n"


def _accept_row() -> dict[str, Any]:
    return {"id_type_code": "01", "id_no": ID_NO, "name": NAME, "new_event_no": "V1", "hr_report_form_no": "F1"}


def _entry() -> Entry:
    master = _lab("F1")["labmaster"] | {"report_id": REPORT_ID, "item": [{"class_code": "AG", "expired_time": ""}]}
    return Entry("01", ID_NO, 1000.0, 90, [{"name": NAME, "id_no": ID_NO, "item_code": "AG"}], {"labmaster": [master], "exammaster": []})


def _leaks(*paths: Path) -> dict[str, list[str]]:
    """Which files hold the ID number or the name (as UTF-8, as JSON escapes)."""
    needles = {
        "id_no": [ID_NO.encode()],
        "name": [NAME.encode(), json.dumps(NAME).strip('"').encode()],
    }
    found: dict[str, list[str]] = {}
    for p in paths:
        data = p.read_bytes() if p.exists() else b""
        for what, forms in needles.items():
            if any(f in data for f in forms):
                found.setdefault(p.name, []).append(what)
    return found


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _kids(db: Path, table: str, column: str) -> set[int]:
    """Key ids of the envelopes in ``table.column`` (read without opening them)."""
    with sqlite3.connect(db) as conn:
        return {aead.FieldCipher.header(bytes(v))[2] for (v,) in conn.execute(f"SELECT {column} FROM {table}")}


def test_outbox_and_preload_cache_hold_no_id_number_or_name(tmp_path: Path) -> None:
    state = tmp_path / "state"
    box = Outbox(state / "outbox.db")
    box.write([_record("F1", attachments={"pdf": PDF}), _record("F2")], source="lis", watermark="F2")
    box.enqueue([Record("accept", f"accept:{ID_NO}|V1", {"sehr_accept_record": [_accept_row()]}, "desk")])
    items = box.next_batch(["lab"], 10)
    box.settle(dead={items[1].id: json.dumps({"status": 422, "message": f"{NAME}（{ID_NO}）的报告无效"}, ensure_ascii=False)})
    store = PreloadStore(state / "preload.db", cipher=box.sealer.cipher)
    store.store(_entry())
    store.add_decisions("accept", [_accept_row()])
    files = [state / n for n in ("outbox.db", "outbox.db-wal", "preload.db", "preload.db-wal")]
    assert (state / "outbox.db-wal").stat().st_size > 0  # the WAL holds the rows (not checkpointed yet)
    assert _leaks(*files) == {}
    # … and everything still reads back
    assert items[0].attachments == {"pdf": PDF} and orjson.loads(items[0].payload)["labmaster"]["name"] == NAME
    assert items[0].key == report_key("lab", _lab("F1")["labmaster"])
    [dead] = box.dead()
    assert NAME in dead["error"] and dead["key"] == items[1].key
    got = store.load("01", ID_NO)
    assert got is not None and got.recent[0]["name"] == NAME
    assert store.find_report("lab", REPORT_ID) == _entry().detail["labmaster"][0]
    assert store.find_report("lab", "r1AbCdEfGhIjKlMnOpQrSu") is None
    assert [d["name"] for d in store.decisions("01", ID_NO, "V1")] == [NAME] and store.decisions("01", ID_NO, "V2") == []
    # the keys: beside the outbox, private
    keys = state / "keys"
    assert _mode(keys) == 0o700 and _mode(keys / "data.keys") == 0o600
    assert all(_mode(p) == 0o600 for p in files if p.exists())
    box.close()
    assert _leaks(*files) == {}


def test_the_cache_uses_the_outbox_keys_and_another_key_file_opens_nothing(tmp_path: Path) -> None:
    with Outbox(tmp_path / "a" / "outbox.db") as box:
        box.write([_record("F1")])
    with Outbox(tmp_path / "a" / "outbox.db", cipher=data_keys(tmp_path / "b").cipher()) as other, pytest.raises(aead.SealError):
        other.next_batch(["lab"], 1)


def test_sealed_values_are_bound_to_their_row(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db") as box:
        box.write([_record("F1"), _record("F2")])
        box._conn.execute("UPDATE record SET payload = (SELECT payload FROM record WHERE id = 2) WHERE id = 1")
        with pytest.raises(aead.SealError):
            box.next_batch(["lab"], 1)


# -- conversion of an older, clear outbox ---------------------------------------------------------
V0_OUTBOX = """
CREATE TABLE record (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, key TEXT NOT NULL, source TEXT NOT NULL,
    watermark TEXT NOT NULL DEFAULT '', payload BLOB NOT NULL, digest BLOB NOT NULL, has_att INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0, error TEXT, created_at REAL NOT NULL,
    updated_at REAL NOT NULL);
CREATE INDEX record_key ON record (key, id);
CREATE INDEX record_pending ON record (id) WHERE state = 'pending';
CREATE INDEX record_pending_key ON record (key, id) WHERE state = 'pending';
CREATE INDEX record_dead ON record (id) WHERE state = 'dead';
CREATE TABLE attachment (record_id INTEGER NOT NULL REFERENCES record (id) ON DELETE CASCADE, name TEXT NOT NULL,
    data BLOB NOT NULL, PRIMARY KEY (record_id, name));
CREATE TABLE source_state (name TEXT PRIMARY KEY, watermark TEXT NOT NULL DEFAULT '', extracted INTEGER NOT NULL DEFAULT 0,
    last_poll REAL, last_success REAL, failures INTEGER NOT NULL DEFAULT 0, last_error TEXT);
CREATE TABLE report_index (key TEXT PRIMARY KEY, kind TEXT NOT NULL, day TEXT NOT NULL, dept_code TEXT NOT NULL,
    dept_name TEXT NOT NULL, dept_std_code TEXT NOT NULL, dept_std_name TEXT NOT NULL, voided INTEGER NOT NULL DEFAULT 0);
CREATE INDEX report_index_day ON report_index (day);
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
N = 1234  # more than two conversion batches


def _old_outbox(path: Path) -> dict[int, tuple[str, str, bytes]]:
    """An outbox as the clear version wrote it: N lab reports (every 10th with a PDF, every 7th
    refused, every 3rd accepted); id → (state, key, payload)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows: dict[int, tuple[str, str, bytes]] = {}
    with sqlite3.connect(path) as conn:
        conn.executescript(V0_OUTBOX)
        for i in range(1, N + 1):
            rec = _record(f"F{i:05d}", attachments={"pdf": PDF} if i % 10 == 0 else {})
            payload = orjson.dumps(rec.payload)
            state = "dead" if i % 7 == 0 else "done" if i % 3 == 0 else "pending"
            error = f"{NAME}：退回" if state == "dead" else None
            conn.execute(
                "INSERT INTO record (id, kind, key, source, watermark, payload, digest, has_att, state, error, created_at,"
                " updated_at) VALUES (?, 'lab', ?, 'lis', ?, ?, ?, ?, ?, ?, 1, 1)",
                (i, rec.key, rec.watermark, payload, digest(rec, payload), 1 if rec.attachments else 0, state, error),
            )
            if rec.attachments:
                conn.execute("INSERT INTO attachment VALUES (?, 'pdf', ?)", (i, PDF))
            conn.execute(
                "INSERT INTO report_index VALUES (?, 'lab', '2024-03-11', '1511', '保健科门诊', 'A01', '预防保健科', 0)",
                (rec.key,),
            )
            rows[i] = (state, rec.key, payload)
        conn.execute("INSERT INTO source_state (name, watermark) VALUES ('lis', ?)", (f"F{N:05d}",))
    return rows


def test_a_clear_outbox_is_converted_at_open_resumably(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "outbox.db"
    old = _old_outbox(path)
    assert _leaks(path) == {"outbox.db": ["id_no", "name"]}  # the clear version's file
    real, calls = outbox_seal._convert_rows, []

    def interrupted(*args: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the gateway stopped during the conversion
        real(*args)

    monkeypatch.setattr(outbox_seal, "_convert_rows", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Outbox(path)
    monkeypatch.setattr(outbox_seal, "_convert_rows", real)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM record WHERE sealed = 1").fetchone()[0] == outbox_seal.BATCH
    box = Outbox(path)
    assert box.converted == N - outbox_seal.BATCH
    with sqlite3.connect(path) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM record ORDER BY id")]
        assert conn.execute("SELECT count(*) FROM record WHERE sealed = 0").fetchone()[0] == 0
        assert conn.execute("SELECT count(*), sum(instr(key, ':') > 0) FROM report_index").fetchone() == (N, 0)
    assert ids == list(range(1, N + 1))  # nothing lost, nothing doubled, ids kept
    assert box.counts() == {s: sum(1 for v in old.values() if v[0] == s) for s in ("pending", "done", "dead")}
    pending = box.next_batch(["lab"], N)
    assert [(it.id, it.key, it.payload) for it in pending] == [(i, v[1], v[2]) for i, v in old.items() if v[0] == "pending"]
    assert all(it.attachments == ({"pdf": PDF} if it.id % 10 == 0 else {}) for it in pending)
    assert {d["id"]: d["error"] for d in box.dead(N)} == {i: f"{NAME}：退回" for i, v in old.items() if v[0] == "dead"}
    settled: list[tuple[Record, bool, str]] = []  # deduplication still knows the converted rows
    assert box.write([_record("F00003"), _record("F00001")], dedup="latest", settled=settled) == 0
    assert [(r.key, ok) for r, ok, _ in settled] == [(old[3][1], True)]
    assert box.daily_rows("2024-03-11")[0]["lab_num"] == N
    assert Outbox(path).converted == 0  # once
    box.close()
    assert _leaks(path, tmp_path / "outbox.db-wal") == {}  # the clear bytes are gone from the file


# -- conversion of an older, clear preload cache --------------------------------------------------
V0_CACHE = """
CREATE TABLE patient (id_type_code TEXT NOT NULL, id_no TEXT NOT NULL, fetched_at REAL NOT NULL, days INTEGER NOT NULL,
    recent TEXT NOT NULL, detail TEXT NOT NULL, PRIMARY KEY (id_type_code, id_no));
CREATE TABLE reference (name TEXT PRIMARY KEY, fetched_at REAL NOT NULL, body TEXT NOT NULL);
CREATE TABLE decision (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, id_type_code TEXT NOT NULL,
    id_no TEXT NOT NULL, new_event_no TEXT NOT NULL, record TEXT NOT NULL, stored_at REAL NOT NULL);
CREATE INDEX decision_patient ON decision (id_type_code, id_no, new_event_no);
"""


def test_a_clear_preload_cache_is_converted_at_open(tmp_path: Path) -> None:
    path = tmp_path / "preload.db"
    e = _entry()
    with sqlite3.connect(path) as conn:
        conn.executescript(V0_CACHE)
        for i in range(700):  # more than one batch
            conn.execute(
                "INSERT INTO patient VALUES ('01', ?, ?, 90, ?, ?)",
                (ID_NO if i == 0 else f"X{i}", e.fetched_at, json.dumps(e.recent, ensure_ascii=False),
                 json.dumps(e.detail, ensure_ascii=False)),
            )
        conn.execute(
            "INSERT INTO decision VALUES (7, 'accept', '01', ?, 'V1', ?, 5.0)", (ID_NO, json.dumps(_accept_row(), ensure_ascii=False))
        )
    assert _leaks(path) == {"preload.db": ["id_no", "name"]}
    store = PreloadStore(path)
    assert store.converted == 701
    assert store.load("01", ID_NO) == e and store.load("01", "X699") is not None
    assert store.find_report("lab", REPORT_ID) is not None
    [d] = store.decisions("01", ID_NO, "V1")
    assert d["id"] == 7 and d["name"] == NAME
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "patient_clear" not in tables and "decision_clear" not in tables
    assert store.stats()["patients"] == 700
    assert _leaks(path, tmp_path / "preload.db-wal") == {}
    assert PreloadStore(path).converted == 0


# -- rotation -----------------------------------------------------------------------------------------
def _gateway_toml(tmp_path: Path) -> Path:
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(
        '[platform]\nbase_url = "http://127.0.0.1:9"\norg_code = "1"\nusername = "u"\npassword = "p"\n'
        '[outbox]\npath = "q/outbox.db"\n[preload]\napi_token = "' + "t" * 32 + '"\npath = "cache/preload.db"\n',
        "utf-8",
    )
    return cfg


def test_rotate_data_reseals_outbox_and_cache_resumably(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _gateway_toml(tmp_path)
    box_path, cache_path = tmp_path / "q" / "outbox.db", tmp_path / "cache" / "preload.db"
    with Outbox(box_path) as box:
        box.write([_record(f"F{i:04d}", attachments={"pdf": PDF} if i % 100 == 0 else {}) for i in range(1200)])
        box.settle(dead={5: "退回"})
        cache = PreloadStore(cache_path, cipher=box.sealer.cipher)
        cache.store(_entry())
        cache.add_decisions("accept", [_accept_row()])
    assert _kids(box_path, "record", "payload") == {1} and _kids(cache_path, "patient", "body") == {1}

    # interrupted after the first batch: what is done stays done, --resume finishes under the same key
    real = outbox_seal.reseal

    def stop_after_first(box: Outbox, sealer: Any, progress: Any = None, batch: int = outbox_seal.BATCH) -> tuple[int, int]:
        def halt(n: int) -> None:
            raise KeyboardInterrupt

        return real(box, sealer, halt, batch)

    monkeypatch.setattr(outbox_seal, "reseal", stop_after_first)
    with pytest.raises(KeyboardInterrupt):
        huren_cli.main(["gateway", "keys", "rotate-data", "--config", str(cfg)])
    monkeypatch.setattr(outbox_seal, "reseal", real)
    assert _kids(box_path, "record", "payload") == {1, 2}
    capsys.readouterr()
    assert huren_cli.main(["gateway", "keys", "rotate-data", "--config", str(cfg), "--resume"]) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out.splitlines()[-1])
    assert summary["active_key"] == 2
    assert summary["出站队列"] == {"rows": 1200, "resealed": 1200 - outbox_seal.BATCH}
    assert summary["预加载缓存"] == {"rows": 2, "resealed": 2}
    assert "出站队列 [" in err and "1200/1200" in err  # the progress bar
    for table, column in (("record", "payload"), ("attachment", "data")):
        assert _kids(box_path, table, column) == {2}, (table, column)
    assert _kids(cache_path, "patient", "body") == {2} and _kids(cache_path, "decision", "record") == {2}
    doc = json.loads((tmp_path / "q" / "keys" / "data.keys").read_text())
    assert doc["active"] == 2 and sorted(doc["keys"]) == ["1", "2"]
    with Outbox(box_path) as box:  # a fresh process reads everything under the new key
        items = box.next_batch(["lab"], 2000)
        by_id = {it.id: it for it in items}
        assert len(items) == 1199 and by_id[1].attachments == {"pdf": PDF} and by_id[101].attachments == {"pdf": PDF}
        assert box.dead()[0]["error"] == "退回"
    assert PreloadStore(cache_path).load("01", ID_NO) is None  # the cache's keys are the outbox's, not its own
    assert PreloadStore(cache_path, cipher=data_keys(tmp_path / "q").cipher()).load("01", ID_NO) == _entry()
    # a second full rotation: key 3, and a run over rows already current changes nothing
    assert gwcli.rotate_data(cfg) == 0 and _kids(box_path, "record", "payload") == {3}
    capsys.readouterr()
    assert gwcli.rotate_data(cfg, resume=True) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["出站队列"] == {"rows": 1200, "resealed": 0}


def test_rotate_data_names_an_unusable_key_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _gateway_toml(tmp_path)
    (tmp_path / "q" / "keys").mkdir(parents=True)
    (tmp_path / "q" / "keys" / "data.keys").write_text("not json")
    assert gwcli.rotate_data(cfg) == 2
    err = capsys.readouterr().err
    assert err.startswith("错误：数据密钥文件") and "出站队列" in err
    assert (tmp_path / "q" / "keys" / "data.keys").read_text() == "not json"


def test_preload_seal_schema_has_no_identity_column() -> None:
    """The sealed cache's tables name no id_no / name column (what the conversion relies on)."""
    with sqlite3.connect(":memory:") as conn:
        conn.executescript(preload_seal.SCHEMA)
        cols = {c for t in ("patient", "decision", "report") for c in preload_seal._columns(conn, t)}
    assert not cols & {"id_no", "name", "id_type_code", "new_event_no"}


def _algorithms(db: Path) -> set[int]:
    with sqlite3.connect(db) as conn:
        return {aead.FieldCipher.header(bytes(v))[1] for (v,) in conn.execute("SELECT payload FROM record")}


def test_the_configured_cipher_seals_and_a_rotation_moves_everything_to_it(tmp_path: Path) -> None:
    cfg = _gateway_toml(tmp_path)
    text = cfg.read_text("utf-8")
    cfg.write_text(text.replace('path = "q/outbox.db"\n', 'path = "q/outbox.db"\ncipher = "sm4-gcm"\n'), "utf-8")
    conf = load_config(cfg)
    assert conf.outbox.cipher == "sm4-gcm"
    with Outbox(conf.outbox.path, cipher=outbox_cipher(conf)) as box:
        box.write([_record(f"F{i}") for i in range(20)])
    assert _algorithms(conf.outbox.path) == {aead.SM4_GCM}
    with sqlite3.connect(conf.outbox.path) as conn:  # compressed before SM4: under half its JSON
        assert max(len(v) for (v,) in conn.execute("SELECT payload FROM record")) < len(orjson.dumps(_lab("F1"))) / 2
    cfg.write_text(text, "utf-8")  # back to the default, AES-256-GCM
    assert gwcli.rotate_data(cfg) == 0
    assert _algorithms(conf.outbox.path) == {aead.AES_256_GCM}
    with Outbox(conf.outbox.path) as box:  # what SM4 sealed (compressed) and AES re-sealed reads the same
        assert [orjson.loads(it.payload) for it in box.next_batch(["lab"], 50)] == [_lab(f"F{i}") for i in range(20)]
    with pytest.raises(ConfigError, match=r"\[outbox\] cipher"):
        parse({"platform": {"base_url": "http://p", "org_code": "1", "username": "u", "password": "p"},
               "outbox": {"cipher": "des"}}, tmp_path)


def test_sealer_binds_to_column_ad_and_indexes_exactly(tmp_path: Path) -> None:
    s = Sealer(data_keys(tmp_path).cipher())
    assert s.ad("outbox.record", "payload", "42") == aead.column_ad("outbox.record", "payload", "42")
    assert s.index("lab:a|x", "outbox.key") != s.index("lab:A|X", "outbox.key")  # no case folding
    assert s.index("lab:a|x", "outbox.key") != s.index("lab:a|x", "preload.patient")  # domains apart
    assert s.index("lab:a|x", "outbox.key") == Sealer(data_keys(tmp_path).cipher()).index("lab:a|x", "outbox.key")
    assert Sealer(data_keys(tmp_path / "other").cipher()).index("lab:a|x", "outbox.key") != s.index("lab:a|x", "outbox.key")


def test_the_runner_seals_the_cache_with_the_outbox_keys(tmp_path: Path) -> None:
    from huren.client import HurenClient
    from huren.gateway import preload

    cfg = _gateway_toml(tmp_path)  # the cache in cache/, the outbox in q/
    conf = load_config(cfg)
    hc = HurenClient("http://127.0.0.1:9", "1", "u", "p")
    try:
        preload.build(conf, lambda records: None, hc)
    finally:
        hc.close()
    assert (tmp_path / "q" / "keys" / "data.keys").is_file() and not (tmp_path / "cache" / "keys").exists()
    store = PreloadStore(tmp_path / "cache" / "preload.db", cipher=outbox_cipher(conf))
    store.store(_entry())
    assert store.load("01", ID_NO) == _entry()


def test_rotate_data_reseals_the_yb_workstation_logins(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import time

    from huren.gateway.yb_params import Login
    from huren.gateway.yb_sessions import TABLE, YbSessions, sessions_path

    cfg = _gateway_toml(tmp_path)
    box_path = tmp_path / "q" / "outbox.db"
    with Outbox(box_path) as box:
        box.write([_record("F0001")])
        login = Login("his-7", "127.0.0.1", "李医生", "H001", "放射科", "0301", "1", "1", "D07", "6501**********0012",
                      "", time.time() + 3600)
        YbSessions(sessions_path(box_path), box.sealer.cipher).put(login)
    path = sessions_path(box_path)
    assert _kids(path, TABLE, "body") == {1}
    assert gwcli.rotate_data(cfg) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["工作站登录"] == {"rows": 1, "resealed": 1}
    assert _kids(path, TABLE, "body") == {2}
    assert YbSessions(path, data_keys(tmp_path / "q").cipher()).get("his-7", "127.0.0.1") == login
