"""The gateway's local API is locked on every door (issue 10 §1.1): with the API on 127.0.0.1, any
web page the doctor opens could POST a forged ``/accept`` (the body was parsed as JSON whatever
its Content-Type) and a DNS-rebinding page could read ``/recent`` (the Host header was not
checked). Now the token is always required, bodies are JSON only, the Host must name the
listener, there are no CORS headers, the gateway refuses to start without a token, and
``huren demo --hospital`` writes a config whose pages work out of the box."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from huren.client import HurenClient
from huren.context import Clock
from huren.demo.generator import demo_orgs
from huren.gateway import cli as gwcli
from huren.gateway import demo_hospital, preload
from huren.gateway.config import ConfigError, load, parse
from huren.gateway.local_api import create_preload_app
from huren.gateway.model import Record
from huren.gateway.preload_cache import PreloadCache
from huren.gateway.runner import Gateway
from huren.services.container import Container
from tests import samples
from tests.conftest import ORG_B, Api
from tests.integration import test_gateway_preload
from tests.integration.test_api_recognition import LAB_CODE, decision, patient
from tests.integration.test_gateway_preload import API_TOKEN, AUTH, LOCAL, Platform, _reports
from tests.integration.test_gateway_preload import Gateway as Local

catalog = test_gateway_preload.catalog  # the platform's catalog and ORG_B's code map, as a fixture here too
CJK = re.compile(r"[\u4e00-\u9fff]")
PAGE_TOKEN = "local-his-page-token-0123456789"


@pytest.fixture
def gateway(client: TestClient, tmp_path: Path, catalog: None) -> Iterator[Local]:
    """The local API with the pages, and a bare client: each test sends its own headers."""
    platform = Platform(client)
    hc = HurenClient("http://testserver", ORG_B[0], ORG_B[4], ORG_B[5], http=client)
    clock = Clock()
    cache = PreloadCache(tmp_path / "gw" / "preload.db", hc, clock=clock)
    queued: list[Record] = []
    app = create_preload_app(cache, enqueue=queued.extend, api_token=API_TOKEN, pages=(ORG_B[0], PAGE_TOKEN))
    with TestClient(app, base_url=LOCAL) as http:
        yield Local(cache, http, queued, platform, clock)


def _body(records: list[dict[str, Any]]) -> bytes:
    return json.dumps({"sehr_accept_record": records}).encode()


def test_a_forged_text_plain_accept_is_refused(gateway: Local, api_a: Api, container: Container) -> None:
    """A page can POST text/plain (or a typeless Blob) to 127.0.0.1 without a preflight; the API
    takes a body only as application/json — even with the right token (say the page learnt it)."""
    _reports(api_a, container)
    body = _body([decision(LAB_CODE, "14437173", "2", "1")])
    for headers in ({"content-type": "text/plain;charset=UTF-8"}, {}, {"content-type": "application/x-www-form-urlencoded"},
                    {"content-type": "multipart/form-data; boundary=x"}, {"content-type": "application/jsonp"}):
        r = gateway.http.post("/accept", content=body, headers=AUTH | headers)
        assert r.status_code == 415, (headers, r.text)
        answer = r.json()
        assert answer["code"] == "unsupported_encoding" and CJK.search(answer["message"])
        assert answer["problems"][0]["field"] == "Content-Type"
    assert gateway.queued == [] and gateway.cache.stats()["decisions"] == 0
    for path in ("/quote", "/swipe", "/recent", "/exists", "/detail"):
        r = gateway.http.post(path, content=json.dumps(patient()).encode(), headers=AUTH | {"content-type": "text/plain"})
        assert r.status_code == 415, (path, r.text)
    # the same body as JSON is taken
    ok = gateway.http.post("/accept", content=body, headers=AUTH | {"content-type": "application/json; charset=utf-8"})
    assert ok.status_code == 200, ok.text
    assert [rec.kind for rec in gateway.queued] == ["accept"]


def test_a_foreign_host_is_refused(gateway: Local, api_a: Api, container: Container) -> None:
    """DNS rebinding: a page of evil.example whose name now resolves to 127.0.0.1 sends Host:
    evil.example:8765 — refused, on the JSON API, the pages and /healthz alike."""
    _reports(api_a, container)
    for host in ("127.0.0.1:8765", "localhost:8765", "[::1]:8765", "LOCALHOST:8765"):
        r = gateway.http.post("/recent", json=patient(), headers=AUTH | {"host": host})
        assert r.status_code == 200, (host, r.text)
    for host in ("evil.example:8765", "evil.example", "127.0.0.1", "127.0.0.1:9999", "localhost.evil.example:8765", ""):
        r = gateway.http.post("/recent", json=patient(), headers=AUTH | {"host": host})
        assert r.status_code == 403, (host, r.text)
        assert r.json()["code"] == "forbidden" and r.json()["problems"][0]["field"] == "Host"
        assert samples.ID_NO not in r.text and CJK.search(r.json()["message"])
        for path in ("/healthz", f"/ui/widget?id_type_code=01&id_no={samples.ID_NO}&token={PAGE_TOKEN}", "/docs"):
            assert gateway.http.get(path, headers={"host": host}).status_code == 403, (host, path)


def test_no_token_is_refused_and_no_cors(gateway: Local) -> None:
    for method, path in (("POST", "/recent"), ("POST", "/swipe"), ("POST", "/exists"), ("POST", "/detail"),
                         ("POST", "/accept"), ("POST", "/quote"), ("GET", "/decisions?id_no=" + samples.ID_NO)):
        r = gateway.http.request(method, path, json=patient())
        assert r.status_code == 401, (path, r.text)
        assert r.json()["problems"][0]["field"] == "Authorization" and CJK.search(r.json()["message"])
        wrong = gateway.http.request(method, path, json=patient(), headers={"Authorization": "Bearer " + "x" * len(API_TOKEN)})
        assert wrong.status_code == 401, (path, wrong.text)
    assert gateway.calls() == 0
    # no CORS: a preflight is not granted and no answer names an origin
    origin = {"origin": "http://evil.example", "access-control-request-method": "POST"}
    pre = gateway.http.options("/accept", headers=origin | {"access-control-request-headers": "authorization,content-type"})
    assert pre.status_code in (401, 405) and not any(k.lower().startswith("access-control-") for k in pre.headers)
    r = gateway.http.get("/healthz", headers={"origin": "http://evil.example"})
    assert r.status_code == 200 and not any(k.lower().startswith("access-control-") for k in r.headers)


def test_the_api_cannot_be_built_without_a_token(tmp_path: Path) -> None:
    cache = PreloadCache(tmp_path / "p.db", HurenClient("http://127.0.0.1:1", "x", "y", "z"))
    for token in ("", "short"):
        with pytest.raises(ValueError, match="api_token"):
            create_preload_app(cache, enqueue=lambda _: None, api_token=token)


def _config_doc(tmp_path: Path, preload: dict[str, Any]) -> str:
    lines = [
        "[platform]", 'base_url = "http://127.0.0.1:1"', f'org_code = "{ORG_B[0]}"', 'username = "lis"', 'password = "p"',
        "[outbox]", 'path = "outbox.db"', "[preload]", *(f"{k} = {json.dumps(v)}" for k, v in preload.items()),
    ]
    path = tmp_path / "gateway.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_run_without_a_token_refuses_to_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = Path(_config_doc(tmp_path, {"listen": "127.0.0.1:8765"}))
    assert gwcli.run(path) == 2
    err = capsys.readouterr().err
    assert "[preload] 缺少 api_token" in err and "Traceback" not in err
    assert not (tmp_path / "outbox.db").exists()  # refused before anything started
    with pytest.raises(ConfigError, match="api_token"):
        Gateway(load(path))
    # disabled, the local API needs no token (it is not served)
    quiet = parse({"platform": {"base_url": "http://127.0.0.1:1", "org_code": "1", "username": "u", "password": "p"},
                   "outbox": {"path": "o.db"}, "preload": {"enabled": False}}, tmp_path)
    Gateway(quiet, sources=[]).close()


def test_the_demo_hospital_config_serves_the_pages_out_of_the_box(
    tmp_path: Path, client: TestClient, container: Container
) -> None:
    """``huren demo --hospital`` writes [preload] with fresh tokens (and returns them for printing);
    the gateway built from that file serves the doctor's pages and the JSON API."""
    org = demo_orgs()[0]
    container.directory.add_org(org.code, org.name, org.region_code, "3甲", user=org.user, password=org.password)
    summary = demo_hospital.create(tmp_path / "hospital", lab_reports=2, exam_reports=1, drop_pairs=1)
    conf_path = Path(summary["config"])
    assert oct(conf_path.stat().st_mode & 0o777) == oct(0o600)
    shown = summary["preload"]
    assert len(shown["api_token"]) >= 24 and len(shown["page_token"]) >= 24 and shown["api_token"] != shown["page_token"]
    assert shown["widget"].startswith("http://127.0.0.1:8765/ui/widget?") and shown["page_token"] in shown["widget"]
    other = demo_hospital.create(tmp_path / "another", lab_reports=1, exam_reports=1, drop_pairs=1)
    assert other["preload"]["api_token"] != shown["api_token"]  # generated, never a default

    config = load(conf_path)
    assert config.preload["api_token"] == shown["api_token"] and config.preload["page_token"] == shown["page_token"]
    Gateway(config, sources=[]).close()  # the runner takes it
    queued: list[Record] = []
    hc = HurenClient("http://testserver", config.platform.org_code, config.platform.username, config.platform.password, http=client)
    app, conf = preload.build(config, queued.extend, hc)
    assert conf.listen == demo_hospital.PRELOAD_LISTEN
    with TestClient(app, base_url=f"http://{conf.listen}") as http:
        widget = http.get(shown["widget"].removeprefix(f"http://{conf.listen}"))
        assert widget.status_code == 200, widget.text
        assert 'id="huren-widget"' in widget.text
        assert http.get("/ui/panel", params={"id_type_code": "01", "id_no": samples.ID_NO, "token": shown["page_token"]}).status_code == 200
        assert http.post("/recent", json=patient()).status_code == 401
        r = http.post("/recent", json=patient(), headers={"Authorization": f"Bearer {shown['api_token']}"})
        assert r.status_code == 200, r.text
