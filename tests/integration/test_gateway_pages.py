"""The doctor's pages served by the gateway for local use (issue #6): the same widget, panel,
decision dialog and report view as the platform's, answered from the preload cache; decisions
kept and queued in the outbox; a down platform still answered from the cache."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from huren.client import HurenClient
from huren.context import Clock
from huren.gateway.local_api import create_preload_app
from huren.gateway.model import Record
from huren.gateway.preload_cache import PreloadCache
from huren.gateway.preload_conf import preload_conf
from huren.services.container import Container
from tests import samples
from tests.conftest import ORG_B, Api
from tests.integration import test_gateway_preload
from tests.integration.test_api_recognition import EXAM_CODE, LAB_CODE, VISIT
from tests.integration.test_gateway_preload import API_TOKEN, LOCAL, Gateway, Platform, _reports

catalog = test_gateway_preload.catalog  # the platform's catalog and ORG_B's code map, as a fixture here too
PAGE_TOKEN = "local-his-page-token-0123456789"
PATIENT = {"id_type_code": "01", "id_no": samples.ID_NO}


@pytest.fixture
def gateway(client: TestClient, tmp_path: Path, catalog: None) -> Iterator[Gateway]:
    platform = Platform(client)
    hc = HurenClient("http://testserver", ORG_B[0], ORG_B[4], ORG_B[5], http=client)
    clock = Clock()
    cache = PreloadCache(tmp_path / "gw" / "preload.db", hc, ttl_seconds=600, days=90, retry_seconds=30, clock=clock)
    queued: list[Record] = []
    app = create_preload_app(cache, enqueue=queued.extend, api_token=API_TOKEN, pages=(ORG_B[0], PAGE_TOKEN))
    with TestClient(app, base_url=LOCAL) as http:  # the HIS opens the pages on the gateway's machine: no API token
        yield Gateway(cache, http, queued, platform, clock)


def _q(**kw: str) -> dict[str, str]:
    return PATIENT | {"token": PAGE_TOKEN} | kw


def test_widget_and_panel_from_the_cache(gateway: Gateway, api_a: Api, container: Container) -> None:
    _reports(api_a, container)
    r = gateway.http.get("/ui/widget", params=_q())
    assert r.status_code == 200, r.text
    assert re.search(r'id="huren-widget"[^>]*data-count="2"', r.text), r.text
    calls = gateway.calls()
    panel = gateway.http.get("/ui/panel", params=_q())
    assert panel.status_code == 200
    assert "近期检查记录" in panel.text and "近期检验记录" in panel.text and "★" in panel.text
    assert gateway.calls() == calls  # answered from the fresh cache


def test_pages_need_the_page_token(gateway: Gateway) -> None:
    r = gateway.http.get("/ui/widget", params=PATIENT)
    assert r.status_code == 401
    assert "页面令牌" in r.text and "Traceback" not in r.text
    r = gateway.http.get("/ui/widget", params=PATIENT | {"token": "x" * 40})
    assert r.status_code == 401
    assert "页面令牌无效" in r.text


def test_decisions_are_kept_and_queued(gateway: Gateway, api_a: Api, container: Container) -> None:
    _reports(api_a, container)
    r = gateway.http.get("/ui/decide", params=[*_q().items(), ("check", EXAM_CODE), ("lab", LAB_CODE), *VISIT.items()])
    assert r.status_code == 200, r.text
    rows = re.findall(r'name="row" value="([^"]+)"', r.text)
    assert len(rows) == 2
    form: dict[str, str | list[str]] = {"token": PAGE_TOKEN, **PATIENT, **VISIT, "event_type": "1", "row": [html.unescape(v) for v in rows]}
    refused = gateway.http.post("/ui/decide", data=form | {"is_accept_0": "1"})
    assert refused.status_code == 422
    assert "尚未选择" in refused.text
    # the dialog is a reminder shown from the cache: queued for the platform's reminder log
    assert {rec.kind for rec in gateway.queued} == {"reminder"}
    rows = gateway.queued[0].payload["reminder_log"]  # one row per kind shown, as the platform logs its own
    assert [(r["item_codes"], r["ordered"], r["recognizable"], r["doc_code"]) for r in rows] == [
        (f"exam:{EXAM_CODE}", "1", "1", VISIT["doc_code"]), (f"lab:{LAB_CODE}", "1", "1", VISIT["doc_code"]),
    ]
    ok = gateway.http.post("/ui/decide", data=form | {"is_accept_0": "1", "is_accept_1": "2", "reason_1": "8"})
    assert ok.status_code == 200, ok.text
    assert "已保存 2 条互认记录" in ok.text
    assert sorted(rec.kind for rec in gateway.queued if rec.kind != "reminder") == ["accept", "accept"]
    kept = gateway.cache.decisions("01", samples.ID_NO)
    assert sorted((d["is_accept"], d["reason"] or "") for d in kept) == [("1", ""), ("2", "8")]


def test_report_view_falls_back_to_the_cache_when_the_platform_is_down(
    gateway: Gateway, api_a: Api, api_b: Api, container: Container
) -> None:
    _reports(api_a, container)
    assert gateway.http.get("/ui/panel", params=_q()).status_code == 200  # fills the cache
    lab = gateway.cache.load("01", samples.ID_NO)
    assert lab is not None
    report_id = lab.detail["labmaster"][0]["report_id"]
    up = gateway.http.get(f"/ui/report/lab/{report_id}", params={"token": PAGE_TOKEN})
    assert up.status_code == 200, up.text
    assert "g/L" in up.text
    assert gateway.queued == []  # the platform served (and logged) that view itself
    gateway.platform.down = True
    down = gateway.http.get(f"/ui/report/lab/{report_id}", params={"token": PAGE_TOKEN})
    assert down.status_code == 200, down.text
    assert "g/L" in down.text
    # the view served from the cache is queued for the platform's log (XC-P4), which takes it
    [view] = gateway.queued
    [row] = view.payload["reminder_log"]
    master = lab.detail["labmaster"][0]
    assert (view.kind, row["action"], row["type"]) == ("reminder", "view", "2")
    assert (row["hr_org_code"], row["hr_report_form_no"], row["id_no"]) == (master["org_code"], master["report_form_no"], samples.ID_NO)
    gateway.platform.down = False
    stored = api_b.post("/api/v1/reminder-logs", view.payload)
    assert stored.status_code == 200 and stored.json()["rows"] == 1, stored.text
    gateway.platform.down = True
    pdf = gateway.http.get(f"/ui/report/lab/{report_id}/pdf", params={"token": PAGE_TOKEN})
    assert pdf.status_code == 404
    assert "互认平台暂时无法访问" in pdf.text


def test_page_token_must_be_long(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="page_token"):
        preload_conf({"page_token": "short", "api_token": API_TOKEN}, tmp_path / "outbox.db", tmp_path)
    assert preload_conf({"page_token": PAGE_TOKEN, "api_token": API_TOKEN}, tmp_path / "outbox.db", tmp_path).page_token == PAGE_TOKEN


def test_saved_dialog_posts_to_the_configured_his_origins_only(
    client: TestClient, tmp_path: Path, catalog: None, api_a: Api, container: Container
) -> None:
    """``[preload] his_origins``: the gateway's saved dialog carries the huren:decisions message
    for those exact origins (his-bridge.js never posts to "*"); without it, to none."""
    conf = preload_conf(
        {"page_token": PAGE_TOKEN, "api_token": API_TOKEN, "his_origins": ["https://his.hospital.local:8443/"]},
        tmp_path / "outbox.db", tmp_path,
    )
    assert conf.his_origins == ("https://his.hospital.local:8443",)
    hc = HurenClient("http://testserver", ORG_B[0], ORG_B[4], ORG_B[5], http=client)
    cache = PreloadCache(tmp_path / "gw" / "preload.db", hc, ttl_seconds=600, days=90, retry_seconds=30, clock=Clock())
    queued: list[Record] = []
    _reports(api_a, container)
    for n, (origins, expected) in enumerate(((conf.his_origins, "https://his.hospital.local:8443"), ((), ""))):
        visit = VISIT | {"event_no": f"{VISIT['event_no']}-{n}"}  # a visit of its own: nothing decided yet
        app = create_preload_app(cache, enqueue=queued.extend, api_token=API_TOKEN, pages=(ORG_B[0], PAGE_TOKEN), his_origins=origins)
        with TestClient(app, base_url=LOCAL) as http:
            r = http.get("/ui/decide", params=[*_q().items(), ("check", EXAM_CODE), ("lab", LAB_CODE), *visit.items()])
            rows = re.findall(r'name="row" value="([^"]+)"', r.text)
            assert len(rows) == 2, r.text
            form = {"token": PAGE_TOKEN, **PATIENT, **visit, "event_type": "1", "row": [html.unescape(v) for v in rows]}
            ok = http.post("/ui/decide", data=form | {"is_accept_0": "1", "is_accept_1": "2", "reason_1": "8"})
            assert ok.status_code == 200, ok.text
            m = re.search(r'<script type="application/json" id="his-message" data-his-origins="([^"]*)"', ok.text)
            assert m is not None and m.group(1) == expected
            assert "huren:decisions" in ok.text


@pytest.mark.parametrize("bad", [["*"], ["https://his.local/path"], ["his.local"], "https://his.local", [1]])
def test_his_origins_must_be_exact_origins(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ValueError, match="his_origins"):
        preload_conf({"page_token": PAGE_TOKEN, "api_token": API_TOKEN, "his_origins": bad}, tmp_path / "outbox.db", tmp_path)
