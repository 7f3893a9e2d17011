"""The doctor's flow in a real browser (issue #6): widget → reminder panel → order → decision
dialog (save refused until every row is decided) → saved decisions → report view; and the
one-line script embedding on a HIS page."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx2
import pytest

from tests.browser.conftest import account, login, shot
from tests.e2e.test_serve import Server

EVENT_NO = "MZBROWSER01"


def _token(http: httpx2.Client, cred: dict[str, str]) -> str:
    r = http.post("/api/v1/auth/token", json={k: cred[k] for k in ("org_code", "username", "password")})
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


def _patients(http: httpx2.Client, server: Server) -> list[tuple[str, str]]:
    """Every demo patient, read by the supervisor from the institutions' report lists (BJ-1.2.1):
    report ids are opaque refs, so they cannot be walked."""
    h = {"Authorization": f"Bearer {_token(http, account(server, 'supervisor'))}"}
    orgs = list(dict.fromkeys(c["org_code"] for c in server.demo["credentials"] if c["role"] == "hospital"))
    found: dict[tuple[str, str], None] = {}
    for org in orgs:
        for kind in ("lab", "exam"):
            r = http.get("/api/v1/org-reports", params={"org_code": org, "kind": kind, "limit": 500}, headers=h)
            assert r.status_code == 200, r.text
            for rep in r.json()["reports"]:
                found[(rep["id_type_code"], rep["id_no"])] = None
    assert found
    return list(found)


def _pick(http: httpx2.Client, server: Server, his: dict[str, str]) -> dict[str, Any]:
    """A patient with at least two recognizable items held by other hospitals (an exam item or lab
    sub-items), as the doctor's hospital (``his``) sees them."""
    h = {"Authorization": f"Bearer {_token(http, his)}"}
    doctor_org = his["org_code"]
    patients = _patients(http, server)
    for id_type, id_no in patients:
        answer = http.post("/api/v1/recognition/detail", json={"id_type_code": id_type, "id_no": id_no}, headers=h)
        assert answer.status_code == 200, answer.text
        detail = answer.json()
        exams = [(m, i) for m in detail["exammaster"] if m["org_code"] != doctor_org for i in m["item"] if i["expired_time"]]
        labs = [(m, i) for m in detail["labmaster"] if m["org_code"] != doctor_org for i in m["item"] if i["expired_time"]]
        if len(exams) + len(labs) >= 2 and (exams or len(labs) >= 2):
            recent = http.post("/api/v1/recognition/recent", json={"id_type_code": id_type, "id_no": id_no}, headers=h).json()
            return {
                "id_type": id_type, "id_no": id_no,
                "check": sorted({i["exam_item_code"] for _, i in exams})[:2],
                "lab": sorted({i["class_code"] for _, i in labs})[:3],
                "count": sum(1 for e in recent["item"] if e["recognition"] == "1"),
                "report": ("exam", exams[0][0]["report_id"]) if exams else ("lab", labs[0][0]["report_id"]),
            }
    raise AssertionError("no demo patient with recognizable results at other hospitals")


def test_doctor_decides_on_recognizable_results(demo_server: Server, context: Any) -> None:
    base = demo_server.base_url
    doctor = account(demo_server, "doctor", 1)
    his = account(demo_server, "hospital", 1)
    with httpx2.Client(base_url=base, timeout=20.0) as http:
        his_token = _token(http, his)
        p = _pick(http, demo_server, his)
        token = _token(http, doctor)

    # the hospital's administrator watches the recognition statistics
    admin = context.new_page()
    login(admin, demo_server, account(demo_server, "admin", 1), "/ui/stats")

    def kpi(name: str) -> int:
        admin.reload()
        return int(admin.locator(f'[data-kpi="{name}"] .v').inner_text())

    accepted0, rejected0 = kpi("accepted"), kpi("rejected")

    # the widget: green, with the service's count
    page = context.new_page()
    patient = {"id_type_code": p["id_type"], "id_no": p["id_no"], "token": token}
    page.goto(f"{base}/ui/widget?{urlencode(patient)}")
    w = page.locator("#huren-widget")
    assert w.get_attribute("data-count") == str(p["count"]) and p["count"] > 0
    assert w.get_attribute("aria-disabled") is None
    shot(page, "doctor-widget")

    # a click opens the 450×500 reminder panel
    with context.expect_page() as popup:
        w.click()
    panel = popup.value
    panel.wait_for_load_state()
    assert "/ui/panel?" in panel.url
    assert panel.locator("h1").inner_text() == "检查检验结果互认提醒"
    box = panel.locator("#huren-panel").bounding_box()
    assert box and round(box["width"]) == 450 and round(box["height"]) == 500
    assert panel.locator("#recent-exams, #recent-labs").count() >= 1 and panel.locator(".star").count() >= 1
    shot(panel, "doctor-panel")

    # order the recognizable items
    for code in p["check"]:
        panel.check(f'#pick-exam input[value="{code}"]')
    for code in p["lab"]:
        panel.check(f'#pick-lab input[value="{code}"]')
    panel.click("#order-submit")
    panel.wait_for_url("**/ui/decide?**")
    panel.set_viewport_size({"width": 1100, "height": 800})
    rows = panel.locator("tr[data-row]")
    n = rows.count()
    assert n >= 2
    save = panel.locator("#decide-save")
    assert save.is_disabled()
    assert f"还有 {n} 项未选择是否互认" in panel.inner_text("#decide-hint")
    shot(panel, "doctor-decide-before")

    # a forced submit is refused by the server, in Chinese
    panel.evaluate("() => { const b = document.getElementById('decide-save'); b.disabled = false; b.click(); }")
    panel.wait_for_selector("#decide-errors")
    errors = panel.inner_text("#decide-errors")
    assert "第 1 行" in errors and "尚未选择" in errors
    shot(panel, "doctor-decide-refused")

    # reject the first row with a reason, accept the rest
    panel.fill('input[name="event_no"]', EVENT_NO)
    panel.check('input[name="is_accept_0"][value="2"]')
    assert save.is_disabled()  # a rejection needs its reason
    panel.select_option('select[name="reason_0"]', "5")
    for i in range(1, n):
        assert save.is_disabled()
        panel.check(f'input[name="is_accept_{i}"][value="1"]')
    assert save.is_enabled()
    assert "已全部选择" in panel.inner_text("#decide-hint")
    shot(panel, "doctor-decide-after")
    save.click()
    panel.wait_for_selector("#decided-ok")
    assert f"已保存 {n} 条互认记录" in panel.inner_text("#decided-ok")
    shot(panel, "doctor-decided")

    # both kinds of decision are in the platform, for the doctor's hospital
    with httpx2.Client(base_url=base, timeout=20.0) as http:
        r = http.get("/api/v1/recognition/accept", headers={"Authorization": f"Bearer {his_token}"})
    mine = [x for x in r.json()["records"] if x["new_event_no"] == EVENT_NO]
    assert len(mine) == n
    assert sorted(x["is_accept"] for x in mine) == ["1"] * (n - 1) + ["2"]
    assert next(x for x in mine if x["is_accept"] == "2")["reason"] == "5"
    assert all(x["doc_code"] == doctor["username"] and x["dept_std_code"] for x in mine)

    # … and finds both decisions in the statistics page
    assert (kpi("accepted"), kpi("rejected")) == (accepted0 + n - 1, rejected0 + 1)
    assert "认为原检查诊断结果有疑的" in admin.inner_text("body")  # reason 5 among the reasons of non-recognition
    shot(admin, "doctor-decisions-in-statistics")

    # the report view
    kind, rid = p["report"]
    panel.goto(f"{base}/ui/report/{kind}/{rid}?{urlencode({'token': token})}")
    assert panel.locator("dl.report-head").inner_text()
    assert panel.locator("#report-pdf").count() == 1
    if kind == "exam":
        assert panel.inner_text("#conclusion").strip()
    shot(panel, "doctor-report")


class HisPage(http.server.BaseHTTPRequestHandler):
    """The HIS's own web server (another origin on this machine) serving one workstation page."""

    html = ""

    def do_GET(self) -> None:  # the standard library names it so
        body = type(self).html.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def his_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """The demo platform configured for a HIS that embeds its pages (``HUREN_FRAME_ANCESTORS``:
    by default only the platform itself may frame them), and the HIS's own origin."""
    from tests.e2e import test_serve

    his = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HisPage)
    origin = f"http://localhost:{his.server_address[1]}"
    threading.Thread(target=his.serve_forever, daemon=True).start()
    plain = test_serve._env

    def env(data_dir: Path) -> dict[str, str]:
        return plain(data_dir) | {"HUREN_FRAME_ANCESTORS": f"'self' {origin}"}

    try:
        data = tmp_path_factory.mktemp("browser-his") / "data"
        proc = subprocess.run(
            [sys.executable, "-m", "huren.cli", "demo", "--reports", "60"],
            env=env(data), cwd=test_serve.ROOT, capture_output=True, text=True, encoding="utf-8", timeout=180, check=False,
        )
        assert proc.returncode == 0, proc.stderr
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(test_serve, "_env", env)
            with test_serve.serve(data, demo=json.loads(proc.stdout)) as s:
                yield s, origin
    finally:
        his.shutdown()
        his.server_close()


def test_script_tag_embedding(his_server: tuple[Server, str], context: Any) -> None:
    """The one-line script on a HIS page (served from the HIS's own origin, which the platform
    is configured to let frame its pages): the widget iframe, then the panel at the bottom right."""
    server, his_origin = his_server
    base = server.base_url
    doctor = account(server, "doctor", 2)
    his = account(server, "hospital", 2)
    with httpx2.Client(base_url=base, timeout=20.0) as http_client:
        p = _pick(http_client, server, his)
        token = _token(http_client, doctor)
    HisPage.html = (
        "<html><body><h3>HIS 医生工作站</h3><p>患者：演示 "
        f'<script src="{base}/ui/static/widget.js" data-id-type-code="{p["id_type"]}" data-id-no="{p["id_no"]}" '
        f'data-token="{token}"></script></p></body></html>'
    )
    page = context.new_page()
    page.goto(f"{his_origin}/workstation")
    frame = page.frame_locator('iframe[title="检查检验结果互认"]')
    assert frame.locator("#huren-widget").get_attribute("data-count") == str(p["count"])
    frame.locator("#huren-widget").click()
    dialog = page.locator('div[role="dialog"]')
    dialog.wait_for()
    box = dialog.bounding_box()
    assert box and round(box["width"]) >= 450 and box["y"] + box["height"] > 700  # bottom right
    panel = page.frame_locator('iframe[title="检查检验结果互认提醒"]')
    assert panel.locator("h1").inner_text() == "检查检验结果互认提醒"
    shot(page, "doctor-script-embed")
    dialog.get_by_text("关闭").click()
    assert page.locator('div[role="dialog"]').count() == 0

    # Esc inside the panel closes the popup: the panel frame posts huren:close-panel to the HIS
    # page, and widget.js accepts it from the frame it opened (and from no other window)
    frame.locator("#huren-widget").click()
    dialog.wait_for()
    page.evaluate("window.postMessage({type: 'huren:close-panel'}, '*')")  # the HIS page itself: ignored
    page.wait_for_timeout(200)
    assert page.locator('div[role="dialog"]').count() == 1
    panel.locator("h1").click()
    page.keyboard.press("Escape")
    page.locator('div[role="dialog"]').wait_for(state="detached")
    assert page.locator('div[role="dialog"]').count() == 0


def test_decision_dialog_never_fails_silently(demo_server: Server, context: Any) -> None:
    """Issue 10 §2.7: without the visit number the dialog does not say "可以保存"; a refusal by the
    server stays shown and focused while the doctor changes the form; an expired login keeps the
    doctor's choices, says 登录已超时, and after a new login the same click saves them."""
    base = demo_server.base_url
    doctor = account(demo_server, "doctor", 0)
    his = account(demo_server, "hospital", 0)
    with httpx2.Client(base_url=base, timeout=20.0) as http:
        his_token = _token(http, his)
        p = _pick(http, demo_server, his)
    page = context.new_page()
    login(page, demo_server, doctor, "/ui/doctor")
    order = [("id_type_code", p["id_type"]), ("id_no", p["id_no"])] + [("check", c) for c in p["check"]] + [("lab", c) for c in p["lab"]]
    page.goto(f"{base}/ui/decide?{urlencode(order)}")  # the HIS passed no event_no
    n = page.locator("tr[data-row]").count()
    assert n >= 2
    rows = [json.loads(v) for v in page.evaluate("Array.from(document.querySelectorAll('input[name=row]')).map(e => e.value)")]
    # one decision record per prior report and standard code (sub-items may share a code)
    keys = {(r["hr_org_code"], r["hr_report_form_no"], r["code"]) for r in rows}
    save = page.locator("#decide-save")
    for i in range(n):
        page.check(f'input[name="is_accept_{i}"][value="1"]')
    assert save.is_disabled(), "every row decided but no visit number: not ready"
    hint = page.inner_text("#decide-hint")
    assert "请填写就诊流水号" in hint and "可以保存" not in hint
    page.fill('input[name="event_no"]', "MZSILENT01")
    assert save.is_enabled() and "已全部选择，可以保存" in page.inner_text("#decide-hint")
    shot(page, "doctor-decide-visit-ready")

    # the server refuses (a reason code it does not know, slipped past the page): shown, focused, kept shown
    page.check('input[name="is_accept_0"][value="2"]')
    page.evaluate("""() => { const s = document.querySelector('select[name="reason_0"]');
                             s.add(new Option("99. 伪造的理由", "99")); s.value = "99";
                             s.dispatchEvent(new Event('change', {bubbles: true})); }""")
    save.click()
    page.wait_for_selector("#decide-errors")
    assert "请选择不互认理由" in page.inner_text("#decide-errors")
    assert page.evaluate("document.activeElement && document.activeElement.id") == "decide-errors"
    page.check('input[name="is_accept_0"][value="1"]')
    assert page.locator("#decide-errors").is_visible(), "the refusal stays until the form is sent again"
    shot(page, "doctor-decide-refusal-kept")

    # the session ends (idle timeout, logout elsewhere): the choices stay, the page says so
    context.clear_cookies()
    assert save.is_enabled()
    save.click()
    alert = page.locator("#decide-alert")
    alert.wait_for(state="visible")
    assert "登录已超时" in alert.inner_text() and "选择已保留" in alert.inner_text()
    assert page.evaluate("document.activeElement && document.activeElement.id") == "decide-alert"
    assert "/ui/decide" in page.url
    assert all(page.is_checked(f'input[name="is_accept_{i}"][value="1"]') for i in range(n))
    assert page.input_value('input[name="event_no"]') == "MZSILENT01"
    shot(page, "doctor-decide-login-expired")

    # a new login in another window; back on the dialog the same click saves the kept choices
    again = context.new_page()
    login(again, demo_server, doctor, "/ui/doctor")
    again.close()
    save.click()
    page.wait_for_selector("#decided-ok")
    assert f"已保存 {n} 条互认记录" in page.inner_text("#decided-ok")
    with httpx2.Client(base_url=base, timeout=20.0) as http:
        r = http.get("/api/v1/recognition/accept", headers={"Authorization": f"Bearer {his_token}"})
    assert {(x["hr_org_code"], x["hr_report_form_no"], x["code"]) for x in r.json()["records"] if x["new_event_no"] == "MZSILENT01"} == keys
