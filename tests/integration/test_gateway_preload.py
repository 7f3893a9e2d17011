"""The gateway's preload cache and local API (XJ-1.3, XC-L-note) against a real in-process platform:
a swipe fills the cache, later questions are answered locally while fresh (no platform call),
exists-for-order answered locally equals the platform's answer, a stale entry is fetched again,
a down platform is answered from the stale cache (``"stale": true``), decisions are validated at
the hospital and handed to the outbox."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from huren.client import HurenClient
from huren.context import Clock
from huren.domain import idcard
from huren.gateway import config as gateway_config
from huren.gateway.local_api import create_preload_app
from huren.gateway.model import Record
from huren.gateway.preload import start
from huren.gateway.preload_cache import PreloadCache
from huren.gateway.preload_conf import parse_listen, preload_conf
from huren.services.container import Container
from huren.store import catalog as catalog_store
from tests import samples
from tests.conftest import ORG_A, ORG_B, Api
from tests.integration.test_api_recognition import (
    EXAM_CODE,
    LAB_CODE,
    VISIT,
    decision,
    patient,
    recent_exam,
    recent_lab,
)

TTL = 600
CJK = re.compile(r"[\u4e00-\u9fff]")
API_TOKEN = "hospital-his-preload-token-2026"
LOCAL = "http://127.0.0.1:8765"  # the listener's default address: the Host the local API answers
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def local_client(app: Any, **kw: Any) -> TestClient:
    """The HIS on the gateway's machine: the listener's address and the API token."""
    return TestClient(app, base_url=LOCAL, headers=AUTH, **kw)


class Platform:
    """Counts the gateway's calls to the platform and can make the platform unreachable.

    The gateway and the test share the platform's TestClient; the gateway's local API runs its
    handlers in worker threads, the test in the main thread — so a request from another thread
    than the main one is the gateway's."""

    def __init__(self, client: TestClient) -> None:
        self.calls: list[str] = []
        self.down = False
        client.event_hooks = {"request": [self._hook], "response": []}

    def _hook(self, request: httpx2.Request) -> None:
        if threading.current_thread() is threading.main_thread():
            return
        if self.down:
            raise httpx2.ConnectError("connection refused", request=request)
        self.calls.append(request.url.path)


class Gateway:
    def __init__(self, cache: PreloadCache, http: TestClient, queued: list[Record], platform: Platform, clock: Clock) -> None:
        self.cache, self.http, self.queued, self.platform, self.clock = cache, http, queued, platform, clock

    def post(self, path: str, json: Any) -> Any:
        return self.http.post(path, json=json)

    def calls(self) -> int:
        return len(self.platform.calls)


@pytest.fixture
def catalog(container: Container) -> None:
    with container.db.write() as conn:
        catalog_store.upsert_items(
            conn,
            [
                {"kind": "lab", "code": LAB_CODE, "name": "血清白蛋白测定", "unit": "g/L", "recognizable": True,
                 "validity_days": 30, "min_level": 2, "region_scope": "65", "source_note": ""},
                {"kind": "lab", "code": "250301001", "name": "血清总蛋白测定", "unit": "g/L", "recognizable": True,
                 "validity_days": 30, "min_level": 2, "region_scope": "", "source_note": ""},
                {"kind": "exam", "code": EXAM_CODE, "name": "CT平扫+三维重建", "unit": "", "recognizable": True,
                 "validity_days": 90, "min_level": 2, "region_scope": "", "source_note": ""},
            ],
            now=container.clock.now(),
        )
        catalog_store.upsert_mappings(
            conn, ORG_B[0], [{"kind": "lab", "local_code": "ALB-LOC", "local_name": "白蛋白", "std_code": LAB_CODE}],
            now=container.clock.now(),
        )
    container.recognition.invalidate()


@pytest.fixture
def gateway(client: TestClient, tmp_path: Path, catalog: None) -> Iterator[Gateway]:
    platform = Platform(client)
    hc = HurenClient("http://testserver", ORG_B[0], ORG_B[4], ORG_B[5], http=client)
    clock = Clock()
    cache = PreloadCache(tmp_path / "gw" / "preload.db", hc, ttl_seconds=TTL, days=90, retry_seconds=30, clock=clock)
    queued: list[Record] = []
    with local_client(create_preload_app(cache, enqueue=queued.extend, api_token=API_TOKEN)) as http:
        yield Gateway(cache, http, queued, platform, clock)


def _reports(api_a: Api, container: Container) -> None:
    assert api_a.post("/api/v1/lab-reports", recent_lab(container)).status_code == 200
    assert api_a.post("/api/v1/exam-reports", recent_exam(container)).status_code == 200


def _local(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("stale", "source", "fetched_at")}


def test_swipe_fills_the_cache_and_recent_is_answered_locally(gateway: Gateway, api_a: Api, api_b: Api, container: Container) -> None:
    _reports(api_a, container)
    r = gateway.post("/swipe", patient() | VISIT)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["count"], body["reports"], body["stale"], body["source"]) == (2, 2, False, "platform")
    assert {i["type"]: i["recognition"] for i in body["item"]} == {"check": "1", "lab": "1"}
    entry = gateway.cache.load("01", samples.ID_NO)
    assert entry is not None and len(entry.detail["labmaster"]) == 1 and len(entry.detail["exammaster"]) == 1
    assert gateway.platform.calls == [
        "/api/v1/auth/token", "/api/v1/recognition/recent", "/api/v1/recognition/detail", "/api/v1/catalog", "/api/v1/code-map",
    ]

    before = gateway.calls()
    again = gateway.post("/recent", patient())
    assert again.status_code == 200
    assert gateway.calls() == before  # answered from the cache
    assert (again.json()["source"], again.json()["stale"]) == ("cache", False)
    platform = api_b.post("/api/v1/recognition/recent", patient()).json()
    assert again.json()["item"] == platform["item"]
    assert gateway.post("/recent", patient(days=30)).json()["item"] == api_b.post("/api/v1/recognition/recent", patient(days=30)).json()["item"]
    detail = gateway.post("/detail", patient()).json()
    assert _local(detail) == api_b.post("/api/v1/recognition/detail", patient()).json()
    assert gateway.calls() == before
    health = gateway.http.get("/healthz").json()
    assert (health["patients"], health["fresh"], health["platform"]) == (1, 1, "ok")


def test_exists_is_answered_locally_as_the_platform_answers(gateway: Gateway, api_a: Api, api_b: Api, container: Container) -> None:
    _reports(api_a, container)
    assert gateway.post("/swipe", patient()).status_code == 200
    before = gateway.calls()
    orders = [
        patient(check=[EXAM_CODE], lab=["ALB-LOC", "250301001", "NOPE"]) | VISIT,
        patient(lab=[LAB_CODE]),
        patient(check=["NOPE"]),
        patient(check=[EXAM_CODE], org_code=ORG_B[0]),
        patient(lab=[LAB_CODE], days=30, org_code=ORG_A[0]),
    ]
    for order in orders:
        local = gateway.post("/exists", order)
        assert local.status_code == 200, local.text
        assert local.json()["source"] == "cache"
        assert _local(local.json()) == api_b.post("/api/v1/recognition/exists", order).json(), order
    assert gateway.calls() == before
    body = gateway.post("/exists", orders[0]).json()
    assert [(i["item_code"], i["ordered_code"]) for i in body["labmaster"][0]["item"]] == [(LAB_CODE, "ALB-LOC")]
    assert body["unmapped"] == [{"kind": "lab", "code": "NOPE"}] and (body["ordered"], body["recognizable"]) == (4, 2)
    nothing = gateway.post("/exists", patient())
    assert nothing.status_code == 422 and CJK.search(nothing.json()["message"])

    # every reminder shown from the cache is queued for the platform's reminder log (XC-P4), as the
    # platform logs its own: one row per kind with recognizable results shown, none when none was
    reminders = [rec for rec in gateway.queued if rec.kind == "reminder"]
    assert len(reminders) == 4 and len({rec.key for rec in reminders}) == len(reminders)  # orders 0, 1, 4 and 0 again
    exam_row, lab_row = reminders[0].payload["reminder_log"]
    assert (exam_row["action"], exam_row["id_no"], exam_row["ordered"], exam_row["recognizable"]) == ("reminder", samples.ID_NO, "1", "1")
    assert (lab_row["ordered"], lab_row["recognizable"], lab_row["type"]) == ("3", "1", "2")
    assert (exam_row["doc_code"], exam_row["event_no"]) == (VISIT["doc_code"], VISIT["event_no"])
    assert (exam_row["item_codes"], lab_row["item_codes"]) == (f"exam:{EXAM_CODE}", f"lab:{LAB_CODE}")
    rows = [r for rec in reminders for r in rec.payload["reminder_log"]]
    assert len(rows) == 6
    # ... and is what the platform takes: its statistics count them
    stats = {"by": "all", "org_code": ORG_B[0]}
    shown = api_b.get("/api/v1/statistics/recognition", params=stats).json()["rows"][0]["reminders"]
    up = api_b.post("/api/v1/reminder-logs", {"reminder_log": rows})
    assert up.status_code == 200 and up.json()["rows"] == len(rows), up.text
    assert api_b.get("/api/v1/statistics/recognition", params=stats).json()["rows"][0]["reminders"] == shown + len(rows)

    # time passes at the gateway: the lab result (30 validity days) expires locally, the CT (90) does not
    gateway.cache.ttl_seconds = 10**9
    gateway.clock.offset = timedelta(days=31).total_seconds()
    late = gateway.post("/exists", patient(check=[EXAM_CODE], lab=[LAB_CODE])).json()
    assert late["labmaster"] == [] and [e["item_code"] for e in late["exammaster"]] == [EXAM_CODE]
    assert {i["type"]: i["recognition"] for i in gateway.post("/recent", patient()).json()["item"]} == {"check": "1", "lab": "0"}
    assert gateway.post("/detail", patient()).json()["labmaster"] == []
    assert gateway.calls() == before


def test_a_stale_entry_is_fetched_again(gateway: Gateway, api_a: Api, container: Container) -> None:
    assert api_a.post("/api/v1/lab-reports", recent_lab(container)).status_code == 200
    assert gateway.post("/swipe", patient()).json()["count"] == 1
    assert api_a.post("/api/v1/exam-reports", recent_exam(container)).status_code == 200
    before = gateway.calls()
    assert gateway.post("/recent", patient()).json()["count"] == 1  # still fresh: the new report is not seen yet
    assert gateway.calls() == before
    gateway.clock.offset = TTL + 1
    r = gateway.post("/recent", patient()).json()
    assert (r["count"], r["source"], r["stale"]) == (2, "platform", False)
    assert "/api/v1/recognition/recent" in gateway.platform.calls[before:]
    before = gateway.calls()
    assert gateway.post("/exists", patient(check=[EXAM_CODE])).json()["recognizable"] == 1
    assert gateway.calls() == before  # fresh again
    # a swipe always asks the platform
    assert gateway.post("/swipe", patient()).json()["source"] == "platform" and gateway.calls() > before


def test_platform_down_answers_from_the_stale_cache(gateway: Gateway, api_a: Api, api_b: Api, container: Container) -> None:
    _reports(api_a, container)
    assert gateway.post("/swipe", patient()).status_code == 200
    order = patient(check=[EXAM_CODE], lab=["ALB-LOC"])
    expected = api_b.post("/api/v1/recognition/exists", order).json()
    gateway.clock.offset = TTL + 1
    gateway.platform.down = True

    r = gateway.post("/recent", patient())
    assert r.status_code == 200, r.text
    assert (r.json()["stale"], r.json()["source"], r.json()["count"]) == (True, "cache", 2)
    ex = gateway.post("/exists", order)
    assert ex.status_code == 200 and ex.json()["stale"] is True
    assert _local(ex.json()) == expected  # the code map held locally still resolves ALB-LOC
    swipe = gateway.post("/swipe", patient())
    assert swipe.status_code == 200 and swipe.json()["stale"] is True

    stranger = idcard.make("650102", date(1980, 1, 1), 5)
    unknown = gateway.post("/recent", patient(id_no=stranger))
    assert unknown.status_code == 503
    assert unknown.json()["code"] == "platform_unavailable" and CJK.search(unknown.json()["message"])
    health = gateway.http.get("/healthz").json()
    assert health["platform"] == "down" and health["last_platform_error"]

    # back up: after the retry pause the platform is asked again and the answer is fresh
    gateway.platform.down = False
    assert gateway.post("/recent", patient()).json()["stale"] is True  # within retry_seconds: not asked yet
    gateway.clock.offset += 31
    back = gateway.post("/recent", patient()).json()
    assert (back["stale"], back["source"]) == (False, "platform")
    assert gateway.http.get("/healthz").json()["platform"] == "ok"


def test_identity_is_checked_locally(gateway: Gateway) -> None:
    before = gateway.calls()
    bad = gateway.post("/swipe", patient(id_no="650102196702011230"))
    assert bad.status_code == 422
    assert bad.json()["problems"][0]["field"] == "id_no" and CJK.search(bad.json()["message"])
    assert gateway.post("/recent", {"id_type_code": "01"}).status_code == 422  # id_no missing
    assert gateway.post("/recent", patient(days=60)).status_code == 422
    assert gateway.calls() == before


def test_decisions_are_validated_kept_and_queued(gateway: Gateway, api_a: Api, api_b: Api, container: Container) -> None:
    _reports(api_a, container)
    assert gateway.post("/swipe", patient()).status_code == 200
    before = gateway.calls()
    good = [decision(LAB_CODE, "14437173", "2", "1", reason="3"), decision(EXAM_CODE, "71468573", "1", "2", "1")]
    r = gateway.post("/accept", {"sehr_accept_record": good})
    assert r.status_code == 200, r.text
    assert (r.json()["rows"], r.json()["queued"]) == (2, 2)
    assert gateway.calls() == before  # nothing sent now: the outbox uploads on its schedule
    assert [rec.kind for rec in gateway.queued] == ["accept", "accept"]
    first = gateway.queued[0]
    assert first.source == "preload" and first.key.startswith(f"accept:{ORG_A[0]}|14437173|{LAB_CODE}|")
    [row] = first.payload["sehr_accept_record"]
    assert row["id_no"] not in first.key  # the key is logged: it names the report, not the patient
    assert row["reason"] == "" and row["is_accept"] == "1" and row["record_time"] == "2026-11-20 13:19:04"

    cases = [
        (decision(LAB_CODE, "14437173", "2", "2", ""), "sehr_accept_record[0].reason", "required"),
        (decision(LAB_CODE, "14437173", "2", "2", "11"), "sehr_accept_record[0].reason", "dictionary"),
        (decision(LAB_CODE, "14437173", "2", "3"), "sehr_accept_record[0].is_accept", "dictionary"),
        (decision("999999999", "14437173", "2", "1"), "sehr_accept_record[0].code", "unknown_item"),
        (decision(LAB_CODE, "14437173", "2", "1", record_time="2026/11/20"), "sehr_accept_record[0].record_time", "datetime_format"),
        (decision(LAB_CODE, "14437173", "2", "1", id_no="650102196702011230"), "sehr_accept_record[0].id_no", "id_checksum"),
    ]
    for record, field, rule in cases:
        bad = gateway.post("/accept", {"sehr_accept_record": [good[1], record]})
        assert bad.status_code == 422, (field, bad.text)
        problems = bad.json()["problems"]
        wanted = field.replace("[0]", "[1]")
        assert any(p["field"] == wanted and p["rule"] == rule for p in problems), bad.text
        assert all(CJK.search(p["message"]) for p in problems) and CJK.search(bad.json()["message"])
    assert len(gateway.queued) == 2  # a refused batch queues nothing, not even its good row
    assert gateway.post("/accept", {"wrong": []}).json()["problems"][0]["field"] == "sehr_accept_record"
    malformed = gateway.http.post("/accept", content=b"{not json", headers={"content-type": "application/json"})
    assert malformed.status_code == 400 and CJK.search(malformed.json()["message"])

    q = {k: v for k, v in good[0].items() if k not in ("is_accept", "reason")}
    assert gateway.post("/quote", {"sehr_quote_record": [q]}).status_code == 200
    assert gateway.queued[-1].kind == "quote" and "is_accept" not in gateway.queued[-1].payload["sehr_quote_record"][0]

    kept = gateway.http.get("/decisions", params={"id_no": samples.ID_NO, "event_no": "5036612"}).json()
    assert [d["kind"] for d in kept["records"]] == ["accept", "accept", "quote"]

    # what was queued is what the platform accepts
    for rec in gateway.queued:
        up = api_b.post(f"/api/v1/recognition/{rec.kind}", rec.payload)
        assert up.status_code == 200, up.text
    mine = api_b.get("/api/v1/recognition/accept").json()["records"]
    assert {(x["code"], x["is_accept"], x["reason"]) for x in mine} == {(LAB_CODE, "1", ""), (EXAM_CODE, "2", "1")}


def test_a_failing_outbox_keeps_nothing(client: TestClient, tmp_path: Path, catalog: None) -> None:
    hc = HurenClient("http://testserver", ORG_B[0], ORG_B[4], ORG_B[5], http=client)
    cache = PreloadCache(tmp_path / "preload.db", hc)

    def broken(_: list[Record]) -> None:
        raise OSError("disk full")

    with local_client(create_preload_app(cache, enqueue=broken, api_token=API_TOKEN), raise_server_exceptions=False) as http:
        r = http.post("/accept", json={"sehr_accept_record": [decision(LAB_CODE, "14437173", "2", "1")]})
        assert r.status_code == 500 and CJK.search(r.json()["message"])
    assert cache.stats()["decisions"] == 0


def test_purge_and_listen(gateway: Gateway, api_a: Api, container: Container) -> None:
    _reports(api_a, container)
    assert gateway.post("/swipe", patient()).status_code == 200
    assert gateway.cache.purge(older_than=3600) == 0
    gateway.clock.offset = 3601
    assert gateway.cache.purge(older_than=3600) == 1
    assert gateway.cache.load("01", samples.ID_NO) is None
    assert oct(gateway.cache.path.stat().st_mode & 0o777) == oct(0o600)
    assert parse_listen("127.0.0.1:8765") == ("127.0.0.1", 8765)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    with pytest.raises(ValueError):
        parse_listen("localhost")
    docs = gateway.http.get("/docs")  # the local API's documentation needs no Internet access either
    assert docs.status_code == 200 and "/static-offline-docs/swagger-ui-bundle.js" in docs.text



def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_runner_starts_and_stops_the_local_api(tmp_path: Path) -> None:
    """``start(config, enqueue)`` as the gateway runner calls it: a real listening server; with
    the platform unreachable it still takes decisions and says why it cannot answer a swipe."""
    port = _free_port()
    doc = {
        "platform": {"base_url": "http://127.0.0.1:1", "org_code": ORG_B[0], "username": ORG_B[4], "password": ORG_B[5]},
        "outbox": {"path": "box/outbox.db"},
        "preload": {"listen": f"127.0.0.1:{port}", "ttl_seconds": 60, "days": 30, "timeout_seconds": 2, "api_token": API_TOKEN},
    }
    config = gateway_config.parse(doc, tmp_path)
    assert preload_conf(config.preload, config.outbox.path, tmp_path).path == tmp_path / "box" / "preload.db"
    queued: list[Record] = []
    service = start(config, queued.extend)
    try:
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as anonymous:
            health = anonymous.get("/healthz").json()  # liveness needs no token
            assert (health["code"], health["days"], health["ttl_seconds"]) == ("ok", 30, 60.0)
            for path, headers in (("/recent", {}), ("/exists", {"Authorization": "Bearer " + "x" * 32}),
                                  ("/decisions", {"X-Access-Token": API_TOKEN[:-1]})):
                r = anonymous.request("GET" if path == "/decisions" else "POST", path, json=patient(), headers=headers)
                assert r.status_code == 401, (path, r.text)
                assert r.json()["problems"][0]["field"] == "Authorization" and CJK.search(r.json()["message"])
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=10, headers={"Authorization": f"Bearer {API_TOKEN}"}) as http:
            swipe = http.post("/swipe", json=patient())
            assert swipe.status_code == 503 and CJK.search(swipe.json()["message"])
            r = http.post("/accept", json={"sehr_accept_record": [decision(LAB_CODE, "14437173", "2", "1")]})
            assert r.status_code == 200, r.text
    finally:
        service.stop()
    assert [rec.kind for rec in queued] == ["accept"]
    assert (tmp_path / "box" / "preload.db").exists()
    for bad in ({"days": 60}, {"listen": "nowhere"}, {"ttl_seconds": 0}, {"path": 3}, {"api_token": "short"},
                {"listen": "0.0.0.0:8765"}, {"hosts": "gw.local"}, {"hosts": ["gw.local:80"]}):
        with pytest.raises(ValueError, match=r"\[preload\]") as refused:
            preload_conf({"api_token": API_TOKEN} | bad, config.outbox.path, tmp_path)
        assert CJK.search(str(refused.value)) and next(iter(bad)) in str(refused.value)  # in Chinese, naming the key
    # the token is required on loopback too: any page the doctor opens can reach 127.0.0.1
    for listen in ("127.0.0.1:8765", "[::1]:8765", "localhost:8765", "0.0.0.0:8765"):
        with pytest.raises(ValueError, match=r"\[preload\] 缺少 api_token"):
            preload_conf({"listen": listen}, config.outbox.path, tmp_path)
    wide = preload_conf({"listen": "0.0.0.0:8765", "api_token": API_TOKEN, "hosts": ["his-gw.hospital.local"]}, config.outbox.path, tmp_path)
    assert "his-gw.hospital.local:8765" in wide.allowed_hosts() and "127.0.0.1:8765" in wide.allowed_hosts()


def test_exists_knows_the_visits_decisions_as_the_platform_does(gateway: Gateway, api_a: Api, api_b: Api, container: Container) -> None:
    """HZ-16 at the hospital: a decision taken for this visit is part of the local answer (its
    ``decision``), as the platform answers once it has it, and is not asked about again."""
    _reports(api_a, container)
    assert gateway.post("/swipe", patient()).status_code == 200
    taken = gateway.post("/accept", {"sehr_accept_record": [decision(LAB_CODE, "14437173", "2", "2", reason="3")]})
    assert taken.status_code == 200, taken.text
    for rec in [r for r in gateway.queued if r.kind == "accept"]:
        assert api_b.post(f"/api/v1/recognition/{rec.kind}", rec.payload).status_code == 200
    del gateway.queued[:]
    order = patient(check=[EXAM_CODE], lab=[LAB_CODE]) | VISIT
    local = gateway.post("/exists", order).json()
    [lab] = local["labmaster"][0]["item"]
    assert lab["decision"] == {"is_accept": "2", "reason": "3", "record_time": "2026-11-20 13:19:04"}
    assert "decision" not in local["exammaster"][0]
    assert _local(local) == api_b.post("/api/v1/recognition/exists", order).json()
    [reminder] = gateway.queued
    assert [r["item_codes"] for r in reminder.payload["reminder_log"]] == [f"exam:{EXAM_CODE}"]  # only what is left to decide
    # another visit knows nothing of it
    other = gateway.post("/exists", order | {"event_no": "9999"}).json()
    assert "decision" not in other["labmaster"][0]["item"][0]
