"""The reminder panel and the decision dialog in the window a HIS gives them (issue 11 item 1):
450×500, and 360×400 CSS px (a 450×500 window at 125 % Windows scaling, device scale 1.25).

Whole at both sizes: no horizontal scrolling, no text broken one character per line, the order
and save buttons reachable; the summary line and every valid-until date are the service's; a row
without ★ names its reason; a refused save is visible; 全部互认 then Enter saves; Esc closes; the
lookup page's ID field has the focus."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any
from urllib.parse import urlencode

import httpx2
import pytest

from huren.domain.recognition import REASONS
from tests.browser.conftest import account, login, shot
from tests.browser.test_doctor_flow import _patients, _pick, _token
from tests.e2e.test_serve import Server

SIZES = {
    "450x500": ({"width": 450, "height": 500}, 1.0),
    "360x400@125": ({"width": 360, "height": 400}, 1.25),
}

#: what makes a page whole in a narrow window, measured in the page: the document no wider than
#: the window, and no text node laid out one character per line (two or more line boxes, none
#: wider than 1.6 characters)
WHOLE = """() => {
  const narrow = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const text = n.textContent.trim();
    if (text.length < 2 || !n.parentElement || !n.parentElement.offsetParent) continue;
    const r = document.createRange();
    r.selectNodeContents(n);
    const lines = Array.from(r.getClientRects()).filter(b => b.width > 0);
    const size = parseFloat(getComputedStyle(n.parentElement).fontSize);
    if (lines.length >= 2 && lines.every(b => b.width <= size * 1.6)) narrow.push(text.slice(0, 20));
  }
  return {scroll: document.documentElement.scrollWidth, inner: window.innerWidth, narrow: narrow};
}"""

#: a control is reachable: scrolled into view it lies inside the window and is what a click there hits
REACHABLE = """(id) => {
  const el = document.getElementById(id);
  el.scrollIntoView({block: "nearest"});
  const b = el.getBoundingClientRect();
  const x = b.left + b.width / 2, y = b.top + b.height / 2;
  const hit = document.elementFromPoint(x, y);
  // (half a pixel of sub-pixel layout is not a clipped button)
  return {inside: b.top >= -0.5 && b.left >= -0.5 && b.bottom <= window.innerHeight + 0.5 && b.right <= window.innerWidth + 0.5 && b.height > 0,
          hit: !!hit && (hit === el || el.contains(hit)),
          box: [b.left, b.top, b.right, b.bottom], window: [window.innerWidth, window.innerHeight]};
}"""


def _whole(page: Any, what: str) -> None:
    m = page.evaluate(WHOLE)
    assert m["scroll"] <= m["inner"], f"{what}: {m['scroll']} px wide in a {m['inner']} px window"
    assert not m["narrow"], f"{what}: text broken one character per line: {m['narrow']}"


def _reachable(page: Any, element_id: str) -> None:
    r = page.evaluate(REACHABLE, element_id)
    assert r["inside"] and r["hit"], f"#{element_id} cannot be reached: {r}"


def _md(text: str, year: int) -> str:
    return text[5:10] if text[:4] == str(year) else text[:10]


def _expected_summary(recent: list[dict[str, Any]], year: int) -> str:
    """The summary as the service's recent answer gives it: the ★ rows, the earliest end of validity
    among the recognizable exam items and lab sub-items."""
    starred = [e for e in recent if e["recognition"] == "1"]
    ends: list[str] = []
    for e in starred:
        subs = [i["expired_time"] for i in e.get("items") or [] if i["recognition"] == "1"]
        ends += subs or [e["expired_time"]]
    return f"{len(starred)} 项可互认，最早 {_md(min(ends), year)} 到期"


def _with_reason(http: httpx2.Client, server: Server, his: dict[str, str]) -> tuple[str, str]:
    """A demo patient whose recent list holds a row without ★ (the panel must say why)."""
    h = {"Authorization": f"Bearer {_token(http, his)}"}
    for id_type, id_no in _patients(http, server):
        recent = http.post("/api/v1/recognition/recent", json={"id_type_code": id_type, "id_no": id_no}, headers=h).json()["item"]
        if any(e["recognition"] == "0" for e in recent) and any(e["recognition"] == "1" for e in recent):
            return id_type, id_no
    raise AssertionError("no demo patient with both recognizable and not recognizable recent rows")


@pytest.fixture(scope="module")
def world(demo_server: Server) -> dict[str, Any]:
    his = account(demo_server, "hospital", 1)
    with httpx2.Client(base_url=demo_server.base_url, timeout=20.0) as http:
        p = _pick(http, demo_server, his)
        token = _token(http, account(demo_server, "doctor", 1))
        other = _with_reason(http, demo_server, his)
        h = {"Authorization": f"Bearer {token}"}

        def recent(id_type: str, id_no: str) -> list[dict[str, Any]]:
            r = http.post("/api/v1/recognition/recent", json={"id_type_code": id_type, "id_no": id_no}, headers=h)
            assert r.status_code == 200, r.text
            items: list[dict[str, Any]] = r.json()["item"]
            return items

        exists = http.post(
            "/api/v1/recognition/exists",
            json={"id_type_code": p["id_type"], "id_no": p["id_no"], "check": p["check"], "lab": p["lab"]}, headers=h,
        ).json()
        return {"p": p, "token": token, "recent": recent(p["id_type"], p["id_no"]), "other": other,
                "other_recent": recent(*other), "exists": exists}


class Small:
    """A browser context of one of the SIZES."""

    def __init__(self, ctx: Any, size_name: str) -> None:
        self.ctx, self.size_name = ctx, size_name

    def new_page(self) -> Any:
        return self.ctx.new_page()

    def expect_page(self) -> Any:
        return self.ctx.expect_page()


@pytest.fixture(params=list(SIZES))
def small(request: pytest.FixtureRequest, browser: Any) -> Iterator[Small]:
    viewport, scale = SIZES[request.param]
    ctx = browser.new_context(locale="zh-CN", viewport=viewport, device_scale_factor=scale)
    ctx.set_default_timeout(15_000)
    try:
        yield Small(ctx, request.param)
    finally:
        ctx.close()


def _panel_url(base: str, world: dict[str, Any], id_type: str, id_no: str, **more: str) -> str:
    return f"{base}/ui/panel?{urlencode({'id_type_code': id_type, 'id_no': id_no, 'token': world['token']} | more)}"


def test_panel_is_whole_and_says_until_when_and_why(demo_server: Server, small: Small, world: dict[str, Any]) -> None:
    size = small.size_name
    page = small.new_page()
    year = date.today().year
    p = world["p"]
    page.goto(_panel_url(demo_server.base_url, world, p["id_type"], p["id_no"]))
    _whole(page, f"panel {size}")
    _reachable(page, "order-submit")
    # the summary and each ★ row's valid-until are what the service answers
    assert page.inner_text("#panel-summary") == _expected_summary(world["recent"], year)
    for e in world["recent"]:
        if e["recognition"] != "1":
            continue
        table = "#recent-exams" if e["type"] == "check" else "#recent-labs"
        until = page.locator(f'{table} tr.recognizable[data-report="{e["report_id"]}"] .valid-until')
        assert until.get_attribute("title") == f"互认有效期至 {e['expired_time'][:10]}"
        assert until.inner_text() == _md(e["expired_time"], year)
        subs = page.locator(f'{table} tr.subitems-row[data-report="{e["report_id"]}"] li')
        assert subs.count() == len(e.get("items") or [])
        for n, i in enumerate(e.get("items") or []):  # each lab sub-item's own verdict
            li = subs.nth(n)
            if i["recognition"] == "1":
                assert li.locator(".valid-until").get_attribute("title") == f"互认有效期至 {i['expired_time'][:10]}"
            else:
                assert li.locator(".why").get_attribute("title") == REASONS[i["reason"]]
    # the patient: masked ID, never the whole number
    head = page.inner_text("#patient-head")
    assert p["id_no"] not in head
    assert p["id_no"][:4] in head and "*" in head and p["id_no"][-2:] in head
    shot(page, f"doctor-small-panel-{size}")

    # a row without ★ names its reason, short, with the full text on hover
    id_type, id_no = world["other"]
    page.goto(_panel_url(demo_server.base_url, world, id_type, id_no))
    _whole(page, f"panel with reasons {size}")
    plain = [e for e in world["other_recent"] if e["recognition"] == "0"]
    assert plain and all(e["reason"] in REASONS for e in plain)
    whys = page.locator("tr.not-recognizable .why")
    assert whys.count() == len(plain)
    assert sorted(whys.evaluate_all("els => els.map(e => e.title)")) == sorted(REASONS[e["reason"]] for e in plain)
    shot(page, f"doctor-small-panel-reasons-{size}")


def test_dialog_is_whole_refuses_visibly_and_saves_with_enter(demo_server: Server, small: Small, world: dict[str, Any]) -> None:
    size = small.size_name
    page = small.new_page()
    year = date.today().year
    p = world["p"]
    page.goto(_panel_url(demo_server.base_url, world, p["id_type"], p["id_no"]))
    for code in p["check"]:
        page.check(f'#pick-exam input[value="{code}"]')
    for code in p["lab"]:
        page.check(f'#pick-lab input[value="{code}"]')
    page.locator("#order-submit").scroll_into_view_if_needed()
    page.click("#order-submit")
    page.wait_for_url("**/ui/decide?**")
    _whole(page, f"dialog {size}")
    _reachable(page, "decide-save")
    # the summary and the valid-until dates are the service's exists answer
    ex = world["exists"]
    items = [m for m in ex["exammaster"]] + [i for m in ex["labmaster"] for i in m["item"]]
    first = min(i["expired_time"] for i in items)
    assert page.inner_text("#decide-summary") == f"{ex['recognizable']} 项可互认，最早 {_md(first, year)} 到期"
    shown = sorted(page.locator("tr[data-row] .valid-until").evaluate_all("els => els.map(e => e.title)"))
    assert shown == sorted(f"互认有效期至 {i['expired_time'][:16]}" for i in items)
    shot(page, f"doctor-small-decide-{size}")

    # a refused save is visible (in the window, focused)
    page.evaluate("() => { const b = document.getElementById('decide-save'); b.disabled = false; b.click(); }")
    page.wait_for_selector("#decide-errors")
    errors = page.locator("#decide-errors")
    box = errors.bounding_box()
    assert box and box["y"] >= 0 and box["y"] < page.viewport_size["height"], box
    assert page.evaluate("() => document.activeElement && document.activeElement.id") == "decide-errors"
    _whole(page, f"refused dialog {size}")
    shot(page, f"doctor-small-decide-refused-{size}")

    # 全部互认, the visit number, then Enter saves
    page.click("#accept-all")
    event = page.locator('input[name="event_no"]')
    if event.count():
        event.fill(f"MZSMALL{size[:3]}")
        event.press("Enter")
    else:
        page.locator('input[name="is_accept_0"][value="1"]').press("Enter")
    page.wait_for_selector("#decided-ok")
    assert "已保存" in page.inner_text("#decided-ok")
    shot(page, f"doctor-small-decided-{size}")


def test_enter_waits_until_ready_and_esc_closes(demo_server: Server, small: Small, world: dict[str, Any]) -> None:
    p = world["p"]
    opener = small.new_page()
    opener.goto(f"{demo_server.base_url}/ui/login")
    order = [("id_type_code", p["id_type"]), ("id_no", p["id_no"]), ("token", world["token"])]
    order += [("check", c) for c in p["check"]] + [("lab", c) for c in p["lab"]]
    with small.expect_page() as popup:
        opener.evaluate("url => window.open(url, 'huren_panel', 'width=450,height=500')", f"{demo_server.base_url}/ui/decide?{urlencode(order)}")
    dialog = popup.value
    dialog.wait_for_selector("#decide-form")
    # Enter with nothing chosen saves nothing: the page stays, the hint says what is missing
    dialog.locator('input[name="is_accept_0"][value="1"]').focus()
    dialog.keyboard.press("Enter")
    assert "/ui/decide?" in dialog.url and "未选择是否互认" in dialog.inner_text("#decide-hint")
    # Esc closes the window the HIS's widget opened
    with dialog.expect_event("close"):
        try:
            dialog.keyboard.press("Escape")
        except Exception as exc:  # playwright's TargetClosedError: closed while the key was delivered
            if "closed" not in str(exc):
                raise
    assert dialog.is_closed()


def test_lookup_focuses_the_id_field(demo_server: Server, small: Small, world: dict[str, Any]) -> None:
    page = small.new_page()
    page.goto(f"{demo_server.base_url}/ui/doctor?{urlencode({'token': world['token']})}")
    assert page.evaluate("() => document.activeElement && document.activeElement.name") == "id_no"
    _whole(page, f"lookup {small.size_name}")


def test_logged_in_dialog_is_whole_without_the_side_menu(demo_server: Server, small: Small, world: dict[str, Any]) -> None:
    """The same dialog inside a logged-in session (top bar and menu of the platform): still whole."""
    page = small.new_page()
    login(page, demo_server, account(demo_server, "doctor", 1), "/ui/doctor")
    p = world["p"]
    order = [("id_type_code", p["id_type"]), ("id_no", p["id_no"])] + [("check", c) for c in p["check"]] + [("lab", c) for c in p["lab"]]
    page.goto(f"{demo_server.base_url}/ui/decide?{urlencode(order)}")
    page.wait_for_selector("#decide-form")
    _whole(page, f"logged-in dialog {small.size_name}")
    _reachable(page, "decide-save")
    shot(page, f"doctor-small-decide-session-{small.size_name}")
