"""Browser tests: Playwright (Python) driving Debian's Chromium (``/usr/bin/chromium``, or
``HUREN_CHROMIUM``) headless against a real ``huren serve`` loaded with ``huren demo``.

Without Chromium or Playwright these tests skip with the reason, unless ``HUREN_REQUIRE_ALL=1``
(CI, which installs Debian's ``chromium``), where they fail. Screenshots of every page visited
are saved under ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import missing
from tests.e2e.test_serve import ROOT, Server, _env, serve

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("HUREN_CHROMIUM", "/usr/bin/chromium")
SHOTS = ROOT / "test-artifacts" / "screenshots"
#: as the machine's notes say: without the background-networking flags Chromium keeps trying the
#: closed network; --no-sandbox because CI runs as root
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        missing(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (pip install -e '.[dev]')")
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser profile (no cookies) in Chinese, at the reminder panel's scale."""
    ctx = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 860})
    ctx.set_default_timeout(15_000)
    try:
        yield ctx
    finally:
        ctx.close()


def shot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as a test artifact."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`huren demo` (60 reports, doctors' decisions, a completeness gap, rejected submissions), then `huren serve`."""
    data = tmp_path_factory.mktemp("browser") / "data"
    proc = subprocess.run(
        [sys.executable, "-m", "huren.cli", "demo", "--reports", "60"],
        env=_env(data), cwd=ROOT, capture_output=True, text=True, encoding="utf-8", timeout=180, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    demo = json.loads(proc.stdout)
    with serve(data, demo=demo) as s:
        yield s


def account(server: Server, role: str, org_index: int = 0) -> dict[str, str]:
    """A demo login of a role (institutions in the demo's order; the supervisor has one)."""
    found = [c for c in server.demo["credentials"] if c["role"] == role]
    assert found, f"demo has no {role} account"
    if role == "supervisor":
        return dict(found[0])
    orgs = list(dict.fromkeys(c["org_code"] for c in server.demo["credentials"] if c["role"] == "hospital"))
    return next(dict(c) for c in found if c["org_code"] == orgs[org_index])


def login(page: Any, server: Server, cred: dict[str, str], next_url: str = "/ui/") -> None:
    page.goto(f"{server.base_url}/ui/login?next={next_url}")
    page.fill("input[name=org_code]", cred["org_code"])
    page.fill("input[name=username]", cred["username"])
    page.fill("input[name=password]", cred["password"])
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.base_url}{next_url}*")
