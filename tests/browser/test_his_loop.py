"""The loop back to the HIS in a real browser (issue 11 items 2-3): the sample HIS page
(``docs/his-sample/``, served from the HIS's own origin) opens the decision dialog with a page
token minted by the hospital's system account, the doctor decides, and the page receives the
decisions by ``window.postMessage`` (schema huren:decisions v1). A HIS origin the platform does
not name in ``HUREN_HIS_ORIGINS`` receives nothing. The widget opened with a bad token is a grey
icon inside its own 150×34 box."""

from __future__ import annotations

import functools
import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

import httpx2
import pytest

from tests.browser.conftest import SHOTS, account, shot
from tests.browser.test_doctor_flow import _pick, _token
from tests.e2e.test_serve import ROOT, Server

SAMPLE = ROOT / "docs" / "his-sample"
VISIT = {"event_type": "1", "dept_code": "0101", "dept_name": "内科门诊", "dept_std_code": "A03", "dept_std_name": "内科"}


class Quiet(http.server.SimpleHTTPRequestHandler):
    """The HIS's web server: the sample page's files, and ``POST /callback`` (with CORS for the
    platform's pages) keeping what it receives."""

    received: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _cors(self) -> None:
        self.send_header("Access-Control-Allow-Origin", self.headers.get("Origin") or "null")
        self.send_header("Access-Control-Allow-Methods", "POST")
        self.send_header("Access-Control-Allow-Headers", "Content-Type")

    def do_OPTIONS(self) -> None:  # the standard library names it so
        self.send_response(204)
        self._cors()
        self.end_headers()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).received.append({"path": self.path, "origin": self.headers.get("Origin"), "body": json.loads(body)})
        self.send_response(204)
        self._cors()
        self.end_headers()


def _his(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://localhost:{srv.server_address[1]}"


@pytest.fixture(scope="module")
def his_loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, str]]:
    """The demo platform that lets two HIS origins frame its pages and posts its messages to the
    first only; the sample HIS page served from both."""
    from tests.e2e import test_serve

    allowed, allowed_origin = _his(SAMPLE)
    other, other_origin = _his(SAMPLE)
    plain = test_serve._env

    def env(data_dir: Path) -> dict[str, str]:
        return plain(data_dir) | {
            "HUREN_FRAME_ANCESTORS": f"'self' {allowed_origin} {other_origin}",
            "HUREN_HIS_ORIGINS": allowed_origin,
        }

    try:
        data = tmp_path_factory.mktemp("browser-his-loop") / "data"
        proc = subprocess.run(
            [sys.executable, "-m", "huren.cli", "demo", "--reports", "60"],
            env=env(data), cwd=ROOT, capture_output=True, text=True, encoding="utf-8", timeout=180, check=False,
        )
        assert proc.returncode == 0, proc.stderr
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(test_serve, "_env", env)
            with test_serve.serve(data, demo=json.loads(proc.stdout)) as s:
                yield s, allowed_origin, other_origin
    finally:
        for srv in (allowed, other):
            srv.shutdown()
            srv.server_close()


def _page_token(http: httpx2.Client, his: dict[str, str], **body: Any) -> str:
    """A page token for doctor D7001, minted by the hospital's system account."""
    r = http.post("/api/v1/auth/page-token", json={"doc_code": "D7001", "doc_name": "赵医生"} | body,
                  headers={"Authorization": f"Bearer {_token(http, his)}"})
    assert r.status_code == 200, r.text
    token: str = r.json()["page_token"]
    return token


def _sample_url(origin: str, base: str, token: str, p: dict[str, Any], event_no: str) -> str:
    q = [("platform", base), ("token", token), ("id_type_code", p["id_type"]), ("id_no", p["id_no"]), ("event_no", event_no)]
    q += list(VISIT.items()) + [("check", c) for c in p["check"]] + [("lab", c) for c in p["lab"]]
    return f"{origin}/index.html?{urlencode(q)}"


def _decide_all(page: Any) -> Any:
    page.click("#open-dialog")
    dialog = page.frame_locator("#huren-dialog")
    dialog.locator("#decide-form").wait_for()
    dialog.locator("#accept-all").click()
    dialog.locator("#decide-save").click()
    dialog.locator("#decided-ok").wait_for()
    return dialog


def test_the_sample_his_page_receives_the_decisions(his_loop: tuple[Server, str, str], context: Any) -> None:
    server, his_origin, _ = his_loop
    base = server.base_url
    his = account(server, "hospital", 1)
    with httpx2.Client(base_url=base, timeout=20.0) as http:
        p = _pick(http, server, his)
        token = _page_token(http, his)
    page = context.new_page()
    page.goto(_sample_url(his_origin, base, token, p, "MZLOOP01"))
    dialog = _decide_all(page)
    assert "已将结果发送给 HIS" in dialog.locator("#his-sent").inner_text() and dialog.locator("#his-sent").is_visible()
    status = page.locator('#his-status[data-received="1"]')
    status.wait_for()
    assert "已收到互认结果" in status.inner_text() and "MZLOOP01" in status.inner_text()
    msg = json.loads(page.text_content("#his-raw") or "")
    assert (msg["type"], msg["version"], msg["action"]) == ("huren:decisions", 1, "decide")
    assert msg["rejected"] == [] and msg["accepted"] and msg["patient"]["id_no"] == p["id_no"]
    assert msg["visit"]["event_no"] == "MZLOOP01" and msg["visit"]["doc_code"] == "D7001" and msg["visit"]["doc_name"] == "赵医生"
    codes = {i["code"] for i in msg["accepted"]}
    assert page.locator("#his-accepted li").count() == len(msg["accepted"])
    shot(page, "his-sample-decisions-received")
    # the HIS that polls reads the same decisions
    with httpx2.Client(base_url=base, timeout=20.0) as http:
        r = http.post("/api/v1/recognition/visit-decisions",
                      json={"id_type_code": p["id_type"], "id_no": p["id_no"], "event_no": "MZLOOP01"},
                      headers={"Authorization": f"Bearer {_token(http, his)}"})
    assert r.status_code == 200, r.text
    assert {i["code"] for i in r.json()["accepted"]} == codes


def test_another_origin_receives_nothing(his_loop: tuple[Server, str, str], context: Any) -> None:
    server, _, other_origin = his_loop
    base = server.base_url
    his = account(server, "hospital", 1)
    with httpx2.Client(base_url=base, timeout=20.0) as http:
        p = _pick(http, server, his)
        token = _page_token(http, his)
    page = context.new_page()
    page.goto(_sample_url(other_origin, base, token, p, "MZLOOP02"))
    page.evaluate("""() => { window.__got = []; window.addEventListener('message', e => window.__got.push(e.data)); }""")
    _decide_all(page)
    page.wait_for_timeout(1000)
    assert page.evaluate("window.__got.filter(m => m && m.type === 'huren:decisions').length") == 0
    assert page.locator("#his-status").inner_text() == "尚未收到互认结果"
    assert page.frame_locator("#huren-dialog").locator("#his-sent").is_hidden()


def test_the_widget_with_a_bad_token_is_a_grey_icon_in_its_box(his_loop: tuple[Server, str, str], context: Any) -> None:
    server, his_origin, _ = his_loop
    base = server.base_url
    his = account(server, "hospital", 1)
    with httpx2.Client(base_url=base, timeout=20.0) as http:
        p = _pick(http, server, his)
    page = context.new_page()
    url = _sample_url(his_origin, base, "", p, "MZLOOP03") + "&" + urlencode({"widget_token": "expired-or-forged"})
    page.goto(url)
    frame_el = page.locator("#huren-widget-frame")
    frame = page.frame_locator("#huren-widget-frame")
    icon = frame.locator("#huren-widget")
    icon.wait_for()
    assert frame.locator(".topbar").count() == 0
    assert "error" in (icon.get_attribute("class") or "")
    title = icon.get_attribute("title") or ""
    assert title.startswith("互认提醒暂不可用") and "请在 HIS 中重新打开本页面" in title
    box, outer = icon.bounding_box(), frame_el.bounding_box()
    assert box and outer and round(outer["width"]) == 150 and round(outer["height"]) == 34
    assert box["x"] >= outer["x"] and box["y"] >= outer["y"]
    assert box["x"] + box["width"] <= outer["x"] + 150 and box["y"] + box["height"] <= outer["y"] + 34
    inner = frame.locator("body").evaluate("b => [b.scrollWidth, b.scrollHeight]")
    assert inner[0] <= 150 and inner[1] <= 34, inner
    SHOTS.mkdir(parents=True, exist_ok=True)
    frame_el.screenshot(path=str(SHOTS / "widget-bad-token.png"))


def test_the_browser_posts_the_message_to_the_page_token_s_callback(his_loop: tuple[Server, str, str], context: Any) -> None:
    server, his_origin, _ = his_loop
    base = server.base_url
    his = account(server, "hospital", 1)
    with httpx2.Client(base_url=base, timeout=20.0) as http:
        p = _pick(http, server, his)
        token = _page_token(http, his, callback=f"{his_origin}/callback")
    Quiet.received.clear()
    page = context.new_page()
    page.goto(_sample_url(his_origin, base, token, p, "MZLOOP04"))
    dialog = _decide_all(page)
    dialog.locator("#his-callback", has_text="已发送到 HIS 回调地址").wait_for()
    [got] = Quiet.received
    assert got["path"] == "/callback" and got["origin"] == urlsplit(base)._replace(path="").geturl()
    msg = got["body"]
    assert (msg["type"], msg["version"], msg["action"]) == ("huren:decisions", 1, "decide")
    assert msg["visit"]["event_no"] == "MZLOOP04" and msg["accepted"]
