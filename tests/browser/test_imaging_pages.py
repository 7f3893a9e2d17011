"""The imaging viewer in Chromium (issue 12): the doctor's viewer in the HIS's 450×500 window and at
125 % scaling (360×400 CSS px), the patient's cloud film on a phone. A frame that loads
(naturalWidth > 0), next frame (button, →, mouse wheel) and a window preset change the image, the
page stays whole (no horizontal scrolling, the frame inside the window), no console error and no
Content-Security-Policy violation."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from tests import samples
from tests.browser.conftest import account, login, shot
from tests.browser.test_doctor_flow import _token
from tests.conftest import ORG_A
from tests.e2e.test_serve import ROOT, Server, _env, serve

SIZES = {
    "450x500": ({"width": 450, "height": 500}, 1.0),
    "360x400@125": ({"width": 360, "height": 400}, 1.25),
}
PHONE = ({"width": 390, "height": 760}, 2.0)

#: stores a study (two CT slices, one MR image; GB18030 name) for the first demo hospital, straight
#: through the services over the server's data directory, and issues a cloud-film key for it
STORE = """
import json, sys, tempfile
from pathlib import Path
from huren.bootstrap import build
from huren.context import Principal
from tests.integration.test_imaging_pages import store_study
c = build()
try:
    org, user = sys.argv[1], sys.argv[2]
    st = store_study(c, Path(tempfile.mkdtemp()), org)
    film = c.imaging.issue_key(Principal(org, user, "hospital"), "film", st.uid).key
    print(json.dumps({"uid": st.uid, "ct": st.ct, "mr": st.mr, "film": film}))
finally:
    c.close()
"""

#: collects CSP violations from the first script on (Playwright's init script is not the page's)
WATCH_CSP = "window.__csp = []; document.addEventListener('securitypolicyviolation', e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
LOADED = "() => { const i = document.getElementById('frame'); return !!i && i.complete && i.naturalWidth > 0; }"
WHOLE = """() => {
  const b = document.getElementById('frame-box').getBoundingClientRect();
  return {scroll: document.documentElement.scrollWidth, inner: window.innerWidth, box: [b.left, b.top, b.right, b.bottom],
          height: window.innerHeight};
}"""


@pytest.fixture(scope="module")
def imaging_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    data = tmp_path_factory.mktemp("imaging-pages") / "data"
    proc = subprocess.run([sys.executable, "-m", "huren.cli", "demo", "--reports", "10"], env=_env(data), cwd=ROOT,
                          capture_output=True, text=True, encoding="utf-8", timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr
    demo = json.loads(proc.stdout)
    hospital = next(c for c in demo["credentials"] if c["role"] == "hospital")
    proc = subprocess.run([sys.executable, "-c", STORE, hospital["org_code"], hospital["username"]], env=_env(data), cwd=ROOT,
                          capture_output=True, text=True, encoding="utf-8", timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    study = json.loads(proc.stdout.strip().splitlines()[-1])
    with serve(data, demo=demo) as s:
        with httpx2.Client(base_url=s.base_url, timeout=10.0) as http:
            study["report"] = _exam_report(http, hospital, study["uid"])
        yield s, study


def _exam_report(http: httpx2.Client, hospital: dict[str, str], study_uid: str) -> str:
    """An exam report of the hospital whose study is ``study_uid`` (its ref)."""
    payload = json.loads(json.dumps(samples.exam(), ensure_ascii=False).replace(ORG_A[0], hospital["org_code"]))
    payload["exammaster"]["study_instance_uid"] = study_uid
    r = http.post("/api/v1/exam-reports", json=payload, headers={"Authorization": f"Bearer {_token(http, hospital)}"})
    assert r.status_code == 200, r.text
    ref: str = r.json()["report_id"]
    return ref


def _page(browser: Any, size: tuple[dict[str, int], float]) -> tuple[Any, Any, list[str]]:
    viewport, scale = size
    ctx = browser.new_context(locale="zh-CN", viewport=viewport, device_scale_factor=scale)
    ctx.set_default_timeout(15_000)
    page = ctx.new_page()
    errors: list[str] = []
    _console(page, errors)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.add_init_script(WATCH_CSP)
    return ctx, page, errors


def _console(page: Any, errors: list[str]) -> None:
    """Console errors of the page (not the browser's own /favicon.ico of pages that name no icon)."""
    def seen(m: Any) -> None:
        url = m.location.get("url", "")
        if m.type == "error" and not url.endswith("/favicon.ico"):
            errors.append(f"{m.text} {url}")
    page.on("console", seen)


def _src(page: Any) -> str:
    src: str = page.get_attribute("#frame", "src")
    return src


def _loaded(page: Any) -> None:
    page.wait_for_function(LOADED)


def _changed(page: Any, before: str) -> str:
    page.wait_for_function("(b) => document.getElementById('frame').getAttribute('src') !== b", arg=before)
    _loaded(page)
    return _src(page)


def _whole(page: Any) -> None:
    w = page.evaluate(WHOLE)
    assert w["scroll"] <= w["inner"], w
    left, top, right, bottom = w["box"]
    assert left >= 0 and right <= w["inner"] + 0.5 and bottom <= w["height"] + 0.5 and bottom - top >= 100, w


def _clean(page: Any, errors: list[str]) -> None:
    assert page.evaluate("window.__csp") == []
    assert errors == []


@pytest.mark.parametrize("size", sorted(SIZES))
def test_doctor_viewer_in_the_his_window(browser: Any, imaging_server: tuple[Server, dict[str, str]], size: str) -> None:
    server, study = imaging_server
    with httpx2.Client(base_url=server.base_url, timeout=10.0) as http:
        token = _token(http, account(server, "doctor", 1))  # a doctor of ANOTHER hospital (mutual recognition)
    ctx, page, errors = _page(browser, SIZES[size])
    try:
        r = page.goto(f"{server.base_url}/ui/imaging/{study['uid']}?token={token}&series={study['ct']}")
        assert r is not None and r.status == 200
        _loaded(page)
        assert "王小明" in page.inner_text("#patient-name")
        assert "影像来源" in page.inner_text("#image-source")
        assert page.locator("a.series").count() == 2
        _whole(page)
        shot(page, f"imaging-viewer-{size}")
        first = _src(page)
        assert "/frames/1/rendered" in first
        page.click("#next")
        second = _changed(page, first)
        assert page.inner_text("#counter").replace(" ", "") == "2/2"
        page.keyboard.press("ArrowLeft")
        assert _changed(page, second) == first
        page.hover("#frame-box")
        page.mouse.wheel(0, 120)  # the wheel pages frames
        assert _changed(page, first) == second
        page.keyboard.press("ArrowLeft")
        assert _changed(page, second) == first
        page.keyboard.press("ArrowRight")
        assert _changed(page, first) == second
        page.click("a.preset[data-code=lung]")
        lung = _changed(page, second)
        assert "window=-600,1500" in lung
        assert "w=lung" in page.url  # the position is in the URL (a reload keeps it)
        page.click("a.preset[data-code=bone]")
        bone = _changed(page, lung)
        assert "window=400,1800" in bone
        # the other series: its own frames, 默认 and the file's windows
        page.click(f"a.series[data-uid='{study['mr']}']")
        assert f"/series/{study['mr']}/" in _changed(page, bone)
        assert page.locator("a.preset[data-code=lung]").count() == 0
        _whole(page)
        shot(page, f"imaging-viewer-{size}-mr")
        _clean(page, errors)
    finally:
        ctx.close()


def test_patient_film_on_a_phone(browser: Any, imaging_server: tuple[Server, dict[str, str]]) -> None:
    server, study = imaging_server
    ctx, page, errors = _page(browser, PHONE)
    try:
        r = page.goto(f"{server.base_url}/film/{study['film']}?series={study['ct']}")
        assert r is not None and r.status == 200
        _loaded(page)
        assert "王小明" in page.inner_text("#patient-name")
        assert page.is_visible("#download")
        assert page.inner_text("#conclusion") == samples.exam()["exammaster"]["conclusion"]
        _whole(page)
        first = _src(page)
        page.click("#next")
        assert _changed(page, first) != first
        shot(page, "imaging-film-phone")
        _clean(page, errors)
        r = page.goto(f"{server.base_url}/film/AAAAAAAAAAAAAAAAAAAAAA")
        assert r is not None and r.status == 404
        assert "链接不存在" in page.inner_text("main")
    finally:
        ctx.close()


def test_from_the_report_to_the_viewer_in_a_session(context: Any, imaging_server: tuple[Server, dict[str, str]]) -> None:
    """查看影像 on the exam report (a logged-in doctor of another hospital, 1280 px): the viewer opens
    with the platform's menu, the frame loads, 返回检查报告 leads back."""
    server, study = imaging_server
    page = context.new_page()
    errors: list[str] = []
    _console(page, errors)
    page.add_init_script(WATCH_CSP)
    report = f"/ui/report/exam/{study['report']}"
    login(page, server, account(server, "doctor", 1), report)
    page.click("#imaging-link")
    page.wait_for_url(f"**/ui/imaging/{study['uid']}*")
    _loaded(page)
    assert "王小明" in page.inner_text("#patient-name")
    _whole(page)
    shot(page, "imaging-viewer-session")
    page.click("#report-link")
    page.wait_for_url(f"**{report}*")
    _clean(page, errors)
