"""A demo hospital to point the gateway at (``huren demo --hospital DIR``).

It plays the first demo institution (:func:`huren.demo.generator.demo_orgs` ``[0]``, whose account
``huren demo`` creates on the platform) and writes into ``DIR``:

* ``his.db`` — an SQLite database as a hospital's LIS / PACS / RIS / HIS would expose it:

  ==================  =======================================================================
  view                what
  ==================  =======================================================================
  v_lab_report        lab reports (labmaster fields of seed 002) with the PDF as a BLOB ``pdf``
  v_lab_item          their items (lab_subitem); a few items carry the LIS's *local* codes
                      (ALB, TP, GLU, K, NA, CREA) that the platform's code map makes standard
  v_exam_report       PACS exam reports (exammaster) with ``pdf_path`` to a file under pacs_pdf/
  v_exam_item         their items (exam_subitem); local codes CT-HEAD, DR-CHEST, US-ABD
  v_ris_report        RIS exam reports with some columns named otherwise (BGDH, BRID, JZLSH,
                      GXSJ, SFZH, XM, ZT) — mapped back in gateway.toml with ``columns``
  v_ris_item          their items (BGDH, JZLSH, XMDM, XMMC, GXSJ)
  v_patient / v_dept / v_staff   HIS master data (HZ-1/2/3)
  ==================  =======================================================================

  Some reports share one ``last_update_dtime`` (as a LIS that stamps a whole batch does).
* ``drop/`` — a drop folder with PDF + JSON pairs and one PDF + XML pair (BJ-1.2.1);
* ``gateway.toml`` (mode 0600) — a gateway configuration reading all of the above and uploading
  to the platform at ``platform_url`` with the institution's demo account, and serving the local
  API and the doctor's pages on 127.0.0.1:8765 (``[preload]``) with freshly generated
  ``api_token`` and ``page_token`` — returned in the summary (``huren demo`` prints them).

:func:`add_reports` and :func:`void_report` change the hospital afterwards, as its LIS would (new
reports; a report withdrawn with ``data_status = 0``) — for trying the gateway and for tests.
"""

from __future__ import annotations

import base64
import json
import os
import random
import sqlite3
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from huren.demo.generator import DemoOrg, DemoPatient, demo_orgs, make_exam_report, make_lab_report, make_patients
from huren.domain import kinds
from huren.domain.fields import EXAM_SUBITEM, EXAMMASTER, LAB_SUBITEM, LABMASTER
from huren.domain.masterdata import DEPT, PATIENT, STAFF
from huren.gateway.demo_config import CONFIG as CONFIG
from huren.gateway.demo_config import DB as DB
from huren.gateway.demo_config import PRELOAD_LISTEN as PRELOAD_LISTEN
from huren.gateway.demo_config import RIS_ITEM, RIS_MASTER, gateway_toml, new_token

DT = "%Y-%m-%d %H:%M:%S"

#: The LIS's / PACS's local codes of some standard items (the platform demo maps them back).
LOCAL_CODES = {
    "lab": {"250301002": "ALB", "250301001": "TP", "250302001": "GLU", "250304001": "K", "250304002": "NA", "250307002": "CREA"},
    "exam": {"210300001": "CT-HEAD", "210102015": "DR-CHEST", "220301001": "US-ABD"},
}
_INT = {"event_type", "data_status", "serial_no", "recognition"}  # stored as INTEGER, like NUMBER columns


def _cols(fields: Iterable[str], *extra: str) -> str:
    return ", ".join([*(f"{f} {'INTEGER' if f in _INT else 'TEXT'}" for f in fields), *extra])


def _schema(org: DemoOrg) -> str:
    lab, lab_item = [f.name for f in LABMASTER], [f.name for f in LAB_SUBITEM]
    exam, exam_item = [f.name for f in EXAMMASTER], [f.name for f in EXAM_SUBITEM]

    def select(fields: list[str], renamed: Mapping[str, str] | None = None) -> str:
        return ", ".join(f"{f} AS {renamed[f]}" if renamed and f in renamed else f for f in fields)

    org_code = org.code.replace("'", "''")
    return f"""
    CREATE TABLE lis_report ({_cols(lab, "pdf BLOB", "PRIMARY KEY (org_code, report_form_no, patient_id, event_type, event_no)")});
    CREATE TABLE lis_item ({_cols(lab_item)});
    CREATE TABLE pacs_report ({_cols(exam, "pdf_path TEXT", "system TEXT NOT NULL", "PRIMARY KEY (org_code, report_form_no, patient_id, event_type, event_no)")});
    CREATE TABLE pacs_item ({_cols(exam_item)});
    CREATE INDEX ix_lis_report_t ON lis_report (last_update_dtime);
    CREATE INDEX ix_lis_item_r ON lis_item (report_form_no);
    CREATE INDEX ix_pacs_report_t ON pacs_report (last_update_dtime);
    CREATE INDEX ix_pacs_item_r ON pacs_item (report_form_no);
    CREATE TABLE his_patient ({_cols([f.name for f in PATIENT if f.name != "org_code"], "PRIMARY KEY (patient_id)")});
    CREATE TABLE his_dept ({_cols([f.name for f in DEPT if f.name != "org_code"], "PRIMARY KEY (dept_code)")});
    CREATE TABLE his_staff ({_cols([f.name for f in STAFF if f.name != "org_code"], "PRIMARY KEY (staff_code)")});

    CREATE VIEW v_lab_report AS SELECT {select(lab)}, pdf FROM lis_report;
    CREATE VIEW v_lab_item AS SELECT {select(lab_item)} FROM lis_item;
    CREATE VIEW v_exam_report AS SELECT {select(exam)}, pdf_path FROM pacs_report WHERE system = 'PACS';
    CREATE VIEW v_exam_item AS SELECT {select(exam_item)} FROM pacs_item
        WHERE report_form_no IN (SELECT report_form_no FROM pacs_report WHERE system = 'PACS');
    CREATE VIEW v_ris_report AS SELECT {select(exam, RIS_MASTER)}, pdf_path AS BGLJ FROM pacs_report WHERE system = 'RIS';
    CREATE VIEW v_ris_item AS SELECT {select(exam_item, RIS_ITEM)} FROM pacs_item
        WHERE report_form_no IN (SELECT report_form_no FROM pacs_report WHERE system = 'RIS');
    CREATE VIEW v_patient AS SELECT '{org_code}' AS org_code, * FROM his_patient;
    CREATE VIEW v_dept AS SELECT '{org_code}' AS org_code, * FROM his_dept;
    CREATE VIEW v_staff AS SELECT '{org_code}' AS org_code, * FROM his_staff;
    """


def _localise(kind: str, payload: dict[str, Any]) -> None:
    """Put the LIS / PACS local code in place of the standard one, where the hospital has one."""
    k = kinds.BY_NAME[kind]
    node, code_field = k.item_node, k.item_code_field
    for item in payload[node]:
        item[code_field] = LOCAL_CODES[kind].get(item[code_field], item[code_field])


def _share_stamps(reports: list[dict[str, Any]], every: int = 4) -> None:
    """Give runs of ``every`` reports (in time order) one ``last_update_dtime``: the latest of the run."""
    def master(p: dict[str, Any]) -> dict[str, Any]:
        m: dict[str, Any] = p.get("labmaster") or p["exammaster"]
        return m

    reports.sort(key=lambda p: master(p)["last_update_dtime"])
    for i in range(0, len(reports) - every + 1, every * 2):
        run = reports[i : i + every]
        stamp = max(master(p)["last_update_dtime"] for p in run)
        for p in run:
            master(p)["last_update_dtime"] = stamp
            for item in p.get("lab_subitem") or p.get("exam_subitem") or []:
                item["last_update_dtime"] = stamp


def _insert(conn: sqlite3.Connection, table: str, row: Mapping[str, Any]) -> None:
    names = list(row)
    conn.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})", [row[n] for n in names])


def _store(conn: sqlite3.Connection, directory: Path, kind: str, payload: dict[str, Any], system: str = "") -> None:
    if kind == "lab":
        master = dict(payload["labmaster"])
        master["pdf"] = base64.b64decode(master["pdf"]) if master.get("pdf") else None
        _insert(conn, "lis_report", master)
        for item in payload["lab_subitem"]:
            _insert(conn, "lis_item", item)
        return
    master = dict(payload["exammaster"])
    pdf = master.pop("pdf", "")
    if pdf:
        rel = f"pacs_pdf/{master['report_form_no']}.pdf"
        (directory / rel).parent.mkdir(parents=True, exist_ok=True)
        (directory / rel).write_bytes(base64.b64decode(pdf))
        master["pdf_path"] = rel
    master["system"] = system
    _insert(conn, "pacs_report", master)
    for item in payload["exam_subitem"]:
        _insert(conn, "pacs_item", item)


def _when(rng: random.Random, now: datetime, days: float) -> datetime:
    return now - timedelta(minutes=15 + rng.randrange(int(days * 24 * 60)))


def _reports(
    rng: random.Random, org: DemoOrg, patients: list[DemoPatient], now: datetime, lab: int, exam: int, days: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    labs = [make_lab_report(rng, org, rng.choice(patients), _when(rng, now, days)) for _ in range(lab)]
    exams = [make_exam_report(rng, org, rng.choice(patients), _when(rng, now, days)) for _ in range(exam)]
    for p in labs:
        _localise("lab", p)
    for p in exams:
        _localise("exam", p)
    _share_stamps(labs)
    _share_stamps(exams)
    return labs, exams


def _master_data(org: DemoOrg, patients: list[DemoPatient], reports: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    by_id = {(p.id_type_code, p.id_no): p for p in patients}
    out: dict[str, dict[str, dict[str, Any]]] = {"patient": {}, "dept": {}, "staff": {}}
    for payload in reports:
        m = payload.get("labmaster") or payload["exammaster"]
        person = by_id[(m["id_type_code"], m["id_no"])]
        first = (datetime.strptime(m["participant_dtime"], DT) - timedelta(days=1)).replace(hour=8, minute=0, second=0)
        old = out["patient"].get(m["patient_id"])
        if old is None or old["registered_at"] > first.strftime(DT):
            out["patient"][m["patient_id"]] = {
                "patient_id": m["patient_id"], "id_type_code": person.id_type_code, "id_no": person.id_no,
                "name": person.name, "sex_code": person.sex_code, "birth_date": person.birth_date.isoformat(),
                "card_no": person.card_no, "phone": "", "registered_at": first.strftime(DT),
            }
        for prefix in ("participant_dept", "performer_dept", "authenticator_dept"):
            code = m.get(f"{prefix}_code")
            if code:
                out["dept"][code] = {
                    "dept_code": code, "dept_name": m[f"{prefix}_name"], "dept_std_code": m[f"{prefix}_std_code"],
                    "dept_std_name": m[f"{prefix}_std_name"], "campus": "", "active": 1,
                }
        for who, dept in (("participant", "participant_dept_code"), ("author", "performer_dept_code"), ("authenticator", "performer_dept_code")):
            code = m.get(f"{who}_id")
            if code:
                out["staff"][code] = {
                    "staff_code": code, "name": m[f"{who}_name"], "dept_code": m[dept],
                    "title": "", "licence_no": "", "active": 1,
                }
    return out


def _store_master_data(conn: sqlite3.Connection, data: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> None:
    for node, table in (("patient", "his_patient"), ("dept", "his_dept"), ("staff", "his_staff")):
        for row in data[node].values():
            names = list(row)
            conn.execute(
                f"INSERT OR REPLACE INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                [row[n] for n in names],
            )


def _xml(payload: Mapping[str, Any]) -> str:
    def item(row: Mapping[str, Any]) -> str:
        return "<item " + " ".join(f"{k}={quoteattr(str(v))}" for k, v in row.items()) + "/>"

    master = {k: v for k, v in payload["labmaster"].items() if k != "pdf"}
    items = "".join(item(i) for i in payload["lab_subitem"])
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<root><labmaster>{item(master)}</labmaster><lab_subitem>{items}</lab_subitem></root>\n'


def _drop(directory: Path, reports: list[dict[str, Any]]) -> None:
    drop = directory / "drop"
    drop.mkdir(parents=True, exist_ok=True)
    for i, payload in enumerate(reports):
        master = dict(payload["labmaster"])
        pdf = base64.b64decode(master.pop("pdf"))
        name = f"LIS{master['report_form_no']}"
        (drop / f"{name}.pdf").write_bytes(pdf)
        if i == len(reports) - 1:
            (drop / f"{name}.xml").write_text(_xml(payload), encoding="utf-8")
        else:
            body = {"labmaster": master, "lab_subitem": payload["lab_subitem"]}
            (drop / f"{name}.json").write_text(json.dumps(body, ensure_ascii=False, indent=1), encoding="utf-8")


def create(
    directory: Path,
    *,
    lab_reports: int = 40,
    exam_reports: int = 30,
    drop_pairs: int = 4,
    seed: int = 20241123,
    platform_url: str = "http://127.0.0.1:8000",
    now: datetime | None = None,
) -> dict[str, Any]:
    """Create the demo hospital in ``directory`` (refused when ``his.db`` is already there); a summary."""
    directory = Path(directory)
    db = directory / DB
    if db.exists():
        raise FileExistsError(f"{db} 已存在：请为演示医院选择一个空文件夹")
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    org = demo_orgs()[0]
    now = (now or datetime.now()).replace(microsecond=0)
    patients = make_patients(rng, max(8, (lab_reports + exam_reports) // 3))
    labs, exams = _reports(rng, org, patients, now, lab_reports, exam_reports, days=3)
    dropped = [make_lab_report(rng, org, rng.choice(patients), _when(rng, now, 1)) for _ in range(drop_pairs)]
    ris = exams[1::3]
    with sqlite3.connect(db) as conn:
        conn.executescript(_schema(org))
        for p in labs:
            _store(conn, directory, "lab", p)
        for p in exams:
            _store(conn, directory, "exam", p, "RIS" if any(p is r for r in ris) else "PACS")
        master = _master_data(org, patients, [*labs, *exams, *dropped])
        _store_master_data(conn, master)
    conn.close()
    _drop(directory, dropped)
    config = directory / CONFIG
    api_token, page_token = new_token(), new_token()
    text = gateway_toml(directory, org, platform_url, api_token=api_token, page_token=page_token)
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the account's password and the tokens
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    patient = next(iter(master["patient"].values()))
    return {
        "directory": str(directory.resolve()),
        "database": str(db.resolve()),
        "config": str(config.resolve()),
        "org_code": org.code,
        "org_name": org.name,
        "lab_reports": len(labs),
        "exam_reports_pacs": len(exams) - len(ris),
        "exam_reports_ris": len(ris),
        "drop_pairs": len(dropped),
        "patients": len(master["patient"]),
        "depts": len(master["dept"]),
        "staff": len(master["staff"]),
        "preload": {
            "listen": PRELOAD_LISTEN,
            "api_token": api_token,
            "page_token": page_token,
            "widget": f"http://{PRELOAD_LISTEN}/ui/widget?id_type_code={patient['id_type_code']}&id_no={patient['id_no']}&token={page_token}",
        },
    }


def add_reports(directory: Path, *, lab: int = 10, exam: int = 0, seed: int = 1, now: datetime | None = None) -> list[str]:
    """Add reports to the hospital's LIS / PACS tables, as its systems would; their report numbers."""
    directory = Path(directory)
    rng = random.Random(seed)
    org = demo_orgs()[0]
    now = (now or datetime.now()).replace(microsecond=0)
    patients = make_patients(rng, max(4, (lab + exam) // 2))
    labs, exams = _reports(rng, org, patients, now, lab, exam, days=0.5)
    with sqlite3.connect(directory / DB) as conn:
        for p in labs:
            _store(conn, directory, "lab", p)
        for p in exams:
            _store(conn, directory, "exam", p, "PACS")
        _store_master_data(conn, _master_data(org, patients, [*labs, *exams]))
    conn.close()
    return [p["labmaster"]["report_form_no"] for p in labs] + [p["exammaster"]["report_form_no"] for p in exams]


def void_report(directory: Path, kind: str, report_form_no: str, *, now: datetime | None = None) -> int:
    """Withdraw a report as the LIS / PACS would: ``data_status = 0`` and a new last_update_dtime;
    the number of reports changed."""
    table = {"lab": "lis_report", "exam": "pacs_report"}[kind]
    stamp = (now or datetime.now()).strftime(DT)
    with sqlite3.connect(Path(directory) / DB) as conn:
        n = conn.execute(
            f"UPDATE {table} SET data_status = 0, last_update_dtime = ? WHERE report_form_no = ?", (stamp, report_form_no)
        ).rowcount
    conn.close()
    return n
