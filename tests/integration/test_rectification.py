"""XC-S2 rectification (issue 10 §2.1), REST and the supervision page, on SQLite and PostgreSQL:
"只看未整改" filters before paging, the 已整改 / 未整改 counts cover every row, a rejection is fixed only
by a later accepted submission with the same report key, and a per-institution progress view."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from huren.services.container import Container
from tests import samples
from tests.conftest import ORG_A, ORG_B, SUPERVISOR, Api, login
from tests.web.test_login import web_login


def lab(form: str, *, bad: bool = False) -> dict[str, Any]:
    p = samples.lab()
    p["labmaster"]["report_form_no"] = form
    for item in p["lab_subitem"]:
        item["report_form_no"] = form
    if bad:
        p["labmaster"]["sex_code"] = "7"  # not in STD_SEX
    return p


def rejected(api: Api, **params: Any) -> dict[str, Any]:
    r = api.get("/api/v1/quality/rejected", params=params)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_only_open_is_filtered_before_paging_and_counts_cover_all(api_a: Api, container: Container) -> None:
    for i in range(3):  # three old rejections, never fixed
        assert api_a.post("/api/v1/lab-reports", lab(f"OPEN{i}", bad=True)).status_code == 422
    container.clock.offset += 60
    for i in range(5):  # five newer ones, each fixed by a later accepted report of its key
        assert api_a.post("/api/v1/lab-reports", lab(f"FIX{i}", bad=True)).status_code == 422
        container.clock.offset += 1
        assert api_a.post("/api/v1/lab-reports", lab(f"FIX{i}")).status_code == 200

    page = rejected(api_a, only_open="true", limit=2)
    assert [r["report_key"].split("|")[1] for r in page["rejected"]] == ["OPEN2", "OPEN1"]
    assert (page["count"], page["total"], page["open"], page["fixed"]) == (2, 3, 3, 5)
    nxt = rejected(api_a, only_open="true", limit=2, offset=2)
    assert [r["report_key"].split("|")[1] for r in nxt["rejected"]] == ["OPEN0"]
    everything = rejected(api_a, limit=1)
    assert (everything["count"], everything["total"], everything["open"], everything["fixed"]) == (1, 8, 3, 5)


def test_fixed_only_by_a_later_accepted_submission_of_the_same_key(api_a: Api, container: Container) -> None:
    # a report registered, then in the same second a bad resubmission of it: the earlier
    # registration does not fix the later rejection
    assert api_a.post("/api/v1/lab-reports", lab("K1")).status_code == 200
    bad = lab("K1", bad=True)
    bad["labmaster"]["last_update_dtime"] = "2024-03-12 08:00:00"
    assert api_a.post("/api/v1/lab-reports", bad).status_code == 422
    [row] = rejected(api_a)["rejected"]
    assert row["fixed"] is False

    # another report accepted later, or a PDF attached to this one, does not fix it either
    container.clock.offset += 5
    assert api_a.post("/api/v1/lab-reports", lab("K2")).status_code == 200
    rid = api_a.post("/api/v1/lab-reports", lab("K1")).json()["report_id"]  # as stored: unchanged, no new version
    put = api_a.put(f"/api/v1/lab-reports/{rid}/pdf", content=samples.PDF_BYTES, headers={"Content-Type": "application/pdf"})
    assert put.status_code == 200
    assert rejected(api_a)["rejected"][0]["fixed"] is False

    # a refused stale resubmission is no fix
    old = lab("K1")
    old["labmaster"]["last_update_dtime"] = "2024-01-01 00:00:00"
    assert api_a.post("/api/v1/lab-reports", old).status_code == 409
    assert [r["fixed"] for r in rejected(api_a)["rejected"]] == [False, False]

    # the corrected report, accepted: fixes the invalid rejection (and the stale one: same key)
    good = lab("K1")
    good["labmaster"]["last_update_dtime"] = "2024-03-12 08:00:00"
    assert api_a.post("/api/v1/lab-reports", good).status_code == 200
    assert [r["fixed"] for r in rejected(api_a)["rejected"]] == [True, True]


def test_progress_per_institution(client: TestClient, api_a: Api, api_b: Api, container: Container) -> None:
    first = container.clock.now()
    assert api_a.post("/api/v1/lab-reports", lab("A1", bad=True)).status_code == 422
    container.clock.offset += 3600
    assert api_a.post("/api/v1/lab-reports", lab("A2", bad=True)).status_code == 422
    assert api_a.post("/api/v1/lab-reports", lab("A2")).status_code == 200  # fixes A2
    b = samples.lab()
    b["labmaster"]["org_code"] = ORG_B[0]
    b["labmaster"]["sex_code"] = "7"
    assert api_b.post("/api/v1/lab-reports", b).status_code == 422  # kept for ORG_B
    container.clock.offset += 3 * 86400
    api_a, api_b, api_sup = login(client, ORG_A), login(client, ORG_B), login(client, SUPERVISOR)  # fresh tokens

    mine = api_a.get("/api/v1/quality/rectification")
    assert mine.status_code == 200, mine.text
    [a] = mine.json()["orgs"]
    days = (container.clock.now().date() - first.date()).days  # 3, or 4 when the hour added crossed midnight
    assert (a["org_code"], a["total"], a["fixed"], a["open"], a["days_open"]) == (ORG_A[0], 2, 1, 1, days)
    assert a["oldest_open_at"] and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", a["oldest_open_at"])
    assert api_b.get("/api/v1/quality/rectification", params={"org_code": ORG_A[0]}).status_code == 403

    everyone = {o["org_code"]: o for o in api_sup.get("/api/v1/quality/rectification").json()["orgs"]}
    assert everyone[ORG_A[0]]["open"] == 1 and ORG_B[0] in everyone


def test_the_page_shows_all_counts_and_progress(client: TestClient, api_a: Api, container: Container) -> None:
    for i in range(3):
        assert api_a.post("/api/v1/lab-reports", lab(f"P{i}", bad=True)).status_code == 422
    container.clock.offset += 60
    for i in range(52):  # more fixed rows than one page (50) holds, all newer than the open ones
        assert api_a.post("/api/v1/lab-reports", lab(f"Q{i}", bad=True)).status_code == 422
        assert api_a.post("/api/v1/lab-reports", lab(f"Q{i}")).status_code == 200
    client.cookies.clear()
    web_login(client, ORG_A)
    html = client.get("/ui/quality/rejected").text
    kpi = lambda name: re.search(rf'data-kpi="{name}"><div class="v">([^<]*)<', html).group(1)  # type: ignore[union-attr]  # noqa: E731
    assert (kpi("open"), kpi("fixed"), kpi("shown")) == ("3", "52", "55")
    assert 'id="progress"' in html and f'data-org="{ORG_A[0]}"' in html and 'data-open="3"' in html
    only = client.get("/ui/quality/rejected", params={"only_open": "1"}).text
    assert only.count('<tr class="bad" data-id=') == 3  # the open ones, although 52 newer rows are fixed
