"""Daily counts (XJ-1.2.2.5 / XC-P3), completeness (XC-P5), institutions by region (XC-P7), audit."""

from __future__ import annotations

from huren.services.container import Container
from huren.store import audit
from tests import samples
from tests.conftest import ORG_A, ORG_B, Api


def test_daily_counts_and_completeness(api_a: Api, api_b: Api, api_sup: Api) -> None:
    r = api_a.post("/api/v1/daily-counts", samples.daily())
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == 2
    # resending the same day replaces, not adds
    assert api_a.post("/api/v1/daily-counts", samples.daily()).status_code == 200

    # declare 2 lab reports for 2024-03-11 in dept 1511; register one
    daily = {"lab_exam_report": [{
        "last_update_dtime": "2024-03-12 03:00:00", "org_code": ORG_A[0], "date_t": "2024-03-11", "dept_code": "1511",
        "dept_name": "保健科门诊", "dept_std_code": "A01", "dept_std_name": "预防保健科", "lab_num": "2", "exam_num": "0"}]}
    assert api_a.post("/api/v1/daily-counts", daily).status_code == 200
    assert api_a.post("/api/v1/lab-reports", samples.lab()).status_code == 200

    res = api_a.get("/api/v1/quality/completeness", params={"day_from": "2024-03-11", "day_to": "2024-03-11"}).json()
    [row] = res["rows"]
    assert (row["lab_num"], row["received_lab"], row["lab_diff"], row["complete"]) == (2, 1, 1, False)
    assert res["differences"] == [row]

    may = api_a.get("/api/v1/quality/completeness", params={"day_from": "2024-05-29", "day_to": "2024-05-29"}).json()
    assert {(r["dept_code"], r["exam_num"], r["received_exam"]) for r in may["rows"]} == {("1190000", 74, 0), ("1180000", 490, 0)}

    # an institution sees only its own; the supervisor sees any
    assert api_b.get("/api/v1/quality/completeness", params={"org_code": ORG_A[0]}).status_code == 403
    sup = api_sup.get("/api/v1/quality/completeness", params={"org_code": ORG_A[0], "day_from": "2024-03-11", "day_to": "2024-03-11"})
    assert sup.status_code == 200 and len(sup.json()["rows"]) == 1


def test_daily_counts_bad_input(api_a: Api, api_b: Api) -> None:
    bad = samples.daily()
    bad["lab_exam_report"][0]["lab_num"] = "12345"  # NUMBER(4)
    bad["lab_exam_report"][1]["date_t"] = "2024-5-29"
    r = api_a.post("/api/v1/daily-counts", bad)
    assert r.status_code == 422
    fields = {(p["field"], p["rule"]) for p in r.json()["problems"]}
    assert ("lab_exam_report[0].lab_num", "max_digits") in fields
    assert ("lab_exam_report[1].date_t", "date_format") in fields
    assert api_b.post("/api/v1/daily-counts", samples.daily()).status_code == 403
    kept = api_a.get("/api/v1/quality/rejected").json()["rejected"]
    assert [(x["kind"], x["fixed"]) for x in kept] == [("daily", False)]
    assert api_a.post("/api/v1/daily-counts", samples.daily()).status_code == 200  # a later good upload
    assert api_a.get("/api/v1/quality/rejected").json()["rejected"][0]["fixed"] is True


def test_orgs_by_region(api_a: Api) -> None:
    codes = lambda region: {o["code"] for o in api_a.get("/api/v1/orgs", params={"region": region}).json()["orgs"]}  # noqa: E731
    assert codes("650102") == {ORG_A[0]}
    assert codes("650103") == {ORG_B[0]}
    assert {ORG_A[0], ORG_B[0]} <= codes("650100")
    assert {ORG_A[0], ORG_B[0]} <= codes("650000")
    assert codes("110000") == set()


def test_patient_reads_are_audited(api_a: Api, api_b: Api, container: Container) -> None:
    rid = api_a.post("/api/v1/lab-reports", samples.lab()).json()["report_id"]
    q = {"id_type_code": "01", "id_no": samples.ID_NO, "start": "2024-01-01 00:00:00", "end": "2024-12-31 00:00:00"}
    api_b.post("/api/v1/query/lab-reports", q)
    api_b.get(f"/api/v1/lab-reports/{rid}")
    api_b.get(f"/api/v1/lab-reports/{rid}/pdf")
    with container.db.read() as conn:
        rows = audit.list_access(conn, container.keys.fields(), id_type_code="01", id_no=samples.ID_NO)
    assert {r["action"] for r in rows} == {"query_lab", "view_lab", "pdf_lab"}
    assert all(r["org_code"] == ORG_B[0] and r["username"] == ORG_B[4] for r in rows)


def test_query_rejects_bad_id(api_a: Api) -> None:
    r = api_a.post("/api/v1/query/lab-reports", {"id_type_code": "01", "id_no": "123"})
    assert r.status_code == 422
    assert r.json()["problems"][0]["field"] == "id_no"
    r = api_a.post("/api/v1/query/lab-reports", {"id_type_code": "01", "id_no": samples.ID_NO, "start": "yesterday"})
    assert r.status_code == 422
    assert r.json()["problems"][0]["field"] == "start"


def test_dictionaries(api_a: Api) -> None:
    names = {d["name"]: d["size"] for d in api_a.get("/api/v1/dictionaries").json()["dictionaries"]}
    assert names["STD_DEPT"] > 150 and names["REJECT_REASON"] == 10
    dept = api_a.get("/api/v1/dictionaries/STD_DEPT").json()["items"]
    assert {"code": "A32.05", "name": "超声诊断专业"} in dept
    assert api_a.get("/api/v1/dictionaries/NOPE").status_code == 404


def test_openapi_lists_interface_ids(api_a: Api) -> None:
    spec = api_a.client.get("/openapi.json").json()
    ops = [o for p in spec["paths"].values() for o in p.values()]
    assert len(ops) >= 20
    for o in ops:
        assert o.get("x-interface-ids"), o.get("summary")
        assert any("\u4e00" <= ch <= "\u9fff" for ch in o["summary"]), o["summary"]
