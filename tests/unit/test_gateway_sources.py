"""Gateway sources and mapping: database views by watermark (ties, renamed columns, voids, read-only),
the drop folder (complete pairs only, failed/ with reasons, nothing deleted), the PACS HTTP pull
(MockTransport), HIS master data by content hash, local → standard code mapping."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy.exc import OperationalError

from huren.client import HurenClient
from huren.gateway import demo_hospital, mapping
from huren.gateway.model import Record
from huren.gateway.sources import ConfigError, SourceError, build
from huren.gateway.sources.dbview import DbViewSource
from huren.gateway.sources.folder import DropFolder
from huren.gateway.sources.his import HisSource
from huren.gateway.sources.pacs_http import PacsHttpSource

NOW = datetime(2024, 3, 12, 12, 0, 0)
ORG = "456002186"


# -- database views ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hospital_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("hospital")
    demo_hospital.create(d, lab_reports=14, exam_reports=9, drop_pairs=2, now=NOW)
    return d


@pytest.fixture
def hospital(hospital_template: Path, tmp_path: Path) -> Path:
    """A fresh copy per test (tests change the LIS tables as the LIS would)."""
    import shutil

    d = tmp_path / "hospital"
    shutil.copytree(hospital_template, d)
    text = (d / "gateway.toml").read_text("utf-8").replace(str(hospital_template.resolve()), str(d.resolve()))
    (d / "gateway.toml").write_text(text, "utf-8")
    return d


def sources(hospital: Path) -> dict[str, dict[str, Any]]:
    import tomllib

    doc = tomllib.loads((hospital / "gateway.toml").read_text("utf-8"))
    return {s["name"]: s for s in doc["source"]}


def db_rows(hospital: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(hospital / "his.db") as conn:
        rows = conn.execute(sql, args).fetchall()
    conn.close()
    return rows


def lis(hospital: Path, **over: Any) -> DbViewSource:
    src = build(sources(hospital)["lis"] | over)
    assert isinstance(src, DbViewSource)
    return src


def drain(src: Any, watermark: str = "", take: int | None = None) -> tuple[list[Record], str]:
    """Read ``take`` records (all when None) from ``watermark``; the records and the last watermark."""
    out: list[Record] = []
    for rec in src.poll(watermark):
        out.append(rec)
        if take is not None and len(out) == take:
            break
    return out, (out[-1].watermark if out else watermark)


def test_db_view_yields_each_report_once_across_polls_with_equal_timestamps(hospital: Path) -> None:
    stamps = [r[0] for r in db_rows(hospital, "SELECT last_update_dtime FROM lis_report")]
    assert max(Counter(stamps).values()) >= 3, "the demo LIS must stamp some reports alike"
    src = lis(hospital, batch_size=3)
    seen: list[str] = []
    wm = ""
    for _ in range(50):  # a runner that stops after 2 records each time, so ties straddle polls and batches
        got, wm = drain(src, wm, take=2)
        if not got:
            break
        seen += [r.payload["labmaster"]["report_form_no"] for r in got]
    expected = sorted(r[0] for r in db_rows(hospital, "SELECT report_form_no FROM lis_report"))
    assert sorted(seen) == expected  # every report, none twice
    assert len(seen) == len(set(seen))
    assert drain(src, wm)[0] == []

    # the LIS adds a report with the watermark's own timestamp, and changes an older one
    last_t = json.loads(wm)[0]
    new = demo_hospital.add_reports(hospital, lab=1, seed=7, now=NOW)
    with sqlite3.connect(hospital / "his.db") as conn:
        conn.execute("UPDATE lis_report SET last_update_dtime = ?, report_form_no = ? WHERE report_form_no = ?", (last_t, "9" * 19, new[0]))
        conn.execute("UPDATE lis_item SET report_form_no = ? WHERE report_form_no = ?", ("9" * 19, new[0]))
        conn.execute("UPDATE lis_report SET last_update_dtime = ? WHERE report_form_no = ?", ("2099-01-01 00:00:00", expected[0]))
    conn.close()
    got, _ = drain(src, wm)
    assert [r.payload["labmaster"]["report_form_no"] for r in got] == ["9" * 19, expected[0]]


def test_db_view_record_shape_items_pdf_and_key(hospital: Path) -> None:
    recs, _ = drain(lis(hospital))
    rec = recs[0]
    master, items = rec.payload["labmaster"], rec.payload["lab_subitem"]
    assert rec.kind == "lab" and rec.source == "lis"
    assert rec.key == "lab:" + "|".join(master[f] for f in ("org_code", "report_form_no", "patient_id", "event_type", "event_no"))
    assert master["event_type"] in ("1", "2") and master["data_status"] == "1"  # INTEGER columns → seed text
    assert "pdf" not in master and rec.attachments["pdf"].startswith(b"%PDF-")
    n_items = db_rows(hospital, "SELECT count(*) FROM lis_item WHERE report_form_no = ?", master["report_form_no"])[0][0]
    assert len(items) == n_items > 0
    assert [int(i["serial_no"]) for i in items] == sorted(int(i["serial_no"]) for i in items)
    assert all(i["report_form_no"] == master["report_form_no"] for i in items)


def test_db_view_pdf_from_a_file_path_column(hospital: Path) -> None:
    recs, _ = drain(build(sources(hospital)["pacs"]))
    assert recs and all(r.attachments["pdf"].startswith(b"%PDF-") for r in recs)
    rfn = recs[0].payload["exammaster"]["report_form_no"]
    assert recs[0].attachments["pdf"] == (hospital / "pacs_pdf" / f"{rfn}.pdf").read_bytes()


def test_db_view_renamed_columns_are_mapped(hospital: Path) -> None:
    conf = sources(hospital)["ris"]
    recs, _ = drain(build(conf))
    rows = db_rows(
        hospital,
        "SELECT report_form_no, patient_id, event_no, id_no, name, last_update_dtime FROM pacs_report WHERE system = 'RIS'",
    )
    assert len(recs) == len(rows) > 0
    by_no = {r[0]: r for r in rows}
    for rec in recs:
        m = rec.payload["exammaster"]
        assert (m["report_form_no"], m["patient_id"], m["event_no"], m["id_no"], m["name"], m["last_update_dtime"]) == by_no[m["report_form_no"]]
        codes = {r[0] for r in db_rows(hospital, "SELECT exam_item_code FROM pacs_item WHERE report_form_no = ?", m["report_form_no"])}
        assert {i["exam_item_code"] for i in rec.payload["exam_subitem"]} == codes
        assert all(i["exam_item_name"] for i in rec.payload["exam_subitem"])
    # without the column map the view's names do not match the seed's: nothing usable comes out
    bare = build({k: v for k, v in conf.items() if k not in ("columns", "item_columns")})
    with pytest.raises(SourceError):
        drain(bare)


def test_db_view_data_status_makes_a_void_with_the_filter_fields(hospital: Path) -> None:
    src = lis(hospital)
    recs, wm = drain(src)
    target = recs[3]
    m = target.payload["labmaster"]
    assert demo_hospital.void_report(hospital, "lab", m["report_form_no"]) == 1
    got, _ = drain(src, wm)
    assert len(got) == 1
    void = got[0]
    assert void.kind == "void_lab" and void.key == target.key
    assert void.payload == {
        "org_code": m["org_code"], "report_form_no": m["report_form_no"], "patient_id": m["patient_id"],
        "event_type": m["event_type"], "event_no": m["event_no"], "id_no": m["id_no"], "id_type": m["id_type_code"],
    }


def test_db_view_other_void_flag_and_defaults(hospital: Path) -> None:
    with sqlite3.connect(hospital / "his.db") as conn:
        conn.execute("CREATE VIEW v_lab_flagged AS SELECT *, CASE WHEN rowid % 2 = 0 THEN 'Y' ELSE 'N' END AS deleted FROM lis_report")
        conn.execute("CREATE VIEW v_lab_no_org AS SELECT report_form_no, patient_id, event_type, event_no, last_update_dtime, id_no, id_type_code FROM lis_report")
    conn.close()
    recs, _ = drain(lis(hospital, master_view="v_lab_flagged", void_column="deleted", void_values=["Y"]))
    kinds = Counter(r.kind for r in recs)
    assert kinds["void_lab"] == len(recs) // 2 and kinds["lab"] == len(recs) - len(recs) // 2
    recs, _ = drain(lis(hospital, master_view="v_lab_no_org", defaults={"org_code": ORG, "class_code": "CHEM"}, pdf_column=""))
    assert recs and all(r.payload["labmaster"]["org_code"] == ORG and r.payload["labmaster"]["class_code"] == "CHEM" for r in recs)


def test_db_view_backfill_watermark_is_inclusive(hospital: Path) -> None:
    recs, _ = drain(lis(hospital))
    t = recs[5].payload["labmaster"]["last_update_dtime"]
    since, _ = drain(lis(hospital), t)
    assert {r.key for r in since} == {r.key for r in recs if r.payload["labmaster"]["last_update_dtime"] >= t}
    day, _ = drain(lis(hospital), t[:10])
    assert {r.key for r in day} == {r.key for r in recs if r.payload["labmaster"]["last_update_dtime"] >= t[:10]}


def test_db_view_never_writes(hospital: Path) -> None:
    src = lis(hospital)
    with pytest.raises(OperationalError, match="readonly"), src.engine.connect() as conn:
        conn.exec_driver_sql("DELETE FROM lis_report")
    assert db_rows(hospital, "SELECT count(*) FROM lis_report")[0][0] == 14


def test_db_view_config_errors_name_the_key(hospital: Path) -> None:
    conf = sources(hospital)["ris"]
    with pytest.raises(ConfigError, match=r"sources\[ris\]\.columns.*no_such_field"):
        build(conf | {"columns": {"no_such_field": "X"}})
    with pytest.raises(ConfigError, match="不认识的配置项 colums"):
        build(conf | {"colums": {}})
    with pytest.raises(ConfigError, match="kind"):
        build(conf | {"kind": "xray"})
    with pytest.raises(ConfigError, match=r"type 应为 .* 之一"):
        build({"name": "x", "type": "ftp"})


# -- drop folder ---------------------------------------------------------------------------------
def lab_payload(rfn: str = "R1", **master: str) -> dict[str, Any]:
    m = {
        "last_update_dtime": "2024-03-11 09:29:00", "org_code": ORG, "report_form_no": rfn, "patient_id": "P1",
        "event_type": "1", "event_no": "E1", "id_no": "E12345678", "id_type_code": "03", "data_status": "1",
        "report_title": "血常规",
    } | master
    return {"labmaster": m, "lab_subitem": [{"serial_no": "1", "class_code": "250101015", "report_form_no": rfn}]}


PDF = b"%PDF-1.4\n" + b"x" * 200 + b"\n%%EOF\n"


def put(folder: Path, name: str, data: bytes | str, *, age: float = 0.0) -> Path:
    p = folder / name
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    if age:
        t = time.time() - age
        os.utime(p, (t, t))
    return p


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    d = tmp_path / "drop"
    d.mkdir()
    return d


def folder(path: Path, **kw: Any) -> DropFolder:
    return DropFolder("drop", path, **({"settle_seconds": 3600.0} | kw))


def names(recs: list[Record]) -> list[str]:
    return [r.watermark for r in recs]


def test_folder_half_written_pdf_is_not_picked_until_unchanged(drop: Path) -> None:
    src = folder(drop)
    put(drop, "a.json", json.dumps(lab_payload("A")))
    put(drop, "a.pdf", PDF[:50])
    assert names(list(src.poll(""))) == []  # just written: not settled yet
    with (drop / "a.pdf").open("ab") as fh:
        fh.write(PDF[50:])
    assert names(list(src.poll(""))) == []  # the PDF grew since the last poll
    got = list(src.poll(""))  # unchanged across two polls → complete
    assert names(got) == ["a"]
    assert got[0].attachments["pdf"] == PDF and got[0].kind == "lab" and "pdf" not in got[0].payload["labmaster"]
    assert list(src.poll("")) == []  # yielded once, waiting for done()
    assert set(tree(drop)) == {"a.json", "a.pdf"}  # left in place


def test_folder_part_and_tmp_files_are_ignored(drop: Path) -> None:
    src = folder(drop, settle_seconds=5.0)
    put(drop, "b.json", json.dumps(lab_payload("B")), age=60)
    put(drop, "b.pdf.part", PDF, age=60)
    put(drop, "c.json.tmp", "{", age=60)
    put(drop, "c.pdf", PDF, age=60)
    put(drop, "d.json", json.dumps(lab_payload("D")), age=60)  # complete, but its PDF is being replaced
    put(drop, "d.pdf", PDF, age=60)
    put(drop, "d.pdf.part", PDF[:10], age=60)
    assert list(src.poll("")) == [] and list(src.poll("")) == []
    os.rename(drop / "b.pdf.part", drop / "b.pdf")
    os.rename(drop / "c.json.tmp", drop / "c.json")
    (drop / "c.json").write_text(json.dumps(lab_payload("C")))
    assert names(list(src.poll(""))) == ["b"]  # b.pdf is old (settled); c.json was just written
    assert names(list(src.poll(""))) == ["c"]
    os.rename(drop / "d.pdf.part", drop / "d.pdf")
    assert names(list(src.poll(""))) == ["d"]  # the replaced PDF keeps its old time: settled
    assert "failed" not in {p.name for p in drop.iterdir()}


def test_folder_bad_index_goes_to_failed_with_its_reason(drop: Path) -> None:
    src = folder(drop, settle_seconds=0.0)
    put(drop, "bad.json", '{"labmaster": {"org_code": "1"')
    put(drop, "bad.pdf", PDF)
    put(drop, "nokey.json", json.dumps(lab_payload("N", patient_id="", id_no="")))
    put(drop, "nokey.pdf", PDF)
    put(drop, "xml.xml", "<root><labmaster><item org_code='1'></labmaster></root>")
    put(drop, "notpdf.json", json.dumps(lab_payload("X")))
    put(drop, "notpdf.pdf", b"<html>")
    before = tree(drop)
    assert list(src.poll("")) == []
    after = tree(drop)
    assert set(after) == {
        "failed/bad.json", "failed/bad.pdf", "failed/bad.reason.txt",
        "failed/nokey.json", "failed/nokey.pdf", "failed/nokey.reason.txt",
        "failed/xml.xml", "failed/xml.reason.txt",
        "failed/notpdf.json", "failed/notpdf.pdf", "failed/notpdf.reason.txt",
    }
    assert "不是合法的 JSON" in after["failed/bad.reason.txt"].decode()
    assert "patient_id" in after["failed/nokey.reason.txt"].decode() and "id_no" in after["failed/nokey.reason.txt"].decode()
    assert "XML" in after["failed/xml.reason.txt"].decode()
    assert "%PDF-" in after["failed/notpdf.reason.txt"].decode()
    for name, data in before.items():  # every byte still there
        assert after[f"failed/{name}"] == data


def test_folder_done_moves_pairs_and_never_deletes(drop: Path) -> None:
    src = folder(drop, settle_seconds=0.0)
    for n in ("d1", "d2", "d3"):
        put(drop, f"{n}.json", json.dumps(lab_payload(n.upper())))
        put(drop, f"{n}.pdf", PDF)
    before = tree(drop)
    recs = {r.watermark: r for r in src.poll("")}
    assert set(recs) == {"d1", "d2", "d3"}
    src.done(recs["d1"], True)
    src.done(recs["d2"], False, "error:身份证件号码校验位错误")
    after = tree(drop)
    assert {"done/d1.json", "done/d1.pdf", "failed/d2.json", "failed/d2.pdf", "failed/d2.reason.txt", "d3.json", "d3.pdf"} == set(after)
    assert "身份证件号码校验位错误" in after["failed/d2.reason.txt"].decode()
    # a gateway restarted before done(): the pair is yielded again and done() finds it by name
    again = folder(drop, settle_seconds=0.0)
    (rec,) = list(again.poll(""))
    assert rec.watermark == "d3"
    again.done(recs["d3"], True)
    # the same name dropped again later does not overwrite the earlier one
    put(drop, "d1.json", json.dumps(lab_payload("D1", report_title="更正")))
    put(drop, "d1.pdf", PDF)
    (rec,) = list(again.poll(""))
    again.done(rec, True)
    final = tree(drop)
    assert {"done/d1.json", "done/d1~1.json", "done/d1~1.pdf", "done/d3.json"} <= set(final)
    assert sum(1 for k in final if not k.endswith(".reason.txt")) == len(before) + 2


def test_folder_xml_index_void_and_daily(drop: Path) -> None:
    src = folder(drop, settle_seconds=0.0)
    p = lab_payload("XML1")
    attrs = " ".join(f'{k}="{v}"' for k, v in p["labmaster"].items())
    put(drop, "x.xml", f'<?xml version="1.0" encoding="UTF-8"?><root><labmaster><item {attrs}/></labmaster>'
        '<lab_subitem><item serial_no="1" class_code="ALB"/><item serial_no="2" class_code="TP"/></lab_subitem></root>')
    put(drop, "x.pdf", PDF)
    put(drop, "v.json", json.dumps(lab_payload("V", data_status="0")))  # a void needs no PDF
    pdf_inline = lab_payload("I")
    pdf_inline["labmaster"]["pdf"] = base64.b64encode(PDF).decode()
    put(drop, "i.json", json.dumps(pdf_inline))
    put(drop, "day.json", json.dumps({"lab_exam_report": [{"org_code": ORG, "date_t": "2024-03-11", "dept_code": "1511"}]}))
    put(drop, "waiting.json", json.dumps(lab_payload("W")))  # no PDF yet: stays
    recs = {r.watermark: r for r in src.poll("")}
    assert set(recs) == {"x", "v", "i", "day"}
    assert [i["class_code"] for i in recs["x"].payload["lab_subitem"]] == ["ALB", "TP"]
    assert recs["x"].attachments["pdf"] == PDF and recs["i"].attachments["pdf"] == PDF
    assert recs["v"].kind == "void_lab" and recs["v"].payload["report_form_no"] == "V" and recs["v"].payload["id_type"] == "03"
    assert recs["day"].kind == "daily" and recs["day"].key == f"daily:{ORG}|2024-03-11"
    assert (drop / "waiting.json").exists() and not (drop / "failed").exists()


# -- PACS HTTP pull ------------------------------------------------------------------------------
def pacs_report(no: str, *, t: str = "2024-03-11 10:00:00") -> dict[str, Any]:
    return {
        "reportNo": no, "accessNo": f"A{no}", "modifyTime": t, "hospitalCode": ORG,
        "patient": {"id": f"P{no}", "idNo": "E12345678", "idType": "03", "name": "张三", "visitNo": f"V{no}", "visitType": 1},
        "items": [{"itemCode": "210300001", "itemName": "颅脑CT平扫", "part": "HEAD"}, {"itemCode": "XX-LOCAL", "itemName": "本地"}],
        "pdfBase64": base64.b64encode(PDF).decode(),
    }


FIELD_MAP = {
    "report_form_no": "reportNo", "pacs_id": "accessNo", "last_update_dtime": "modifyTime", "org_code": "hospitalCode",
    "patient_id": "patient.id", "id_no": "patient.idNo", "id_type_code": "patient.idType", "name": "patient.name",
    "event_no": "patient.visitNo", "event_type": "patient.visitType",
}
ITEM_MAP = {"exam_item_code": "itemCode", "exam_item_name": "itemName", "exam_site_code": "part"}


class FakePacs:
    def __init__(self, by_type: dict[int, list[dict[str, Any]]]) -> None:
        self.by_type = by_type
        self.asked: list[dict[str, Any]] = []
        self.fail = False

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        self.asked.append(body)
        if self.fail:
            return httpx2.Response(503, text="busy")
        if "examNo" in body:
            return httpx2.Response(200, json={"code": 200, "data": [pacs_report(body["examNo"])]})
        start = datetime.strptime(body["startTime"], "%Y-%m-%d %H:%M:%S")
        end = datetime.strptime(body["endTime"], "%Y-%m-%d %H:%M:%S")
        rows = [r for r in self.by_type.get(body["type"], []) if start <= datetime.strptime(r["modifyTime"], "%Y-%m-%d %H:%M:%S") < end]
        return httpx2.Response(200, json={"code": 200, "message": "ok", "data": rows})


def pacs(fake: FakePacs, now: datetime = NOW, **kw: Any) -> PacsHttpSource:
    http = httpx2.Client(transport=httpx2.MockTransport(fake))
    return PacsHttpSource(
        "pacs", "http://pacs.local/api/report", fields=FIELD_MAP, item_fields=ITEM_MAP, pdf_field="pdfBase64",
        http=http, clock=lambda: now, **({"window_minutes": 60, "lag_seconds": 0} | kw),
    )


def test_pacs_windows_types_and_refund_void() -> None:
    fake = FakePacs({
        3: [pacs_report("1", t="2024-03-12 09:10:00"), pacs_report("2", t="2024-03-12 10:30:00")],
        4: [pacs_report("1", t="2024-03-12 09:40:00")],
        2: [pacs_report("2", t="2024-03-12 10:50:00")],
    })
    src = pacs(fake)
    recs, wm = drain(src, "2024-03-12 09:00:00")
    assert wm == "2024-03-12 11:00:00"
    assert [(r.kind, r.payload.get("exammaster", r.payload).get("report_form_no")) for r in recs] == [
        ("exam", "1"), ("exam", "1"), ("exam", "2"), ("void_exam", "2"),
    ]
    assert [b["type"] for b in fake.asked] == [3, 4, 2, 3, 4, 2, 3, 4, 2]
    assert fake.asked[0] == {"startTime": "2024-03-12 09:00:00", "endTime": "2024-03-12 10:00:00", "type": 3}
    assert fake.asked[-1]["endTime"] == "2024-03-12 12:00:00"
    # a window's records carry its start, its last one its end: a crash mid-window asks it again
    assert [r.watermark for r in recs] == ["2024-03-12 09:00:00", "2024-03-12 10:00:00", "2024-03-12 10:00:00", "2024-03-12 11:00:00"]
    assert src.position == "2024-03-12 12:00:00"
    exam = recs[0].payload
    m = exam["exammaster"]
    assert (m["org_code"], m["patient_id"], m["id_no"], m["event_no"], m["event_type"], m["pacs_id"]) == (ORG, "P1", "E12345678", "V1", "1", "A1")
    assert [i["exam_item_code"] for i in exam["exam_subitem"]] == ["210300001", "XX-LOCAL"]
    assert all(i["report_form_no"] == "1" and i["org_code"] == ORG for i in exam["exam_subitem"])
    assert recs[0].attachments["pdf"] == PDF
    void = recs[3]
    assert void.key == recs[2].key and void.payload["id_type"] == "03" and set(void.payload) == {
        "org_code", "report_form_no", "patient_id", "event_type", "event_no", "id_no", "id_type",
    }
    # nothing new: the next poll from the stored position asks only the new window
    fake.asked.clear()
    later = pacs(fake, now=datetime(2024, 3, 12, 12, 30))
    assert drain(later, src.position)[0] == [] and len(fake.asked) == 3


def test_pacs_by_exam_number_and_errors() -> None:
    fake = FakePacs({})
    src = pacs(fake)
    (rec,) = src.exam("77")
    assert fake.asked == [{"examNo": "77"}] and rec.kind == "exam" and rec.payload["exammaster"]["report_form_no"] == "77"
    fake.fail = True
    with pytest.raises(SourceError, match="503"):
        drain(src, "2024-03-12 11:00:00")
    bad = PacsHttpSource("p", "http://x", http=httpx2.Client(transport=httpx2.MockTransport(lambda r: httpx2.Response(200, json={"code": 500, "message": "内部错误"}))), clock=lambda: NOW)
    with pytest.raises(SourceError, match="内部错误"):
        drain(bad, "2024-03-12 11:00:00")
    with pytest.raises(ConfigError, match="types"):
        PacsHttpSource("p", "http://x", types=[5])


# -- HIS master data -----------------------------------------------------------------------------
def test_his_sends_rows_only_when_new_or_changed(hospital: Path) -> None:
    src = build(sources(hospital)["his"] | {"batch_size": 10})
    assert isinstance(src, HisSource)
    recs, wm = drain(src)
    rows: dict[str, list[dict[str, str]]] = {"dept": [], "staff": [], "patient": []}
    for r in recs:
        rows[r.kind] += r.payload[r.kind]
        assert r.key == f"{r.kind}:{ORG}"
    for kind, table in (("dept", "his_dept"), ("staff", "his_staff"), ("patient", "his_patient")):
        assert len(rows[kind]) == db_rows(hospital, f"SELECT count(*) FROM {table}")[0][0] > 0
    assert all(r["org_code"] == ORG for r in rows["patient"])
    assert {"patient_id", "id_type_code", "id_no", "name", "sex_code", "birth_date", "registered_at"} <= set(rows["patient"][0])
    assert drain(src, wm)[0] == []  # nothing changed: nothing sent

    dept = rows["dept"][0]["dept_code"]
    with sqlite3.connect(hospital / "his.db") as conn:
        conn.execute("UPDATE his_dept SET dept_name = dept_name || '（新）' WHERE dept_code = ?", (dept,))
        conn.execute("INSERT INTO his_staff (staff_code, name, dept_code, active) VALUES ('S9999', '新医生', ?, 1)", (dept,))
        conn.execute(
            "INSERT INTO his_patient (patient_id, id_type_code, id_no, name, sex_code, registered_at) VALUES ('NEW1', '03', 'E99999999', '新患者', '1', '2099-01-01 08:00:00')"
        )
    conn.close()
    again, wm2 = drain(src, wm)
    key = {"dept": "dept_code", "staff": "staff_code", "patient": "patient_id"}
    assert [(r.kind, [row[key[r.kind]] for row in r.payload[r.kind]]) for r in again] == [
        ("dept", [dept]), ("staff", ["S9999"]), ("patient", ["NEW1"]),
    ]
    assert again[0].payload["dept"][0]["dept_name"].endswith("（新）")
    assert drain(src, wm2)[0] == []


# -- mapping -------------------------------------------------------------------------------------
TABLE = mapping.table_of(
    [("lab", "ALB", "250301002"), ("exam", "CT-HEAD", "210300001"), ("dept", "1511", "A01")],
    {"lab": ["250101015"], "exam": ["220600004"]},
)


def exam_payload(codes: list[str], **master: str) -> dict[str, Any]:
    m = {"participant_dept_code": "1511", "participant_dept_std_code": "", "participant_dept_std_name": "",
         "performer_dept_code": "3222", "performer_dept_std_code": "A32.02", "performer_dept_std_name": "",
         "authenticator_dept_code": "9999", "authenticator_dept_std_code": "9999"} | master
    return {"exammaster": m, "exam_subitem": [{"exam_item_code": c} for c in codes]}


def test_mapping_mapped_pass_through_and_unmapped_reported() -> None:
    m = mapping.Mapper(lambda: TABLE)
    lab = lab_payload()
    lab["lab_subitem"] = [{"class_code": c} for c in ("ALB", "250101015", "AST", "", "250301002")]
    out, missing = m.map_payload("lab", lab)
    assert [i["class_code"] for i in out["lab_subitem"]] == ["250301002", "250101015", "AST", "", "250301002"]
    assert missing == ["lab:AST"]
    assert lab["lab_subitem"][0]["class_code"] == "ALB"  # the input is not changed

    out, missing = m.map_payload("exam", exam_payload(["CT-HEAD", "220600004", "XR-9"]))
    assert [i["exam_item_code"] for i in out["exam_subitem"]] == ["210300001", "220600004", "XR-9"]
    em = out["exammaster"]
    assert (em["participant_dept_std_code"], em["participant_dept_std_name"]) == ("A01", "预防保健科")  # local 1511 → A01
    assert (em["performer_dept_std_code"], em["performer_dept_std_name"]) == ("A32.02", "CT诊断专业")  # standard: kept, name filled
    assert em["authenticator_dept_std_code"] == "9999"  # not guessed
    assert missing == ["exam:XR-9", "dept:9999"]
    m.map_payload("exam", exam_payload(["XR-9"]))
    assert m.unmapped == Counter({"exam:XR-9": 2, "dept:9999": 2, "lab:AST": 1})
    void = {"org_code": ORG}
    assert m.map_payload("void_lab", void) == (void, [])


def test_mapping_record_and_source_wiring(drop: Path) -> None:
    m = mapping.Mapper(lambda: TABLE)
    rec = Record("exam", "exam:k", exam_payload(["CT-HEAD"]), "s")
    mapped, missing = m.map_record(rec)
    assert mapped.payload["exam_subitem"][0]["exam_item_code"] == "210300001" and missing == ["dept:9999"]
    p = lab_payload("M")
    p["lab_subitem"] = [{"class_code": "ALB"}]
    put(drop, "m.json", json.dumps(p))
    put(drop, "m.pdf", PDF)
    (got,) = list(DropFolder("drop", drop, settle_seconds=0.0, mapper=m).poll(""))
    assert got.payload["lab_subitem"][0]["class_code"] == "250301002"


def test_mapping_cache_refresh_and_failures(tmp_path: Path) -> None:
    now = [0.0]
    calls = [0]

    def load() -> mapping.CodeTable:
        calls[0] += 1
        if calls[0] == 3:
            raise mapping.MappingError("platform down")
        return mapping.table_of([("lab", "ALB", f"STD{calls[0]}")])

    m = mapping.Mapper(load, refresh_seconds=60, clock=lambda: now[0])
    assert m.table().resolve("lab", "ALB") == "STD1"
    now[0] = 30
    assert m.table().resolve("lab", "ALB") == "STD1" and calls[0] == 1  # cached
    now[0] = 61
    assert m.table().resolve("lab", "ALB") == "STD2"
    assert m.refresh().resolve("lab", "ALB") == "STD2" and calls[0] == 3  # failed refresh keeps the old table
    with pytest.raises(mapping.MappingError):
        mapping.Mapper(lambda: (_ for _ in ()).throw(mapping.MappingError("no"))).table()

    cache = tmp_path / "codemap.json"
    ok = mapping.cached(lambda: TABLE, cache)
    assert ok() == TABLE and cache.is_file()
    down = mapping.cached(lambda: (_ for _ in ()).throw(mapping.MappingError("down")), cache)
    assert down().resolve("lab", "ALB") == "250301002"


def test_mapping_csv_tables(tmp_path: Path) -> None:
    table = tmp_path / "codes.csv"
    table.write_text("\ufeffkind,local_code,local_name,std_code\nlab,ALB,白蛋白,250301002\ndept,1511,保健科门诊,A01\n", "utf-8")
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("kind,code,name\nlab,250101015,血细胞分析\n", "utf-8")
    m = mapping.from_config({"source": "csv", "table": "codes.csv", "catalog": "catalog.csv"}, base_dir=tmp_path)
    t = m.table()
    assert (t.resolve("lab", "ALB"), t.resolve("lab", "250101015"), t.resolve("lab", "AST")) == ("250301002", "250101015", None)
    assert t.resolve("dept", "1511") == "A01" and t.resolve("dept", "A03") == "A03"
    table.write_text("kind,local_code,std_code\nxray,1,2\n", "utf-8")
    with pytest.raises(mapping.MappingError, match="第 2 行"):
        mapping.from_config({"source": "csv", "table": str(table)}).table()
    with pytest.raises(ValueError, match="不认识的配置项"):
        mapping.from_config({"source": "csv", "tabel": "x"})
    with pytest.raises(ValueError, match="需要平台连接"):
        mapping.from_config({"source": "platform"})


def test_mapping_from_the_platform_api() -> None:
    asked: list[str] = []

    def platform(request: httpx2.Request) -> httpx2.Response:
        asked.append(request.url.path)
        if request.url.path == "/api/v1/auth/token":
            return httpx2.Response(200, json={"access_token": "t", "expires_in": 7200})
        assert request.headers["Authorization"] == "Bearer t"
        if request.url.path == "/api/v1/code-map":
            return httpx2.Response(200, json={"mappings": [{"kind": "lab", "local_code": "ALB", "std_code": "250301002"}]})
        if request.url.path == "/api/v1/catalog":
            return httpx2.Response(200, json={"items": [{"kind": "lab", "code": "250101015"}, {"kind": "exam", "code": "210300001"}]})
        offset = int(request.url.params["offset"])
        depts = [{"dept_code": "1511", "dept_std_code": "A01"}, {"dept_code": "1101", "dept_std_code": "A03"}][offset : offset + 1]
        return httpx2.Response(200, json={"total": 2, "dept": depts})

    http = httpx2.Client(base_url="http://platform", transport=httpx2.MockTransport(platform))
    hc = HurenClient("http://platform", ORG, "his", "pw", http=http)
    t = mapping.from_config({"source": "platform"}, client=hc).table()
    assert t.resolve("lab", "ALB") == "250301002" and t.resolve("exam", "210300001") == "210300001"
    assert t.resolve("dept", "1511") == "A01" and t.resolve("dept", "1101") == "A03" and t.resolve("lab", "AST") is None
    assert asked.count("/api/v1/directory/depts") == 2
