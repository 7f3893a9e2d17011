"""The gateway core against an in-process platform: the durable outbox (records and watermark in
one transaction, per-key order, dead letters, retry), the uploader's batches and outcomes,
backoff while the platform is down, daily counts, scheduled pushes, config, status, JSON logs."""

from __future__ import annotations

import base64
import io
import json
import logging
import random
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from huren.cli import main as huren_main
from huren.client import HurenClient
from huren.context import Principal
from huren.demo.generator import make_lab_report, make_patients
from huren.gateway import cli as gwcli
from huren.gateway import logs
from huren.gateway.config import ConfigError, build_source, load, parse
from huren.gateway.ingest import ingest
from huren.gateway.model import Record
from huren.gateway.outbox import PUSHED_KINDS, Outbox
from huren.gateway.runner import Gateway
from huren.services.container import Container
from tests import samples
from tests.e2e.gateway_source import ORG, PASSWORD, JsonlSource, append, line, stream, void_filter

ROOT = Path(__file__).resolve().parents[2]


class ListSource:
    """Yields the given lines after the watermark (the line number); optionally fails after ``fail_at``."""

    def __init__(self, lines: list[dict[str, Any]], name: str = "lis", fail_at: int | None = None) -> None:
        self.name, self.lines, self.fail_at = name, lines, fail_at
        self.polls: list[str] = []

    def poll(self, watermark: str) -> Iterator[Record]:
        self.polls.append(watermark)
        after = int(watermark) if watermark else -1
        for i, d in enumerate(self.lines):
            if i == self.fail_at:
                raise ConnectionError("LIS database went away")
            if i > after:
                yield Record(d["kind"], d["key"], d["payload"], self.name, d.get("watermark", f"{i:06d}"))


class Switch(httpx2.BaseTransport):
    """The in-process platform behind a switch: ``down`` raises a connection error, ``status`` answers it."""

    def __init__(self, inner: httpx2.BaseTransport) -> None:
        self.inner = inner
        self.down = False
        self.status: int | None = None
        self.paths: list[str] = []

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        if self.down:
            raise httpx2.ConnectError("connection refused", request=request)
        if self.status is not None:
            return httpx2.Response(self.status, json={"code": "busy", "message": "busy"})
        self.paths.append(request.url.path)
        return self.inner.handle_request(request)


def _config(tmp_path: Path, **outbox: Any) -> Any:
    doc = {
        "platform": {"base_url": "http://testserver", "org_code": ORG.code, "username": "his", "password": PASSWORD},
        "outbox": {"path": "outbox.db", "batch_size": 25, "max_backoff_seconds": 4} | outbox,
        "schedule": {"daily_at": "03:00", "push_every_seconds": 60, "poll_every_seconds": 0.2},
        "source": [{"name": "lis", "type": "test"}],
    }
    return parse(doc, tmp_path)


@pytest.fixture
def database_url(tmp_path: Path, sqlite_template: Path) -> str:
    """SQLite only: the gateway does not care which database the platform runs on."""
    target = tmp_path / "huren.db"
    shutil.copy(sqlite_template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def platform(container: Container) -> Container:
    container.directory.add_org(ORG.code, ORG.name, ORG.region_code, "3甲", user="his", password=PASSWORD)
    return container


@pytest.fixture
def switch(client: TestClient, platform: Container) -> Switch:
    return Switch(client._transport)


def _gateway(tmp_path: Path, switch: Switch, source: ListSource, **outbox: Any) -> Gateway:
    http = httpx2.Client(base_url="http://testserver", transport=switch)
    hc = HurenClient("http://testserver", ORG.code, "his", PASSWORD, http=http)
    return Gateway(_config(tmp_path, **outbox), sources=[source], client=hc)


def _platform_reports(c: Container, kind: str = "lab") -> dict[str, tuple[int, bool, str]]:
    """key → (rows with that key, voided, report_title)"""
    title = ", max(report_title)" if kind == "lab" else ", ''"
    with c.db.read() as conn:
        rows = conn.execute(
            text(
                f"SELECT org_code, report_form_no, patient_id, event_type, event_no, count(*), max(voided){title}"
                f" FROM {kind}_report GROUP BY org_code, report_form_no, patient_id, event_type, event_no"
            )
        ).all()
    return {f"{kind}:" + "|".join(str(x) for x in r[:5]): (int(r[5]), bool(r[6]), str(r[7])) for r in rows}


def _expected(lines: list[dict[str, Any]], kind: str = "lab") -> dict[str, tuple[int, bool, str]]:
    out: dict[str, tuple[int, bool, str]] = {}
    for d in lines:
        if d["kind"] == kind:
            out[d["key"]] = (1, False, d["payload"]["labmaster"]["report_title"] if kind == "lab" else "")
        elif d["kind"] == f"void_{kind}":
            n, _, title = out[d["key"]]
            out[d["key"]] = (n, True, title)
    return out


# -- the outbox on its own -------------------------------------------------------------------------


def test_records_and_watermark_are_written_together(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    good = Record("lab", "k1", {"a": 1}, "lis", "w1", {"pdf": b"%PDF-1"})
    assert box.write([good], source="lis", watermark="w1") == 1
    bad = Record("lab", "k2", {"a": {1, 2}}, "lis", "w2")  # not JSON: the whole transaction is undone
    with pytest.raises(TypeError):
        box.write([Record("lab", "k3", {"a": 3}, "lis", "w2"), bad], source="lis", watermark="w2")
    assert box.watermark("lis") == "w1"
    [item] = box.next_batch(["lab"], 10)
    assert (item.key, item.attachments) == ("k1", {"pdf": b"%PDF-1"})
    assert box.counts() == {"pending": 1, "done": 0, "dead": 0}
    mode = box._conn.execute("PRAGMA journal_mode").fetchone()[0]
    sync = box._conn.execute("PRAGMA synchronous").fetchone()[0]
    assert (mode, sync) == ("wal", 2)  # WAL, FULL
    box.close()


def test_per_key_order_a_void_never_overtakes_its_registration(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    recs = [
        Record("lab", "A", {"v": 1}, "s"),
        Record("lab", "B", {"v": 1}, "s"),
        Record("void_lab", "A", {"v": 2}, "s"),
        Record("lab", "C", {"v": 1}, "s"),
        Record("lab", "A", {"v": 3}, "s"),
    ]
    box.write(recs)
    first = box.next_batch(["lab", "void_lab"], 10)
    assert [(i.kind, i.key) for i in first] == [("lab", "A"), ("lab", "B"), ("lab", "C")]
    assert [i.key for i in box.next_batch(["lab", "void_lab"], 10, exclude=[first[0].id])] == ["B", "C"]
    box.settle(done=[first[0].id])
    assert [(i.kind, i.key) for i in box.next_batch(["lab", "void_lab"], 10)] == [("lab", "B"), ("void_lab", "A"), ("lab", "C")]
    void = box.next_batch(["void_lab"], 10)[0]
    box.settle(dead={void.id: '{"status": 404}'})  # refused: the next record of A may go
    assert [(i.kind, i.key) for i in box.next_batch(["lab"], 10)][-1] == ("lab", "A")
    box.close()


def test_dedup_and_retry_dead(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    r1 = Record("lab", "A", {"v": 1}, "s")
    assert box.write([r1, r1], dedup="latest") == 1
    assert box.write([r1], dedup="pending") == 0
    [a1] = box.next_batch(["lab"], 5)
    box.settle(dead={a1.id: "bad"})
    assert box.write([r1], dedup="latest") == 0  # the same row read again: not queued again
    box.write([Record("lab", "A", {"v": 2}, "s")], dedup="latest")
    [a2] = box.next_batch(["lab"], 5)
    box.settle(done=[a2.id])
    box.write([Record("lab", "B", {"v": 1}, "s")])
    [b] = box.next_batch(["lab"], 5)
    box.settle(dead={b.id: "bad"})
    retried, superseded = box.retry_dead()
    assert (retried, superseded) == ([b.id], [a1.id])  # A's newer version was accepted: keep it
    assert box.counts() == {"pending": 1, "done": 1, "dead": 1}
    box.close()


def test_ingest_never_splits_records_sharing_a_watermark(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    marks = ["1", "1", "2", "2", "2", "3", "3", "4"]
    lines = [{"kind": "lab", "key": f"k{i}", "payload": {"i": i}, "watermark": m} for i, m in enumerate(marks)]

    class Grouped(ListSource):
        def poll(self, watermark: str) -> Iterator[Record]:
            for i, d in enumerate(self.lines):
                if i == self.fail_at:
                    raise ConnectionError("gone")
                if d["watermark"] > watermark:
                    yield Record(d["kind"], d["key"], d["payload"], self.name, d["watermark"])

    src = Grouped(lines, fail_at=6)
    assert ingest(box, src, chunk=2) == 5  # groups 1 and 2; group 3 was cut short
    assert box.watermark("lis") == "2"
    st = box.stats()["sources"]["lis"]
    assert st["poll_failures"] == 1 and "gone" in st["last_error"]
    src.fail_at = None
    assert ingest(box, src, chunk=2) == 3
    assert box.watermark("lis") == "4"
    assert ingest(box, src, chunk=2) == 0
    assert box.counts()["pending"] == 8
    assert box.stats()["sources"]["lis"]["poll_failures"] == 0
    box.close()


# -- the gateway and the platform ------------------------------------------------------------------


def test_every_report_arrives_once_voids_after_registrations(tmp_path: Path, platform: Container, switch: Switch) -> None:
    lines = stream(120, voids=15, resubmits=10, exams=6)
    gw = _gateway(tmp_path, switch, ListSource(lines))
    assert gw.poll() == len(lines)
    assert gw.poll() == 0
    assert gw.drain() == (len(lines), "empty")
    assert gw.box.counts() == {"pending": 0, "done": len(lines), "dead": 0}
    assert _platform_reports(platform) == _expected(lines)
    assert len(_platform_reports(platform, "exam")) == 6
    assert "/api/v1/lab-reports/batch" in switch.paths and "/api/v1/lab-reports/void" in switch.paths
    assert switch.paths.count("/api/v1/lab-reports/batch") < 20  # batches, not one request per report
    gw.close()


def test_platform_down_backs_off_then_delivers(tmp_path: Path, platform: Container, switch: Switch) -> None:
    lines = stream(30)
    gw = _gateway(tmp_path, switch, ListSource(lines))
    gw.poll()
    switch.down = True
    assert gw.drain() == (0, "unavailable")
    assert not gw.available() and gw._failures == 1
    pending = gw.box.next_batch(["lab"], 100)
    assert len(pending) == 30 and pending[0].attempts == 1
    assert "ConnectError" in gw.box.meta("last_upload_error")
    gw._retry_at = 0
    switch.down, switch.status = False, 503
    assert gw.drain()[1] == "unavailable" and gw._failures == 2
    switch.status = 429
    gw._retry_at = 0
    assert gw.drain()[1] == "unavailable" and gw._failures == 3
    assert 2 <= gw._retry_at - time.monotonic() <= 4  # 2**2 s with jitter, at most max_backoff_seconds
    switch.status = None
    gw._retry_at = 0
    assert gw.drain() == (30, "empty")
    assert gw._failures == 0
    assert len(_platform_reports(platform)) == 30
    gw.close()


def test_a_stale_or_conflicting_version_in_a_batch_is_dead_with_the_platforms_409(
    tmp_path: Path, platform: Container, switch: Switch
) -> None:
    """A report of a batch refused as an older (stale) or same-time-but-different (conflicting)
    version is labelled with the status the platform gives it (409, issue 10 §1.2), not 422."""
    lines = stream(4)
    source = ListSource(lines[:3])
    gw = _gateway(tmp_path, switch, source)
    gw.poll()
    gw.drain()
    assert gw.box.counts() == {"pending": 0, "done": 3, "dead": 0}
    stored = lines[1]["payload"]["labmaster"]["last_update_dtime"]
    older = json.loads(json.dumps(lines[1]))
    older["payload"]["labmaster"]["report_title"] = "改过的标题"
    older["payload"]["labmaster"]["last_update_dtime"] = (
        datetime.strptime(stored, "%Y-%m-%d %H:%M:%S") - timedelta(hours=1)
    ).strftime("%Y-%m-%d %H:%M:%S")
    same_time = json.loads(json.dumps(lines[2]))
    same_time["payload"]["labmaster"]["report_title"] = "同一时间的另一版本"
    source.lines = [*lines[:3], lines[3], older, same_time]  # one batch: a new report and two refused
    gw.poll()
    gw.drain()
    assert gw.box.counts() == {"pending": 0, "done": 4, "dead": 2}
    dead = {d["key"]: json.loads(d["error"]) for d in gw.box.dead()}
    assert {k: (r["status"], r["code"]) for k, r in dead.items()} == {
        lines[1]["key"]: (409, "conflict"),
        lines[2]["key"]: (409, "conflict"),
    }
    assert _platform_reports(platform)[lines[1]["key"]][2] == lines[1]["payload"]["labmaster"]["report_title"]
    gw.close()


def test_refused_record_goes_to_dead_letter_with_the_reason(tmp_path: Path, platform: Container, switch: Switch) -> None:
    lines = stream(10)
    bad = json.loads(json.dumps(lines[3]))
    bad["payload"]["labmaster"]["id_no"] = "65010219670201123X"  # wrong check digit
    bad["key"] += "-bad"
    bad["payload"]["labmaster"]["report_form_no"] += "9"
    orphan = stream(1, seed=99)[0]  # a void for a report the platform does not have (yet)
    void = line("void_lab", void_filter(orphan["payload"]["labmaster"]))
    gw = _gateway(tmp_path, switch, ListSource([*lines[:5], bad, void, *lines[5:]]))
    gw.poll()
    gw.drain()
    assert gw.box.counts() == {"pending": 0, "done": 10, "dead": 2}
    dead = {d["kind"]: d for d in gw.box.dead()}
    reason = json.loads(dead["lab"]["error"])
    assert reason["status"] == 422 and reason["code"] == "invalid_input"
    assert any(p["field"].endswith("id_no") for p in reason["problems"])
    assert json.loads(dead["void_lab"]["error"])["status"] == 404
    out = io.StringIO()
    assert gwcli.status(tmp_path / "missing.toml", out=out) == 2  # no config file: a message, no traceback

    # the report reaches the platform another way (the LIS itself); the void can now be applied
    hc = gw.client
    assert hc.rest_register("lab", orphan["payload"])["created"] is True
    retried, superseded = gw.box.retry_dead([dead["void_lab"]["id"]])
    assert retried == [dead["void_lab"]["id"]] and superseded == []
    gw.drain()
    assert gw.box.counts() == {"pending": 0, "done": 11, "dead": 1}
    assert _platform_reports(platform)[orphan["key"]][1] is True
    gw.close()


def test_daily_counts_for_the_previous_day(tmp_path: Path, platform: Container, switch: Switch, api_sup: Any) -> None:
    lines = stream(40, voids=5, exams=8)
    gw = _gateway(tmp_path, switch, ListSource(lines))
    gw.poll()
    gw.drain()
    # a controlled clock: the times are handed to run_daily, never read from the wall clock
    midnight = datetime.combine(date.today(), datetime.min.time())
    assert gw.config.schedule.daily_at.isoformat() == "03:00:00"
    assert gw.run_daily(midnight + timedelta(hours=2, minutes=59, seconds=59)) == []  # not yet due
    assert gw.box.meta("daily_last_day") == ""  # and nothing was marked done
    at = midnight + timedelta(hours=3, minutes=5)
    yesterday = date.today() - timedelta(days=1)
    gw.box.write([], meta={"daily_last_day": ""})
    assert gw.run_daily(at) == [yesterday]
    assert gw.run_daily(at) == []  # once a day
    [item] = gw.box.next_batch(["daily"], 5)
    rows = json.loads(item.payload)["lab_exam_report"]
    assert sum(int(r["lab_num"]) for r in rows) == 35 and sum(int(r["exam_num"]) for r in rows) == 8
    assert gw.drain()[1] == "empty"
    assert gw.box.counts()["dead"] == 0
    res = api_sup.get(
        "/api/v1/quality/completeness", params={"org_code": ORG.code, "day_from": yesterday.isoformat(), "day_to": yesterday.isoformat()}
    ).json()
    assert res["rows"] and res["differences"] == []
    # the gateway was off for three days: the missed days are caught up
    gw.box.write([], meta={"daily_last_day": (yesterday - timedelta(days=3)).isoformat()})
    assert gw.run_daily(at) == [yesterday - timedelta(days=i) for i in (2, 1, 0)]
    gw.close()


def test_accept_and_quote_wait_for_the_push(tmp_path: Path, platform: Container, switch: Switch) -> None:
    gw = _gateway(tmp_path, switch, ListSource(stream(3)))
    gw.poll()
    gw.enqueue([Record("accept", "accept:x", {"sehr_accept_record": [{"is_accept": "9"}]}, "preload")])
    assert gw.drain() == (3, "empty")
    assert gw.box.pending() == 1
    assert gw.drain(PUSHED_KINDS) == (1, "empty")
    assert "/api/v1/recognition/accept" in switch.paths
    [dead] = gw.box.dead()
    assert dead["kind"] == "accept" and json.loads(dead["error"])["status"] == 422
    gw.close()


def test_reminders_shown_locally_reach_the_platform_log(tmp_path: Path, platform: Container, switch: Switch) -> None:
    """Reminders the preload cache showed are pushed with the decisions into the platform's
    reminder log (XC-P4), where its statistics count them."""
    gw = _gateway(tmp_path, switch, ListSource([]))
    who = Principal(ORG.code, "his", "hospital")
    shown = platform.statistics.recognition(who, by="all")["rows"]
    before = shown[0]["reminders"] if shown else 0
    now = platform.clock.now().strftime("%Y-%m-%d %H:%M:%S")
    row = {"action": "reminder", "at": now, "id_type_code": "01", "id_no": samples.ID_NO, "doc_code": "D1001",
           "item_codes": "lab:250301002", "ordered": "3", "recognizable": "1"}
    gw.enqueue([Record("reminder", f"reminder:{i}", {"reminder_log": [row]}, "preload") for i in range(3)])
    assert gw.drain() == (0, "empty") and gw.box.pending() == 3  # waits for the push
    assert gw.drain(PUSHED_KINDS) == (3, "empty")
    assert switch.paths.count("/api/v1/reminder-logs") == 1  # the three in one request
    after = platform.statistics.recognition(who, by="all")["rows"][0]
    assert (after["reminders"], after["recognizable"] >= 3) == (before + 3, True)
    assert gw.box.dead() == []
    gw.close()


def test_run_loop_polls_drains_and_stops(tmp_path: Path, platform: Container, switch: Switch) -> None:
    lines = stream(50, voids=5)
    src = ListSource(lines[:20])
    gw = _gateway(tmp_path, switch, src)
    t = threading.Thread(target=gw.run)
    t.start()
    try:
        deadline = time.monotonic() + 20
        while gw.box.counts()["done"] < 20:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        src.lines = lines  # new rows appear in the source
        while gw.box.counts()["done"] < len(lines):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        gw.stop()
        t.join(10)
    assert not t.is_alive()
    assert _platform_reports(platform) == _expected(lines)
    gw.close()


# -- config, status, logs --------------------------------------------------------------------------


def test_example_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUREN_GATEWAY_PASSWORD", "s3cret-pass")
    conf = load(ROOT / "docs" / "gateway.example.toml")
    assert conf.platform.password == "s3cret-pass"
    assert conf.outbox.path.is_absolute() and conf.outbox.batch_size == 200
    assert conf.schedule.daily_at.isoformat() == "03:00:00"
    assert {s["type"] for s in conf.sources} >= {"db"}
    assert isinstance(conf.preload, dict)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"platform": {}}, "[platform] 缺少 base_url"),
        ({"platform": {"base_url": "x", "org_code": "1", "username": "u", "password_env": "NO_SUCH_VAR_X"}}, "NO_SUCH_VAR_X"),
        ({"schedule": {"daily_at": "3 o'clock"}}, "daily_at"),
        ({"outbox": {"batch_size": 0}}, "batch_size"),
        ({"source": [{"name": "a", "type": "db"}, {"name": "a", "type": "db"}]}, "重复"),
    ],
)
def test_config_errors_name_the_key(doc: dict[str, Any], message: str) -> None:
    base = {"platform": {"base_url": "http://p", "org_code": "1", "username": "u", "password": "p"}}
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse(base | doc, Path("."))


def test_status_and_retry_dead_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(
        '[platform]\nbase_url = "http://127.0.0.1:9"\norg_code = "1"\nusername = "u"\npassword = "p"\n'
        '[outbox]\npath = "q/outbox.db"\n',
        "utf-8",
    )
    with Outbox(tmp_path / "q" / "outbox.db") as box:
        box.write([Record("lab", "A", {"v": 1}, "lis", "2026-01-01 10:00:00")], source="lis", watermark="2026-01-01 10:00:00")
        box.write([Record("lab", "B", {"v": 1}, "lis")])
        dead_id = box.next_batch(["lab"], 5)[1].id
        box.settle(dead={dead_id: '{"status": 422, "message": "坏数据"}'})
    assert gwcli.status(cfg) == 0
    out = capsys.readouterr().out
    assert "2026-01-01 10:00:00" in out and "坏数据" in out and "待上传 1" in out
    assert gwcli.status(cfg, as_json=True) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["sources"]["lis"]["pending"] == 1 and st["sources"]["lis"]["dead"] == 1
    assert gwcli.retry_dead(cfg) == 2
    assert gwcli.retry_dead(cfg, [dead_id, 999]) == 0
    assert json.loads(capsys.readouterr().out) == {"retried": [dead_id], "superseded": [], "not_dead": [999]}


def test_logs_are_json_lines() -> None:
    buf = io.StringIO()
    logs.setup("INFO", buf)
    root = logging.getLogger("huren.gateway")
    try:
        logging.getLogger("huren.gateway.test").info("已从来源读取记录", extra={"source": "lis", "stored": 3, "error": "身份证号 650102199003071234 重复"})
    finally:
        root.handlers.clear()
        root.propagate = True
        root.setLevel(logging.NOTSET)
    doc = json.loads(buf.getvalue())
    assert doc["msg"] == "已从来源读取记录" and doc["source"] == "lis" and doc["stored"] == 3
    assert doc["error"] == "身份证号 6501************34 重复"  # no log line holds an ID number
    assert doc["level"] == "INFO" and doc["ts"]


def test_pdf_attachment_goes_with_its_report(tmp_path: Path, platform: Container, switch: Switch, api_sup: Any) -> None:
    rng = random.Random(5)
    payload = make_lab_report(rng, ORG, make_patients(rng, 1)[0], datetime.now() - timedelta(hours=2), with_pdf=True)
    pdf = base64.b64decode(payload["labmaster"].pop("pdf"))
    rec = line("lab", payload)
    gw = _gateway(tmp_path, switch, ListSource([]))
    gw.box.write([Record("lab", rec["key"], payload, "drop", "", {"pdf": pdf})])
    assert gw.drain() == (1, "empty")
    assert gw.box._conn.execute("SELECT count(*) FROM attachment").fetchone()[0] == 0  # not kept twice
    login = gw.client
    with platform.db.read() as conn:
        rid = conn.execute(text("SELECT id FROM lab_report")).scalar_one()
    ref = platform.refs.report("lab", rid)  # the platform's paths take the report's ref, not its row id
    got = login.http.get(f"/api/v1/lab-reports/{ref}/pdf", headers={"Authorization": f"Bearer {login.token()}"})
    assert got.status_code == 200 and got.content == pdf
    gw.close()


def test_backfill_rereads_from_a_day_with_a_progress_bar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = stream(30)
    src = tmp_path / "lis.jsonl"
    append(src, lines)
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(
        '[platform]\nbase_url = "http://127.0.0.1:9"\norg_code = "1"\nusername = "u"\npassword = "p"\n'
        f'[[source]]\nname = "lis"\nfactory = "tests.e2e.gateway_source:build"\nby = "dtime"\npath = "{src}"\n',
        "utf-8",
    )
    yesterday = date.today() - timedelta(days=1)
    last = max(d["payload"]["labmaster"]["last_update_dtime"] for d in lines)
    assert huren_main(["gateway", "backfill", "--config", str(cfg), "--since", yesterday.isoformat()]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"queued": 30}
    assert "30/30" in err and "lis：读取 30 条，新入队 30 条" in err
    assert gwcli.backfill(cfg, yesterday) == 0  # nothing new or changed
    assert json.loads(capsys.readouterr().out) == {"queued": 0}
    assert gwcli.backfill(cfg, yesterday, ["nope"]) == 2
    with Outbox(tmp_path / "gateway-outbox.db") as box:
        assert box.watermark("lis") == ""  # not moved: the regular poll reads on and finds them stored
        assert ingest(box, JsonlSource("lis", src, "dtime")) == 0
        assert box.watermark("lis") == last
        box.settle(done=[i.id for i in box.next_batch(["lab"], 100)])
        box.write([], source="lis", watermark="9999")  # a backfill leaves the regular polls' watermark alone
    assert gwcli.backfill(cfg, yesterday, resend=True) == 0
    assert json.loads(capsys.readouterr().out) == {"queued": 30}
    with Outbox(tmp_path / "gateway-outbox.db") as box:
        assert box.watermark("lis") == "9999"
        assert box.counts() == {"pending": 30, "done": 30, "dead": 0}
    assert huren_main(["gateway", "status", "--config", str(cfg)]) == 0
    assert "lis\t9999\t30\t30\t0" in capsys.readouterr().out


class FolderLike(ListSource):
    """A source that wants to know each record's outcome (as the drop folder does, to move files)."""

    def __init__(self, lines: list[dict[str, Any]]) -> None:
        super().__init__(lines, name="drop")
        self.outcomes: list[tuple[str, bool, str]] = []

    def done(self, record: Record, ok: bool, reason: str = "") -> None:
        self.outcomes.append((record.watermark, ok, reason))


def test_sources_hear_each_outcome_also_after_a_crash(tmp_path: Path, platform: Container, switch: Switch) -> None:
    lines = stream(4)
    bad = json.loads(json.dumps(lines[1]))
    bad["payload"]["labmaster"]["id_no"] = "bad"
    src = FolderLike([lines[0], bad, lines[2]])
    gw = _gateway(tmp_path, switch, src)
    gw.sources = [src]
    gw.poll()
    gw.drain()
    assert [(w, ok) for w, ok, _ in src.outcomes] == [("000000", True), ("000002", True), ("000001", False)]
    assert json.loads(src.outcomes[2][2])["status"] == 422

    # a crash after the outbox settled a record but before the source heard of it: the source
    # yields the record again (its files are still there); the gateway tells it, and sends nothing
    src.lines.append(lines[3])
    gw.poll()
    [item] = gw.box.next_batch(["lab"], 5)
    gw.box.settle(done=[item.id])
    src.outcomes.clear()
    sent = len(switch.paths)
    assert ingest(gw.box, src, since="") == 0
    assert sorted(src.outcomes) == [("000000", True, ""), ("000001", False, src.outcomes[1][2]), ("000002", True, ""), ("000003", True, "")]
    assert len(switch.paths) == sent and gw.box.pending() == 0
    gw.close()


def test_config_reads_sources_spelled_either_way(tmp_path: Path) -> None:
    base = {"platform": {"base_url": "http://p/", "org_code": "1", "username": "u", "password": "p"}}
    conf = parse(
        base | {"source": [{"name": "a", "type": "db"}], "sources": [{"name": "b", "factory": "tests.e2e.gateway_source:build", "path": "x"}],
                "mapping": {"source": "csv", "table": "codes.csv"}},
        tmp_path,
    )
    assert [s["name"] for s in conf.sources] == ["a", "b"]
    assert conf.platform.base_url == "http://p" and conf.mapping["table"] == "codes.csv"
    assert conf.outbox.path == tmp_path / "gateway-outbox.db"
    with pytest.raises(ConfigError, match="factory"):
        build_source({"name": "c", "factory": "no.such.module:make"})


def test_run_serves_the_preload_api_while_it_runs(tmp_path: Path, platform: Container, switch: Switch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gw = _gateway(tmp_path, switch, ListSource([]))
    gw.config = replace(gw.config, preload={"listen": f"127.0.0.1:{port}", "api_token": "gateway-run-preload-token-0123"})
    t = threading.Thread(target=gw.run)
    t.start()
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx2.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert r.status_code == 200
    finally:
        gw.stop()
        t.join(15)
    assert not t.is_alive()
    with pytest.raises(httpx2.TransportError):
        httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
    gw.close()


def test_an_unexpected_error_does_not_end_the_loop(
    tmp_path: Path, platform: Container, switch: Switch, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("huren.gateway.runner.ERROR_PAUSE", 0.05)
    gw = _gateway(tmp_path, switch, ListSource(stream(5)))
    real = gw.uploader.upload
    calls = []

    def flaky(items: Any) -> Any:
        calls.append(len(items))
        if len(calls) == 1:
            raise RuntimeError("disk hiccup")
        return real(items)

    monkeypatch.setattr(gw.uploader, "upload", flaky)
    t = threading.Thread(target=gw.run)
    t.start()
    try:
        deadline = time.monotonic() + 20
        while gw.box.counts()["done"] < 5:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        gw.stop()
        t.join(10)
    assert len(calls) >= 2
    assert any(r.getMessage().startswith("前置机本轮处理出错") for r in caplog.records)
