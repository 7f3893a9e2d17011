"""The gateway speaks to the platform only through ``huren.client`` (issue 10 §3): importing any
gateway module — and building and serving the local API with the doctor's pages — loads nothing
of ``huren.services``, ``huren.store`` or ``huren.bootstrap``; no gateway module spells a
platform REST path (they are ``huren.client``'s)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import huren.gateway

ROOT = Path(__file__).resolve().parents[2]
PLATFORM = ("huren.services", "huren.store", "huren.bootstrap")

PROGRAM = """
import sys, tempfile
from pathlib import Path
import huren.gateway.cli, huren.gateway.runner, huren.gateway.preload, huren.gateway.pages, huren.gateway.local_api
from huren.gateway import sources
from huren.gateway.sources import dbview, folder, his, pacs_http
from fastapi.testclient import TestClient
from huren.client import HurenClient
from huren.gateway.local_api import create_preload_app
from huren.gateway.preload_cache import PreloadCache

token = "t" * 32
with tempfile.TemporaryDirectory() as d:
    client = HurenClient("http://127.0.0.1:1", "457759922", "his", "x", timeout=1)
    cache = PreloadCache(Path(d) / "preload.db", client, retry_seconds=60, timeout=1)
    app = create_preload_app(cache, enqueue=lambda records: None, api_token=token, pages=("457759922", "p" * 32))
    with TestClient(app, base_url="http://127.0.0.1:8765") as http:
        assert http.get("/healthz").status_code == 200
        assert http.post("/recent", json={"id_type_code": "01", "id_no": "650102198001010011"},
                         headers={"Authorization": "Bearer " + token}).status_code in (422, 503)
        assert http.get("/ui/widget", params={"id_type_code": "01", "id_no": "650102198001010011", "token": "p" * 32}).status_code < 600
    client.close()
print(sorted(m for m in sys.modules if m.startswith(%r)))
"""


def test_the_gateway_loads_nothing_of_the_platform() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM % (PLATFORM,)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_no_gateway_module_spells_a_platform_path() -> None:
    spelled = []
    for mod in pkgutil.walk_packages(huren.gateway.__path__, "huren.gateway."):
        path = ROOT / (mod.name.replace(".", "/") + (".py" if not mod.ispkg else "/__init__.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "/api/v1" in line:
                spelled.append(f"{path.relative_to(ROOT)}:{n}")
    assert spelled == []
