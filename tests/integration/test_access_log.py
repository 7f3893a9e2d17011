"""Every read of patient data is in the access log (issue 10 §1.9), and each account is held to a
read rate, logged when hit (§1.11).

The read operations are enumerated from /openapi.json (every GET) and the read POSTs (questions
about a patient carry the ID number in the body, never in the URL). Each is called once, and a
new access-log row must appear, naming the patient where the answer names one. The reads that
are not of patient data are listed with the reason, and their answers are checked to hold no
patient's ID number.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from huren.client import HurenClient
from huren.crypto import keyfiles
from huren.services.audit import RATE_LIMITED
from huren.services.container import Container
from huren.store import audit as audit_store
from huren.store.tables import access_log
from tests import samples
from tests.conftest import ORG_A, ORG_B, Api, login
from tests.integration.access_world import ACCOUNTS, OPERATIONS, PATIENT, build_world, request_op

#: POST operations that are reads (a question about a patient in the body)
READ_POSTS = {
    "/api/v1/query/lab-reports", "/api/v1/query/exam-reports", "/api/v1/query/lab-abnormal", "/api/v1/query/exam-abnormal",
    "/api/v1/recognition/recent", "/api/v1/recognition/detail", "/api/v1/recognition/exists",
    "/api/v1/recognition/lab-reports", "/api/v1/recognition/exam-reports",
    "/api/v1/links",  # makes a link that serves a patient's PDF
    "/api/v1/recognition/visit-decisions",  # one visit's decisions, for a HIS that polls
    "/api/v1/imaging/patient-exams",  # a patient's exams with images elsewhere (YB-4.4.3.2)
}
#: reads whose credential is an image key, not the caller's token: logged under the key (``key:<id>``)
KEYED = {"/api/v1/imaging/uids"}
#: reads that hold no patient data, and why
NOT_PATIENT_DATA = {
    "/api/v1/orgs": "institutions",
    "/api/v1/dictionaries": "the dictionaries",
    "/api/v1/dictionaries/{name}": "a dictionary",
    "/api/v1/catalog": "the standard item catalog",
    "/api/v1/code-map": "an institution's code mapping",
    "/api/v1/code-map/unmapped": "an institution's item codes without a mapping",
    "/api/v1/directory/depts": "departments",
    "/api/v1/directory/staff": "the institution's staff (no patients)",
    "/api/v1/directory/devices": "lab instruments",
    "/api/v1/directory/qc-records": "QC records of instruments",
    "/api/v1/quality/completeness": "counts per day and department",
    "/api/v1/quality/timeliness": "upload delays",
    "/api/v1/quality/rectification": "counts of rejected submissions",
    "/api/v1/quality/overview": "counts and rates per institution",
    "/api/v1/statistics/recognition": "counts",
    "/api/v1/statistics/recognized-elsewhere": "counts",
    "/api/v1/transport/key": "an institution's public key",
    "/api/v1/imaging/studies/{study_uid}/keys": "the keys issued for a study: kind, issuer, expiry (never the key, no patient)",
    "/api/v1/platforms": "the platform tree",
}
#: reads of platform accounts and supervisors only (issue 13), not the hospital account's: the
#: feed's reads are logged per batch (tests/integration/test_federation.py), the others hold no patient
FEDERATION_READS = {
    "/api/v1/platforms/{code}/changes", "/api/v1/platforms/{code}/files/{sha256}",
    "/api/v1/platforms/{code}/watermark", "/api/v1/federation/status",
}


def _rows(c: Container) -> int:
    with c.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(access_log)).scalar_one())


def _since(c: Container, n: int) -> list[dict[str, Any]]:
    with c.db.read() as conn:
        return [r for r in audit_store.list_access(conn, c.keys.fields(), limit=1000) if r["id"] > n]


def _last_id(c: Container) -> int:
    with c.db.read() as conn:
        rows = audit_store.list_access(conn, c.keys.fields(), limit=1)
    return int(rows[0]["id"]) if rows else 0


@pytest.fixture
def world(client: TestClient, container: Container) -> dict[str, Any]:
    w = build_world(client, container)
    patient = {"patient_id": "1878", "id_type_code": "01", "id_no": samples.ID_NO, "name": "张三", "sex_code": "1",
               "birth_date": "1967-02-01", "card_no": "K1", "phone": "13800000000", "registered_at": "2024-03-01 08:00:00"}
    r = w["apis"]["hospital"].post("/api/v1/directory/patients", {"patient": [patient]})
    assert r.status_code == 200, r.text
    return w


def test_every_read_of_patient_data_is_logged(client: TestClient, container: Container, world: dict[str, Any]) -> None:
    schema = client.get("/openapi.json").json()
    gets = {p for p, item in schema["paths"].items() if "get" in item}
    posts = {p for p, item in schema["paths"].items() if "post" in item}
    assert posts >= READ_POSTS
    assert gets >= FEDERATION_READS
    reads = sorted(gets - set(NOT_PATIENT_DATA) - FEDERATION_READS) + sorted(READ_POSTS)
    assert set(NOT_PATIENT_DATA) <= gets
    api: Api = world["apis"]["hospital"]
    unlogged = []
    for path in reads:
        method = "POST" if path in READ_POSTS else "GET"
        assert (method, path) in OPERATIONS
        before = _last_id(container)
        r = request_op(api, "hospital", method, path, world)
        assert r.status_code == 200, (path, r.text[:300])
        rows = _since(container, before)
        # logged, and by the patient's ID number when the answer names the patient
        if not rows or (samples.ID_NO in r.text and not any(x["id_no"] == samples.ID_NO for x in rows)):
            unlogged.append((method, path, [x["action"] for x in rows]))
        if path in KEYED:
            assert rows and all(str(x["username"]).startswith("key:") for x in rows), rows
        else:
            assert all(x["org_code"] == ORG_A[0] and x["username"] == ORG_A[4] for x in rows)
    assert unlogged == [], unlogged
    # the reads that are not of patient data hold no patient's ID number
    for path in sorted(NOT_PATIENT_DATA):
        r = request_op(api, "hospital", "GET", path, world)
        assert r.status_code in (200, 404), (path, r.text[:200])
        assert samples.ID_NO not in r.text, path


def test_the_two_reads_that_were_not_logged(container: Container, world: dict[str, Any]) -> None:
    """The accept-record list and a rejected submission's raw bytes (§1.9's findings)."""
    api: Api = world["apis"]["hospital"]
    before = _last_id(container)
    assert api.get("/api/v1/recognition/accept").json()["count"] == 2
    rows = _since(container, before)
    assert {(r["action"], r["id_no"]) for r in rows} == {("list_accept_records", samples.ID_NO)} and len(rows) == 2
    before = _last_id(container)
    assert api.get(f"/api/v1/quality/rejected/{world['rejected']}/payload").status_code == 200
    [row] = _since(container, before)
    # the log names the store id, as it does for reports (refs are for the outside)
    stored = container.refs.rejected_id(world["rejected"])
    assert row["action"] == "rejected_payload" and row["target"].startswith(f"rejected:{stored} lab")


# -- the read rate ------------------------------------------------------------------------------------


def test_a_doctor_over_the_read_rate_is_refused_and_logged(client: TestClient, container: Container, world: dict[str, Any]) -> None:
    container.audit.limiter.per_minute = 5
    doc: Api = world["apis"]["doctor"]
    url = f"/api/v1/lab-reports/{world['b_lab']}"
    for _ in range(5):
        assert doc.get(url).status_code == 200
    mark = _last_id(container)
    over = doc.get(url)
    assert over.status_code == 429 and over.json()["code"] == "too_many", over.text
    assert int(over.headers["Retry-After"]) >= 1 and "每分钟最多读取 5 次" in over.json()["message"]
    assert [p["rule"] for p in over.json()["problems"]] == ["read_rate"]
    assert doc.post("/api/v1/query/lab-reports", PATIENT).status_code == 429  # every read counts, whatever its route
    # one log row for the limit (not one per refusal), none for the refused reads
    new = _since(container, mark)
    assert [(r["action"], r["username"]) for r in new] == [(RATE_LIMITED, "doc")]
    # other accounts are not held by this one's reads; the system account has no limit by default
    assert world["apis"]["admin"].get(url).status_code == 200
    for _ in range(8):
        assert world["apis"]["hospital"].get(url).status_code == 200
    # a minute on, the doctor reads again
    container.clock.offset += 61
    assert doc.get(url).status_code == 200


def test_the_read_rate_holds_on_soap_and_pages(client: TestClient, container: Container, world: dict[str, Any]) -> None:
    container.audit.limiter.per_minute = 2
    platform = keyfiles.init_platform_key(container.settings.key_dir)
    acct = ACCOUNTS["doctor"]
    hc = HurenClient(str(client.base_url), acct[0], acct[4], acct[5], platform_key=platform.public, http=client)
    query = f"<root><id_no>{samples.ID_NO}</id_no><id_type>01</id_type></root>"
    assert not hc.call("GetCheckLabList", query).startswith("error:")
    assert not hc.call("GetCheckLabList", query).startswith("error:")
    answer = hc.call("GetCheckLabList", query)
    assert answer.startswith("error:查询过于频繁"), answer
    token = world["apis"]["doctor"].headers["Authorization"].split()[1]
    page = client.get(f"/ui/report/lab/{world['b_lab']}", params={"token": token})
    assert page.status_code == 429 and "请求过于频繁" in page.text and "查询过于频繁" in page.text and "Traceback" not in page.text


def test_a_refusal_inside_a_transaction_is_logged_after_it(container: Container, world: dict[str, Any]) -> None:
    """exists writes its access-log rows in its own transaction: the limit's row follows it."""
    container.audit.limiter.per_minute = 1
    doc: Api = world["apis"]["doctor"]
    body = PATIENT | {"check": ["115"], "lab": []}
    assert doc.post("/api/v1/recognition/exists", body).status_code == 200
    n = _last_id(container)
    assert doc.post("/api/v1/recognition/exists", body).status_code == 429
    for _ in range(100):  # written from another thread once the refused transaction is over
        if _since(container, n):
            break
        time.sleep(0.02)
    assert [r["action"] for r in _since(container, n)] == [RATE_LIMITED]
    # the writer thread ends once its row is committed (it may still be finishing just after)
    for t in [t for t in threading.enumerate() if t.name == "huren-audit"]:
        t.join(timeout=5)
    assert not [t for t in threading.enumerate() if t.name == "huren-audit" and t.is_alive()]


def test_the_limit_is_per_account(container: Container) -> None:
    from huren.context import Principal

    container.audit.limiter.per_minute = 1
    a, b = Principal(ORG_A[0], "x", "doctor"), Principal(ORG_B[0], "x", "doctor")
    container.audit.check_rate(a, "t")
    container.audit.check_rate(b, "t")  # the same user name at another institution is another account


def test_the_setting_reaches_the_service(client: TestClient) -> None:
    c: Container = client.app.state.container  # type: ignore[attr-defined]
    assert c.audit.limiter.per_minute == c.settings.read_rate_per_minute == 120
    assert c.audit.limiter.system_per_minute == c.settings.system_read_rate_per_minute == 0
    assert login(client, ORG_A)  # a login is not a read
