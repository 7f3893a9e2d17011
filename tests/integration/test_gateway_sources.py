"""Gateway sources against real things: ``huren demo --hospital DIR`` as a process, the demo hospital's
sources uploading to the platform (code map from the platform's API, every report once, voids),
and the PACS pull against a local HTTP server."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from huren.client import HurenClient
from huren.context import Principal
from huren.demo.catalog import import_packaged_demo
from huren.demo.generator import demo_orgs
from huren.gateway import demo_hospital, mapping
from huren.gateway.config import load
from huren.gateway.model import Record
from huren.gateway.sources import build
from huren.gateway.sources.folder import DropFolder
from huren.services.container import Container
from tests.conftest import SUPERVISOR, Api, login

ROOT = Path(__file__).resolve().parents[2]
ORG = demo_orgs()[0]


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("HUREN_")}
    return env | {"HUREN_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}


def huren(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "huren.cli", *args], env=_env(data_dir), cwd=ROOT, capture_output=True,
        text=True, encoding="utf-8", timeout=300, check=False,
    )


def count(db: Path, sql: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        n = int(conn.execute(sql).fetchone()[0])
    conn.close()
    return n


def test_demo_hospital_command_creates_a_usable_hospital(tmp_path: Path) -> None:
    data, hosp = tmp_path / "data", tmp_path / "hospital"
    proc = huren("demo", "--reports", "10", "--hospital", str(hosp), data_dir=data)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)["hospital"]
    assert summary["org_code"] == ORG.code and any(c["org_code"] == ORG.code for c in json.loads(proc.stdout)["credentials"])
    db = hosp / "his.db"
    assert count(db, "SELECT count(*) FROM v_lab_report") == summary["lab_reports"] > 0
    assert count(db, "SELECT count(*) FROM v_exam_report") == summary["exam_reports_pacs"] > 0
    assert count(db, "SELECT count(*) FROM v_ris_report") == summary["exam_reports_ris"] > 0
    assert count(db, "SELECT count(*) FROM v_lab_item") > summary["lab_reports"]
    assert count(db, "SELECT count(DISTINCT BGDH) FROM v_ris_item") == summary["exam_reports_ris"]
    assert count(db, "SELECT count(*) FROM v_patient") == summary["patients"] > 0
    assert count(db, "SELECT count(*) FROM v_dept") == summary["depts"] > 0
    assert count(db, "SELECT count(*) FROM v_staff") == summary["staff"] > 0
    assert count(db, "SELECT count(*) FROM v_lab_report WHERE pdf IS NOT NULL") == summary["lab_reports"]
    pairs = sorted(p.name for p in (hosp / "drop").iterdir())
    assert len([p for p in pairs if p.endswith(".pdf")]) == summary["drop_pairs"] == len([p for p in pairs if p.endswith((".json", ".xml"))])

    # the generated configuration is the gateway's: it loads, and every source reads
    conf = load(hosp / "gateway.toml")
    assert (conf.platform.base_url, conf.platform.org_code, conf.platform.username, conf.platform.password) == (
        "http://127.0.0.1:8000", ORG.code, ORG.user, ORG.password,
    )
    got: dict[str, int] = {}
    for sc in conf.sources:
        src = build(sc, base_dir=conf.base_dir)
        recs = list(src.poll(""))
        if isinstance(src, DropFolder):
            time.sleep(0.05)
            recs = list(src.poll(""))  # unchanged since the last poll: complete
        got[sc["name"]] = len(recs)
    assert got == {
        "lis": summary["lab_reports"], "pacs": summary["exam_reports_pacs"], "ris": summary["exam_reports_ris"],
        "his": got["his"], "lis-drop": summary["drop_pairs"],
    } and got["his"] >= 3

    # a second hospital for a platform that already has its demo data; never over an existing one
    other = huren("demo", "--if-empty", "--hospital", str(tmp_path / "other"), data_dir=data)
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout)["skipped"] and (tmp_path / "other" / "his.db").is_file()
    before = (hosp / "his.db").read_bytes()
    again = huren("demo", "--if-empty", "--hospital", str(hosp), data_dir=data)
    assert again.returncode == 2 and "已存在" in again.stderr and (hosp / "his.db").read_bytes() == before


# -- the demo hospital's sources → the platform --------------------------------------------------
@pytest.fixture
def database_url(tmp_path: Path, sqlite_template: Path) -> str:
    """SQLite only: the sources do not care which database the platform runs on."""
    target = tmp_path / "huren.db"
    shutil.copy(sqlite_template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def platform(container: Container) -> Container:
    container.directory.add_org(ORG.code, ORG.name, ORG.region_code, "3甲", user=ORG.user, password=ORG.password)
    import_packaged_demo(
        container.catalog, Principal(SUPERVISOR[0], SUPERVISOR[4], "supervisor"), map_org=Principal(ORG.code, ORG.user, "hospital")
    )
    return container


@pytest.fixture
def hospital(tmp_path: Path) -> Path:
    d = tmp_path / "hospital"
    demo_hospital.create(d, lab_reports=30, exam_reports=15, drop_pairs=3)
    return d


def hospital_sources(hospital: Path, mapper: mapping.Mapper | None) -> dict[str, Any]:
    conf = load(hospital / "gateway.toml")
    out = {sc["name"]: build(sc, base_dir=conf.base_dir, mapper=mapper) for sc in conf.sources}
    drop = out["lis-drop"]
    assert isinstance(drop, DropFolder)
    drop.settle = 0.0
    return out


PATHS = {"dept": "depts", "staff": "staff", "patient": "patients"}


def upload(api: Api, rec: Record) -> None:
    """What the gateway's uploader does with one record (one at a time here)."""
    payload = json.loads(json.dumps(rec.payload))
    if rec.kind in ("lab", "exam"):
        if "pdf" in rec.attachments:
            payload[f"{rec.kind}master"]["pdf"] = base64.b64encode(rec.attachments["pdf"]).decode()
        r = api.post(f"/api/v1/{rec.kind}-reports", payload)
    elif rec.kind in ("void_lab", "void_exam"):
        r = api.post(f"/api/v1/{rec.kind[5:]}-reports/void", payload)
    else:
        r = api.post(f"/api/v1/directory/{PATHS[rec.kind]}", payload)
    assert r.status_code == 200, (rec.kind, rec.key, r.text)


def platform_rows(c: Container, sql: str) -> list[Any]:
    with c.db.read() as conn:
        return list(conn.execute(text(sql)).all())


def test_demo_hospital_sources_upload_every_report_once_with_standard_codes(
    client: TestClient, platform: Container, hospital: Path
) -> None:
    hc = HurenClient("http://testserver", ORG.code, ORG.user, ORG.password, http=client)
    mapper = mapping.from_config({"source": "platform", "cache": str(hospital / "codemap.json")}, client=hc)
    srcs = hospital_sources(hospital, mapper)
    api = login(client, (ORG.code, ORG.name, "", "", ORG.user, ORG.password))
    marks: dict[str, str] = {}
    for name in ("his", "lis", "pacs", "ris", "lis-drop"):
        for rec in srcs[name].poll(marks.get(name, "")):
            upload(api, rec)
            marks[name] = rec.watermark
            if name == "lis-drop":
                srcs[name].done(rec, True)
    assert (hospital / "codemap.json").is_file()

    lab = platform_rows(platform, f"SELECT report_form_no, count(*) FROM lab_report WHERE org_code = '{ORG.code}' GROUP BY report_form_no")
    exam = platform_rows(platform, f"SELECT report_form_no, count(*) FROM exam_report WHERE org_code = '{ORG.code}' GROUP BY report_form_no")
    db = hospital / "his.db"
    assert len(lab) == count(db, "SELECT count(*) FROM lis_report") + 3 and all(n == 1 for _, n in lab)
    assert len(exam) == count(db, "SELECT count(*) FROM pacs_report") and all(n == 1 for _, n in exam)
    assert platform_rows(platform, "SELECT count(*) FROM lab_report WHERE pdf_size IS NULL")[0][0] == 0  # every PDF came along
    assert platform_rows(platform, "SELECT count(*) FROM exam_report WHERE pdf_size IS NULL")[0][0] == 0
    # the LIS's / PACS's local codes arrived as standard codes (the platform's demo code map) …
    for kind, column in (("lab", "class_code"), ("exam", "exam_item_code")):
        local = ",".join(repr(c) for c in demo_hospital.LOCAL_CODES[kind].values())
        table = "lis_item" if kind == "lab" else "pacs_item"
        if kind == "lab":
            assert count(db, f"SELECT count(*) FROM {table} WHERE {column} IN ({local})") > 0, "the demo LIS uses local codes"
        assert platform_rows(platform, f"SELECT count(*) FROM {kind}_item WHERE {column} IN ({local})")[0][0] == 0
    # … and codes neither standard nor mapped were reported, and sent unchanged (not guessed)
    catalog = {(i["kind"], i["code"]) for i in platform.catalog.list()}
    for entry in mapper.unmapped:
        kind, code = entry.split(":", 1)
        assert (kind, code) not in catalog and code not in demo_hospital.LOCAL_CODES.get(kind, {}).values()
        if kind == "lab":
            assert platform_rows(platform, f"SELECT count(*) FROM lab_item WHERE class_code = {code!r}")[0][0] > 0
    assert (hospital / "drop" / "done").is_dir() and not [p for p in (hospital / "drop").iterdir() if p.is_file()]
    depts = platform_rows(platform, f"SELECT count(*) FROM dept WHERE org_code = '{ORG.code}'")[0][0]
    assert depts == count(db, "SELECT count(*) FROM his_dept")

    # the LIS withdraws a report: the next poll voids it on the platform, nothing else moves
    with sqlite3.connect(db) as conn:
        rfn = str(conn.execute("SELECT report_form_no FROM lis_report ORDER BY last_update_dtime LIMIT 1").fetchone()[0])
    conn.close()
    assert not platform_rows(platform, f"SELECT voided FROM lab_report WHERE report_form_no = '{rfn}'")[0][0]
    assert demo_hospital.void_report(hospital, "lab", rfn) == 1
    recs = list(srcs["lis"].poll(marks["lis"]))
    assert [r.kind for r in recs] == ["void_lab"]
    upload(api, recs[0])
    assert platform_rows(platform, f"SELECT voided FROM lab_report WHERE report_form_no = '{rfn}'")[0][0]
    assert list(srcs["pacs"].poll(marks["pacs"])) == [] and list(srcs["his"].poll(marks["his"])) == []


def test_mapping_table_from_the_platform(client: TestClient, platform: Container) -> None:
    api = login(client, (ORG.code, ORG.name, "", "", ORG.user, ORG.password))
    r = api.post("/api/v1/directory/depts", {"dept": [{"dept_code": "LOCAL-ICU", "dept_name": "监护室", "dept_std_code": "A28"}]})
    assert r.status_code == 200, r.text
    hc = HurenClient("http://testserver", ORG.code, ORG.user, ORG.password, http=client)
    table = mapping.platform_table(hc)
    assert table.resolve("lab", "ALB") == "250301002" and table.resolve("exam", "CT-HEAD") == "210300001"
    assert table.resolve("lab", "250101015") == "250101015"  # in the catalog: passes through
    assert table.resolve("lab", "NOT-A-CODE") is None
    assert table.resolve("dept", "LOCAL-ICU") == "A28"


# -- PACS pull over HTTP -------------------------------------------------------------------------
class _Pacs(BaseHTTPRequestHandler):
    asked: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).asked.append(body)
        rows = []
        if body.get("type") in (3, 2):
            no = "8001" if body["type"] == 3 else "8002"
            rows.append({
                "reportNo": no, "hospitalCode": ORG.code, "patientId": "P1", "visitType": "1", "visitNo": "V1",
                "idCard": "E12345678", "idType": "03", "modifyTime": body["endTime"],
                "items": [{"code": "CT-HEAD", "name": "颅脑CT平扫"}],
            })
        data = json.dumps({"code": "200", "data": rows}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def pacs_server() -> Iterator[str]:
    _Pacs.asked = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pacs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/pacs/report"
    server.shutdown()
    server.server_close()


def test_pacs_pull_from_a_local_http_server(pacs_server: str) -> None:
    src = build({
        "name": "pacs", "type": "pacs_http", "url": pacs_server, "window_minutes": 30, "lag_seconds": 0,
        "types": [3, 2],
        "fields": {"report_form_no": "reportNo", "org_code": "hospitalCode", "patient_id": "patientId", "event_type": "visitType",
                   "event_no": "visitNo", "id_no": "idCard", "id_type_code": "idType", "last_update_dtime": "modifyTime"},
        "item_fields": {"exam_item_code": "code", "exam_item_name": "name"},
    }, mapper=mapping.Mapper(lambda: mapping.table_of([("exam", "CT-HEAD", "210300001")])))
    start = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() - 3590))  # 2 windows, the 2nd a bit short
    recs = list(src.poll(start))
    assert [r.kind for r in recs] == ["exam", "void_exam", "exam", "void_exam"]  # two 30-minute windows
    assert [b["type"] for b in _Pacs.asked] == [3, 2, 3, 2] and _Pacs.asked[0]["startTime"] == start
    exam = recs[0].payload
    assert exam["exammaster"]["report_form_no"] == "8001" and exam["exam_subitem"][0]["exam_item_code"] == "210300001"
    assert recs[1].payload["report_form_no"] == "8002" and recs[1].payload["id_type"] == "03"
    assert recs[-1].watermark == _Pacs.asked[-1]["endTime"] == src.position  # type: ignore[attr-defined]
