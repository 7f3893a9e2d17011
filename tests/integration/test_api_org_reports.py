"""BJ-1.2.1: an institution's reports listed by its code, a page at a time, access-checked
(a hospital its own, a supervisor within its region), every patient listed in the access log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from huren.services.container import Container
from huren.store.tables import access_log
from tests.conftest import ORG_A, ORG_B, Api, login
from tests.integration.test_api_recognition import recent_exam, recent_lab

ORG_C = ("652300001", "昌吉州人民医院", "652301", "3甲", "his", "password-c")  # outside the supervisor's 6501


def _lab(c: Container, n: int) -> dict[str, Any]:
    p = recent_lab(c, days_ago=1 + n, report_form_no=f"F-{n:03d}")
    return p


def test_a_hospital_pages_through_its_own_reports(api_a: Api, api_b: Api, container: Container) -> None:
    for n in range(5):
        assert api_a.post("/api/v1/lab-reports", _lab(container, n)).status_code == 200
    assert api_a.post("/api/v1/exam-reports", recent_exam(container)).status_code == 200
    first = api_a.get("/api/v1/org-reports", params={"org_code": ORG_A[0], "limit": 2})
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["total"], body["count"], body["offset"], body["org_name"]) == (5, 2, 0, ORG_A[1])
    assert [r["report_form_no"] for r in body["reports"]] == ["F-000", "F-001"]  # newest first
    rest = api_a.get("/api/v1/org-reports", params={"org_code": ORG_A[0], "limit": 2, "offset": 4}).json()
    assert [r["report_form_no"] for r in rest["reports"]] == ["F-004"]
    exams = api_a.get("/api/v1/org-reports", params={"org_code": ORG_A[0], "kind": "exam"}).json()
    assert exams["total"] == 1 and exams["reports"][0]["kind"] == "exam" and exams["reports"][0]["has_pdf"] in (True, False)
    # the time window narrows the list
    window = api_a.get("/api/v1/org-reports", params={"org_code": ORG_A[0], "start": rest["reports"][0]["authenticator_dtime"][:10] + "T00:00:00",
                                                        "end": rest["reports"][0]["authenticator_dtime"][:10] + "T23:59:59"}).json()
    assert [r["report_form_no"] for r in window["reports"]] == ["F-004"]
    # every patient listed is in the access log
    with container.db.read() as conn:
        logged = conn.execute(select(access_log.c.target).where(access_log.c.action == "list_lab_by_org")).scalars().all()
    assert len(logged) == 2 + 1 + 1
    # another hospital may not list A's reports
    refused = api_b.get("/api/v1/org-reports", params={"org_code": ORG_A[0]})
    assert refused.status_code == 403, refused.text
    assert api_b.get("/api/v1/org-reports", params={"org_code": ORG_B[0]}).json()["total"] == 0


def test_a_supervisor_lists_within_its_region(api_a: Api, api_sup: Api, client: Any, container: Container) -> None:
    container.directory.add_org(ORG_C[0], ORG_C[1], ORG_C[2], ORG_C[3], user=ORG_C[4], password=ORG_C[5])
    api_c = login(client, ORG_C)
    c_lab = recent_lab(container, org_code=ORG_C[0], report_form_no="C-1")
    for item in c_lab["lab_subitem"]:
        item["org_code"] = ORG_C[0]
    assert api_c.post("/api/v1/lab-reports", c_lab).status_code == 200, "C registers its own report"
    assert api_a.post("/api/v1/lab-reports", _lab(container, 0)).status_code == 200
    inside = api_sup.get("/api/v1/org-reports", params={"org_code": ORG_A[0]})
    assert inside.status_code == 200 and inside.json()["total"] == 1
    outside = api_sup.get("/api/v1/org-reports", params={"org_code": ORG_C[0]})
    assert outside.status_code == 403, outside.text  # 652301 is not within 650100
    assert api_c.get("/api/v1/org-reports", params={"org_code": ORG_C[0]}).json()["total"] == 1


def test_bad_list_input_is_refused_by_name(api_a: Api) -> None:
    for params, field in (
        ({"org_code": ORG_A[0], "limit": 0}, "limit"),
        ({"org_code": ORG_A[0], "limit": 501}, "limit"),
        ({"org_code": ORG_A[0], "offset": -1}, "offset"),
        ({"org_code": ORG_A[0], "kind": "xray"}, "kind"),
        ({}, "org_code"),
        ({"org_code": ORG_A[0], "start": "2026-11-02T00:00:00", "end": "2026-11-01T00:00:00"}, "start"),
    ):
        r = api_a.get("/api/v1/org-reports", params=params)
        assert r.status_code == 422, (params, r.text)
        assert any(p["field"].endswith(field) for p in r.json()["problems"]), (params, r.text)
    assert api_a.get("/api/v1/org-reports", params={"org_code": "NO-SUCH"}).status_code in (403, 404)
