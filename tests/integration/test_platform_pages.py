"""The page 「平台与同步」 and the 「按平台」 groupings (issue 13 §1–4) on one deployment hosting the
region and two virtual cities, with a real city (its own deployment) whose feed is applied here:
the regional supervisor sees the whole tree and the real city's sync state with its alerts, a city
supervisor its own city only, an administrator its own institution's platform; statistics and the
completeness check per city add up to the region's total."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from huren.context import Principal
from huren.errors import Conflict
from huren.services.container import Container
from huren.services.platform_view import platform_view
from huren.store.tables import federation_peer
from tests import samples
from tests.conftest import ORG_A, SUPERVISOR, login
from tests.integration.access_world import ADMIN_A, DOCTOR_A, ORG_C, build_world, decision

REGION, URUMQI, CHANGJI, KARAMAY = "XJ", "XJ-6501", "XJ-6523", "XJ-6502"
SUP_C = ("652300000", "昌吉州卫生健康委员会", "652300", "3", "sup", "password-sc")
SUP_R = ("650000000", "自治区卫生健康委员会", "650000", "3", "sup", "password-sr")
SYNC_K = ("650200000", "克拉玛依市卫生健康委员会", "650200", "3", "sync", "password-k")


def _org_entry(seq: int) -> dict[str, Any]:
    return {"seq": seq, "kind": "org", "org_code": SYNC_K[0], "at": "2026-11-30 08:00:00",
            "org": {"code": SYNC_K[0], "name": SYNC_K[1], "region_code": SYNC_K[2], "level": 3, "grade": "", "platform": KARAMAY, "disabled": False}}


@pytest.fixture
def region(client: TestClient, container: Container) -> dict[str, Any]:
    """The access tests' world (A and B in Urumqi, C in Changji, A's reports and decisions), then
    the tree: the region, Urumqi and Changji as virtual cities, Karamay with its own deployment
    whose feed has been applied here up to 1 of 40, with one gap seen."""
    world = build_world(client, container)
    c = container
    c.federation.add_platform(REGION, "新疆维吾尔自治区平台", "region", division="650000")
    c.federation.add_platform(URUMQI, "乌鲁木齐市虚拟平台", "city", parent=REGION, division="650100", virtual=True)
    c.federation.add_platform(CHANGJI, "昌吉州虚拟平台", "city", parent=REGION, division="652300", virtual=True)
    c.federation.add_platform(KARAMAY, "克拉玛依市平台", "city", parent=REGION, division="650200", local=False)
    for org in (SUP_C, SUP_R):
        c.directory.add_org(*org[:4], user=org[4], password=org[5], role="supervisor")
    c.directory.add_org(*SYNC_K[:4], user=SYNC_K[4], password=SYNC_K[5], role="platform")
    c.federation.assign([SYNC_K[0]], KARAMAY)
    sync = Principal(SYNC_K[0], SYNC_K[4], "platform")
    c.federation.apply(sync, KARAMAY, {"last_seq": 40, "changes": [_org_entry(1)]})
    with pytest.raises(Conflict):
        c.federation.apply(sync, KARAMAY, {"last_seq": 40, "changes": [_org_entry(5)]})
    # a decision in Changji (C accepts B's report): statistics have something in both cities
    r = login(client, ORG_C).post("/api/v1/recognition/accept", {"sehr_accept_record": [decision("lab", "B-lab", "250301002")]})
    assert r.status_code == 200, r.text
    return world


def _page(client: TestClient, acct: tuple[str, ...], **params: str) -> Any:
    token = login(client, acct).headers["Authorization"].split()[1]
    return client.get("/ui/platforms", params={"token": token, **params})


def _platforms(html: str, table: str) -> list[str]:
    body = html.split(f'id="{table}"', 1)[1].split("</table>", 1)[0] if f'id="{table}"' in html else ""
    return re.findall(r'<tr data-platform="([^"]+)"', body)


def test_the_regional_supervisor_sees_the_whole_tree_and_the_sync_alerts(client: TestClient, region: dict[str, Any]) -> None:
    r = _page(client, SUP_R)
    assert r.status_code == 200, r.text[-400:]
    assert _platforms(r.text, "platform-tree") == [REGION, URUMQI, KARAMAY, CHANGJI]
    row = r.text.split(f'<tr data-platform="{CHANGJI}"', 1)[1].split("</tr>", 1)[0]
    assert 'data-virtual="true"' in row and 'data-local="true"' in row and 'data-depth="1"' in row and "昌吉州人民医院" in row
    karamay = r.text.split('id="platform-tree"', 1)[1].split(f'<tr data-platform="{KARAMAY}"', 1)[1].split("</tr>", 1)[0]
    assert 'data-local="false"' in karamay and "自有部署" in karamay
    assert _platforms(r.text, "sync-peers") == [KARAMAY]
    peer = r.text.split('id="sync-peers"', 1)[1].split("</table>", 1)[0]
    assert '<td class="num">1</td>' in peer and '<td class="num">40</td>' in peer  # applied 1 of 40
    assert 'data-col="backlog">39' in peer
    assert "变更序号不连续：应从 2 开始，收到 5" in peer
    assert re.search(r'data-alert="gap" data-platform="XJ-6502">克拉玛依市平台：检测到 1 次变更序号缺口', r.text)
    assert "平台与同步" in r.text and 'href="/ui/platforms' in r.text  # in the menu


def test_a_city_supervisor_sees_its_city_only(client: TestClient, region: dict[str, Any]) -> None:
    for acct, code, others in ((SUPERVISOR, URUMQI, ("昌吉州", "克拉玛依", CHANGJI, KARAMAY)),
                               (SUP_C, CHANGJI, ("乌鲁木齐市虚拟平台", "克拉玛依", URUMQI, KARAMAY, ORG_A[1]))):
        r = _page(client, acct)
        assert r.status_code == 200, r.text[-400:]
        assert _platforms(r.text, "platform-tree") == [code]
        assert _platforms(r.text, "sync-peers") == [] and "sync-alerts" not in r.text
        for word in others:
            assert word not in r.text, (acct[0], word)


def test_an_administrator_sees_its_own_institution_s_platform(client: TestClient, region: dict[str, Any]) -> None:
    r = _page(client, ADMIN_A)
    assert r.status_code == 200
    assert _platforms(r.text, "platform-tree") == [URUMQI] and "本机构所属平台" in r.text
    assert "自治区" not in r.text.split('id="platform-tree"', 1)[1]
    assert _page(client, DOCTOR_A).status_code == 403
    # the real city's own system account: its platform and its sync state
    k = _page(client, SYNC_K)
    assert _platforms(k.text, "platform-tree") == [KARAMAY] and _platforms(k.text, "sync-peers") == [KARAMAY]


def test_silence_and_a_growing_backlog_are_alerts(client: TestClient, container: Container, region: dict[str, Any]) -> None:
    with container.db.write() as conn:
        conn.execute(update(federation_peer).where(federation_peer.c.platform == KARAMAY)
                     .values(applied_at=container.clock.now() - timedelta(hours=2)))
    view = platform_view(container)
    sup = Principal(SUP_R[0], SUP_R[4], "supervisor")
    quiet = view.sync(sup, silent_minutes=180)
    assert [a["kind"] for a in quiet["alerts"]] == ["gap"]
    loud = view.sync(sup, silent_minutes=30)
    assert loud["alerts"][0]["kind"] == "silent" and loud["alerts"][0]["level"] == "bad"
    assert "已 2.0 小时没有应用新的变更（超过 30 分钟），积压 39 条" in loud["alerts"][0]["message"]
    assert _page(client, SUP_R, silent_minutes="30").text.count('data-alert="silent"') == 1
    assert _page(client, SUP_R, silent_minutes="abc").status_code == 422
    # the source's last sequence number rises at each reading: the backlog grows
    sync = Principal(SYNC_K[0], SYNC_K[4], "platform")
    for last in (60, 80):
        container.federation.apply(sync, KARAMAY, {"last_seq": last, "changes": []})
        out = view.sync(sup, silent_minutes=180)
    grew = [a for a in out["alerts"] if a["kind"] == "backlog"]
    assert grew and "积压在增长" in grew[0]["message"] and "增至 79 条" in grew[0]["message"]


def test_statistics_and_completeness_per_city_add_up_to_the_region(client: TestClient, container: Container,
                                                                  region: dict[str, Any]) -> None:
    c = container
    sup = Principal(SUP_R[0], SUP_R[4], "supervisor")
    res = c.statistics.recognition(sup, by="platform")
    rows = {r["key"]: r for r in res["rows"]}
    assert list(rows) == [URUMQI, KARAMAY, CHANGJI, REGION]  # cities first, then the region's own institutions
    assert rows[URUMQI]["accepted"] == 2 and rows[CHANGJI]["accepted"] == 1 and rows[KARAMAY]["accepted"] == 0
    assert rows[REGION]["name"] == "新疆维吾尔自治区平台（直属机构）" and rows[CHANGJI]["virtual"]
    assert sum(r["accepted"] for r in rows.values()) == res["total"]["accepted"] == 3
    city = c.statistics.recognition(Principal(SUPERVISOR[0], SUPERVISOR[4], "supervisor"), by="platform")
    assert [r["key"] for r in city["rows"]] == [URUMQI] and city["total"]["accepted"] == 2

    day = (c.clock.now() - timedelta(days=1)).date().isoformat()
    daily = samples.daily()
    for row in daily["lab_exam_report"]:
        row |= {"org_code": ORG_C[0], "date_t": day}
    assert login(client, ORG_C).post("/api/v1/daily-counts", daily).status_code == 200
    comp = c.quality.completeness(sup)
    plats = {p["platform"]: p for p in comp["platforms"]}
    assert list(plats) == [URUMQI, KARAMAY, CHANGJI, REGION]
    assert plats[URUMQI]["institutions"] == 3 and plats[URUMQI]["received"] == 4  # the lab and exam reports of A and B
    assert plats[CHANGJI]["declared"] > 0 and plats[CHANGJI]["received"] == 0 and plats[CHANGJI]["completeness"] == 0.0
    assert sum(p["received"] for p in plats.values()) == sum(o["received"] for o in comp["orgs"])

    token = login(client, SUP_R).headers["Authorization"].split()[1]
    page = client.get("/ui/stats", params={"token": token, "by": "platform"})
    assert page.status_code == 200, page.text[-400:]
    detail = page.text.split("按平台明细", 1)[1]
    assert "昌吉州虚拟平台（XJ-6523）" in detail and "克拉玛依市平台（XJ-6502）" in detail, detail[:3000]
    page = client.get("/ui/quality/completeness", params={"token": token})
    assert page.status_code == 200 and 'id="completeness_platforms"' in page.text
    assert 'data-platform="XJ-6523"' in page.text.split('id="completeness_platforms"', 1)[1].split("</table>", 1)[0]
    csv = client.get("/ui/quality/completeness", params={"token": token, "export": "completeness_platforms", "format": "csv"})
    assert csv.status_code == 200 and "昌吉州虚拟平台" in csv.text and "克拉玛依市平台" in csv.text
