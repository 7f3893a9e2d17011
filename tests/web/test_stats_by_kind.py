"""The statistics page (issue 10 §2.2): the 检查 / 检验 split, and each hospital's own results
recognized by other institutions."""

from __future__ import annotations

import re
from html import unescape

from fastapi.testclient import TestClient

from huren.services.container import Container
from huren.store import catalog as catalog_store
from tests.conftest import ORG_A, ORG_B, SUPERVISOR, Api
from tests.integration.test_api_recognition import EXAM_CODE, LAB_CODE, decision, patient, recent_exam, recent_lab
from tests.web.test_login import web_login


def _text(html: str, element_id: str) -> str:
    m = re.search(rf'id="{element_id}"[^>]*>(.*?)</p>', html, re.S)
    assert m, f"#{element_id} missing"
    return unescape(re.sub(r"<[^>]+>", "", m.group(1)))


def test_stats_page_splits_kinds_and_shows_results_recognized_elsewhere(
    client: TestClient, api_a: Api, api_b: Api, container: Container
) -> None:
    with container.db.write() as conn:
        catalog_store.upsert_items(conn, [
            {"kind": "lab", "code": LAB_CODE, "name": "血清白蛋白测定", "unit": "g/L", "recognizable": True,
             "validity_days": 30, "min_level": 2, "region_scope": "", "source_note": ""},
            {"kind": "exam", "code": EXAM_CODE, "name": "CT平扫+三维重建", "unit": "", "recognizable": True,
             "validity_days": 90, "min_level": 2, "region_scope": "", "source_note": ""},
        ], now=container.clock.now())
    container.recognition.invalidate()
    api_a.post("/api/v1/lab-reports", recent_lab(container))
    api_a.post("/api/v1/exam-reports", recent_exam(container))
    assert api_b.post("/api/v1/recognition/exists", patient(check=[EXAM_CODE], lab=[LAB_CODE])).status_code == 200
    now = container.clock.now().strftime("%Y-%m-%d %H:%M:%S")
    records = [decision(LAB_CODE, "14437173", "2", "1", record_time=now),
               decision(EXAM_CODE, "71468573", "1", "2", "4", record_time=now)]
    assert api_b.post("/api/v1/recognition/accept", {"sehr_accept_record": records}).status_code == 200

    web_login(client, ORG_B, next_url="/ui/stats")
    b = client.get("/ui/stats").text
    assert _text(b, "stats-by-kind") == "检查：提醒 1 次，接受互认 0，不予互认 1，引用 0；检验：提醒 1 次，接受互认 1，不予互认 0，引用 0。"
    assert "接受 0 次，不予互认 0 次" in _text(b, "recognized-elsewhere")  # B's own results: nobody decided on them

    web_login(client, ORG_A, next_url="/ui/stats")
    a = _text(client.get("/ui/stats").text, "recognized-elsewhere")
    assert a == f"{ORG_A[1]}的结果被外院互认：接受 1 次，不予互认 1 次（检查接受 0 次，检验接受 1 次），来自 1 家机构。"

    web_login(client, SUPERVISOR, next_url="/ui/stats")
    assert 'id="recognized-elsewhere"' not in client.get("/ui/stats").text  # the region as a whole: no one hospital
    picked = client.get("/ui/stats", params={"org_code": ORG_A[0]}).text
    assert "接受 1 次" in _text(picked, "recognized-elsewhere")
