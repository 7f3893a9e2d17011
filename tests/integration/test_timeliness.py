"""Upload timeliness (XC-P5): delay from a report's approval to its receipt, per institution and
day of approval, on SQLite and PostgreSQL — the service and GET /api/v1/quality/timeliness."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from huren.context import Principal
from huren.errors import Forbidden, InvalidInput
from huren.services.container import Container
from huren.store.tables import REPORT_TABLES
from tests.conftest import ORG_A, ORG_B, SUPERVISOR, Api
from tests.integration.test_api_recognition import recent_exam, recent_lab

SUP = Principal(SUPERVISOR[0], SUPERVISOR[4], "supervisor")
A = Principal(ORG_A[0], ORG_A[4], "hospital")
B = Principal(ORG_B[0], ORG_B[4], "hospital")


def received_after(c: Container, kind: str, ref: str, hours: float) -> datetime:
    """Pretend the report (by its ref) reached the platform ``hours`` after its approval; its approval time."""
    t = REPORT_TABLES[kind][0]
    report_id = c.refs.report_id(kind, ref)
    with c.db.write() as conn:
        approved: datetime = conn.execute(select(t.c.authenticator_dtime).where(t.c.id == report_id)).scalar_one()
        conn.execute(update(t).where(t.c.id == report_id).values(received_at=approved + timedelta(hours=hours)))
    return approved


@pytest.fixture
def delays(api_a: Api, container: Container) -> dict[str, Any]:
    """Two days ago, ORG_A approved two lab reports and an exam report, received after 2, 10 and
    30 hours; and one lab report three days ago, received 50 hours later, then voided."""
    ids = {
        "lab1": api_a.post("/api/v1/lab-reports", recent_lab(container, 2)).json()["report_id"],
        "lab2": api_a.post("/api/v1/lab-reports", recent_lab(container, 2, report_form_no="T-2")).json()["report_id"],
        "exam": api_a.post("/api/v1/exam-reports", recent_exam(container, 2)).json()["report_id"],
    }
    voided = recent_lab(container, 3, report_form_no="T-3")
    ids["voided"] = api_a.post("/api/v1/lab-reports", voided).json()["report_id"]
    day = received_after(container, "lab", ids["lab1"], 2).date()
    received_after(container, "lab", ids["lab2"], 10)
    received_after(container, "exam", ids["exam"], 30)
    received_after(container, "lab", ids["voided"], 50)
    m = voided["labmaster"]
    filt = {k: m[k] for k in ("org_code", "report_form_no", "patient_id", "event_type", "event_no", "id_no")} | {"id_type": "01"}
    assert api_a.post("/api/v1/lab-reports/void", filt).status_code == 200
    return {"day": day.isoformat(), "ids": ids}


def test_delays_per_institution_and_day(container: Container, delays: dict[str, Any]) -> None:
    res = container.quality.timeliness(A)
    [row] = res["rows"]
    assert row["org_code"] == ORG_A[0] and row["date_t"] == delays["day"]
    assert (row["reports"], row["lab_reports"], row["exam_reports"]) == (3, 2, 1)
    assert (row["avg_hours"], row["median_hours"], row["max_hours"]) == (14.0, 10.0, 30.0)
    assert row["late"] == 1 and row["late_rate"] == pytest.approx(1 / 3, abs=1e-4)
    # every day of the 7-day window is on the axis; the days without a report count 0
    assert len(res["days"]) == 7 and [d["reports"] for d in res["days"]].count(0) == 6
    [busy] = [d for d in res["days"] if d["reports"]]
    assert busy == {"date_t": delays["day"]} | {k: v for k, v in row.items() if k not in ("org_code", "date_t")}
    assert row["timeliness"] == pytest.approx(66.7) and res["orgs"][0]["timeliness"] == pytest.approx(66.7)
    assert res["total"]["reports"] == 3 and res["late_hours"] == 24
    # another threshold
    assert container.quality.timeliness(A, late_hours=5)["rows"][0]["late"] == 2
    assert container.quality.timeliness(A, late_hours=48)["total"]["late"] == 0


def test_window_and_scope(container: Container, delays: dict[str, Any]) -> None:
    day = datetime.fromisoformat(delays["day"]).date()
    assert container.quality.timeliness(A, day_from=day + timedelta(days=1), day_to=day + timedelta(days=1))["rows"] == []
    assert len(container.quality.timeliness(A, day_from=day, day_to=day)["rows"]) == 1
    # the voided report (three days ago) is not counted
    three = day - timedelta(days=1)
    empty = container.quality.timeliness(A, day_from=three, day_to=three)
    assert empty["rows"] == [] and empty["total"] == {
        "reports": 0, "lab_reports": 0, "exam_reports": 0, "avg_hours": None, "median_hours": None,
        "max_hours": None, "late": 0, "late_rate": None, "timeliness": None,
    }
    # the default window ends yesterday and spans 7 days
    today = container.clock.now().date()
    res = container.quality.timeliness(B)
    assert (res["day_from"], res["day_to"]) == ((today - timedelta(days=7)).isoformat(), (today - timedelta(days=1)).isoformat())
    assert res["rows"] == []  # ORG_B sees only its own
    with pytest.raises(Forbidden):
        container.quality.timeliness(B, org_code=ORG_A[0])
    assert [r["org_code"] for r in container.quality.timeliness(SUP)["rows"]] == [ORG_A[0]]
    assert container.quality.timeliness(SUP, org_code=ORG_B[0])["rows"] == []
    with pytest.raises(InvalidInput):
        container.quality.timeliness(A, day_from=day, day_to=day - timedelta(days=1))
    with pytest.raises(InvalidInput):
        container.quality.timeliness(A, late_hours=0)


def test_rest_endpoint(api_a: Api, api_b: Api, api_sup: Api, delays: dict[str, Any]) -> None:
    params = {"day_from": delays["day"], "day_to": delays["day"]}
    r = api_a.get("/api/v1/quality/timeliness", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["code"] == "ok"
    [row] = body["rows"]
    assert (row["reports"], row["avg_hours"], row["median_hours"], row["max_hours"], row["late"]) == (3, 14.0, 10.0, 30.0, 1)
    assert api_a.get("/api/v1/quality/timeliness", params=params | {"late_hours": "2.5"}).json()["rows"][0]["late"] == 2
    assert api_sup.get("/api/v1/quality/timeliness", params=params | {"org_code": ORG_A[0]}).json()["rows"] == [row]
    assert api_b.get("/api/v1/quality/timeliness", params={"org_code": ORG_A[0]}).status_code == 403
    assert api_a.get("/api/v1/quality/timeliness", params={"late_hours": "0"}).status_code == 422
    assert api_a.get("/api/v1/quality/timeliness", params={"day_from": "2024-13-01"}).status_code == 422
    bad = api_a.get("/api/v1/quality/timeliness", params={"day_from": delays["day"], "day_to": "2000-01-01"})
    assert bad.status_code == 422 and bad.json()["problems"][0]["field"] == "day_from"
    assert api_a.client.get("/api/v1/quality/timeliness").status_code == 401
    spec = api_a.client.get("/openapi.json").json()
    assert spec["paths"]["/api/v1/quality/timeliness"]["get"]["x-interface-ids"] == ["XC-P5"]
