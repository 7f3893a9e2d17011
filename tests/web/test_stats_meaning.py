"""Issue 11 item 10: statistics that keep their meaning — KPI cards equal under every grouping, n
beside each trend point, the 检查 / 检验 split, the reasons grouped by the six situations of the
national rules (adding up to the rejected decisions), and the cost avoided (Σ fee of the accepted
items, from the catalog's optional fee column)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from huren.context import Principal
from huren.domain import dictionaries
from huren.services.container import Container
from huren.store import catalog as catalog_store
from tests.conftest import ORG_B, SUPERVISOR, Api
from tests.integration.test_api_recognition import EXAM_CODE, LAB_CODE, decision, patient, recent_exam, recent_lab
from tests.web.test_login import web_login

LAB_FEE = "12.50"


def _world(container: Container, api_a: Api, api_b: Api) -> None:
    with container.db.write() as conn:
        catalog_store.upsert_items(conn, [
            {"kind": "lab", "code": LAB_CODE, "name": "血清白蛋白测定", "unit": "g/L", "recognizable": True,
             "validity_days": 30, "min_level": 2, "region_scope": "", "source_note": "", "fee": LAB_FEE},
            {"kind": "exam", "code": EXAM_CODE, "name": "CT平扫+三维重建", "unit": "", "recognizable": True,
             "validity_days": 90, "min_level": 2, "region_scope": "", "source_note": "", "fee": "300"},
        ], now=container.clock.now())
    container.recognition.invalidate()
    api_a.post("/api/v1/lab-reports", recent_lab(container))
    api_a.post("/api/v1/exam-reports", recent_exam(container))
    assert api_b.post("/api/v1/recognition/exists", patient(check=[EXAM_CODE], lab=[LAB_CODE])).status_code == 200
    now = container.clock.now().strftime("%Y-%m-%d %H:%M:%S")
    records = [decision(LAB_CODE, "14437173", "2", "1", record_time=now),
               decision(EXAM_CODE, "71468573", "1", "2", "4", record_time=now)]  # reason 4 → 病情变化
    assert api_b.post("/api/v1/recognition/accept", {"sehr_accept_record": records}).status_code == 200


def _kpis(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-kpi="([a-z_]+)"><div class="v">([^<]*)<', html))


def test_kpis_keep_their_meaning_and_the_page_says_more(client: TestClient, api_a: Api, api_b: Api, container: Container) -> None:
    _world(container, api_a, api_b)
    web_login(client, SUPERVISOR, next_url="/ui/stats")
    pages = {by: client.get("/ui/stats", params={"by": by}).text for by in ("org", "dept", "item", "day")}
    cards = {by: _kpis(html) for by, html in pages.items()}
    assert cards["org"]["reminders"] == "2" and cards["org"]["accepted"] == "1" and cards["org"]["rejected"] == "1"
    assert all(c == cards["org"] for c in cards.values()), cards  # the same under every grouping
    assert cards["org"]["cost_avoided"] == LAB_FEE  # Σ fee of the accepted items (the rejected CT not counted)
    html = pages["item"]
    assert "n=2" in html and 'class="point-note"' in html  # n beside the day's trend point
    assert 'id="stats_kinds"' in html and "检查与检验的互认决定" in html
    situations = dict(re.findall(r'data-situation="([^"]+)">(\d+)<', html))
    assert list(situations) == list(dictionaries.REPEAT_SITUATIONS)
    assert sum(map(int, situations.values())) == int(cards["org"]["rejected"]) and situations["病情变化"] == "1"
    assert "日期（月-日）" in html and "项次" in html and "互认率（%）" in html  # units on the axes


def test_situations_add_up_and_cost_is_the_sum_of_fees(api_a: Api, api_b: Api, container: Container) -> None:
    _world(container, api_a, api_b)
    sup = Principal(SUPERVISOR[0], SUPERVISOR[4], "supervisor")
    for by in ("org", "dept", "item", "day"):
        t = container.statistics.recognition(sup, by=by)["total"]
        assert sum(x["count"] for x in t["rejected_by_situation"]) == t["rejected"] == 1
        assert (t["cost_avoided"], t["cost_items_priced"], t["cost_items_unpriced"]) == (12.5, 1, 0)
    assert {dictionaries.repeat_situation(c) for c in dictionaries.load("REJECT_REASON")} == set(dictionaries.REPEAT_SITUATIONS)
    assert dictionaries.repeat_situation("") == dictionaries.repeat_situation("99") == "其他"
    # no fee in the catalog: no estimate, the accepted item counted as unpriced
    with container.db.write() as conn:
        catalog_store.update_item(conn, "lab", LAB_CODE, {"fee": None}, now=container.clock.now())
    t = container.statistics.recognition(Principal(ORG_B[0], ORG_B[4], "hospital"), by="org")["total"]
    assert (t["cost_avoided"], t["cost_items_unpriced"]) == (None, 1)
