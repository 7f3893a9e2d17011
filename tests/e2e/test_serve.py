"""`huren serve` as a real server process on a free port, after `huren demo`, spoken to over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("HUREN_")}
    env["HUREN_DATA_DIR"] = str(data_dir)
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    base_url: str
    proc: subprocess.Popen[bytes]
    log: Path
    demo: dict[str, Any]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server and its worker processes (its own process group, started by us)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
    # workers left behind in the group, if any
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def serve(data_dir: Path, *extra: str, demo: dict[str, Any] | None = None) -> Iterator[Server]:
    port = _free_port()
    log = data_dir.parent / f"serve-{port}.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "huren.cli", "serve", "--port", str(port), *extra],
            env=_env(data_dir),
            cwd=ROOT,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text('utf-8', 'replace')}")
            try:
                if httpx2.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server did not answer within {START_TIMEOUT}s:\n{log.read_text('utf-8', 'replace')}")
            time.sleep(0.1)
        yield Server(base, proc, log, demo or {})
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("e2e") / "data"
    proc = subprocess.run(
        [sys.executable, "-m", "huren.cli", "demo", "--reports", "20"],
        env=_env(data),
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    demo = json.loads(proc.stdout)
    assert demo["reports_registered"] == 20
    with serve(data, demo=demo) as s:
        yield s


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=server.base_url, timeout=10.0) as c:
        yield c


@pytest.fixture(scope="module")
def token(server: Server, client: httpx2.Client) -> str:
    cred = next(c for c in server.demo["credentials"] if c["role"] == "hospital")
    r = client.post(
        "/api/v1/auth/token",
        json={"org_code": cred["org_code"], "username": cred["username"], "password": cred["password"]},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["code"] == "ok" and body["token_type"] == "Bearer"
    assert body["expires_in"] == 7200
    assert body["org_code"] == cred["org_code"] and body["role"] == "hospital"
    assert body["access_token"]
    access: str = body["access_token"]
    return access


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_healthz(client: httpx2.Client) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json()["code"] == "ok"
    assert r.json()["version"]


def _a_lab_report(server: Server, client: httpx2.Client) -> str:
    """The ref of a demo lab report with a PDF, as the supervisor's report lists (BJ-1.2.1) give it:
    report ids are opaque, so there is no ``/lab-reports/1`` to start from."""
    sup = next(c for c in server.demo["credentials"] if c["role"] == "supervisor")
    r = client.post("/api/v1/auth/token", json={k: sup[k] for k in ("org_code", "username", "password")})
    h = _auth(r.json()["access_token"])
    for org in dict.fromkeys(c["org_code"] for c in server.demo["credentials"] if c["role"] == "hospital"):
        listed = client.get("/api/v1/org-reports", params={"org_code": org, "kind": "lab"}, headers=h)
        assert listed.status_code == 200, listed.text
        for rep in listed.json()["reports"]:
            if rep["has_pdf"]:
                ref: str = rep["report_id"]
                assert rep["url"] == f"/api/v1/lab-reports/{ref}"
                return ref
    raise AssertionError("no demo lab report with a PDF")


def test_report_query_and_pdf(server: Server, client: httpx2.Client, token: str) -> None:
    ref = _a_lab_report(server, client)
    assert len(ref) == 22 and not ref.isdigit()
    r = client.get(f"/api/v1/lab-reports/{ref}", headers=_auth(token))
    assert r.status_code == 200, r.text
    report = r.json()["report"]
    assert report["report_id"] == ref and report["kind"] == "lab"
    master = report["labmaster"]
    assert master["id_no"] and master["id_type_code"]
    assert report["lab_subitem"]

    q = client.post(
        "/api/v1/query/lab-reports",
        json={"id_type_code": master["id_type_code"], "id_no": master["id_no"]},
        headers=_auth(token),
    )
    assert q.status_code == 200, q.text
    body = q.json()
    assert body["code"] == "ok"
    assert body["count"] == len(body["reports"]) >= 1
    assert ref in [rep["report_id"] for rep in body["reports"]]
    assert {rep["labmaster"]["id_no"] for rep in body["reports"]} == {master["id_no"]}

    pdf = client.get(f"/api/v1/lab-reports/{ref}/pdf", headers=_auth(token))
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    assert pdf.content.rstrip().endswith(b"%%EOF")


def test_unknown_report_is_404(client: httpx2.Client, token: str) -> None:
    for guess in ("999999", "1", "2", "AAAAAAAAAAAAAAAAAAAAAA"):  # sequential ids and forged refs alike
        r = client.get(f"/api/v1/lab-reports/{guess}", headers=_auth(token))
        assert r.status_code == 404
        assert r.json()["code"] == "not_found"


def test_openapi_lists_interface_ids(client: httpx2.Client) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert "XC-P1" in spec["paths"]["/api/v1/auth/token"]["post"]["x-interface-ids"]
    assert "XC-L7" in spec["paths"]["/api/v1/query/lab-reports"]["post"]["x-interface-ids"]
    ops = [op for path, item in spec["paths"].items() if path.startswith("/api/v1/") for op in item.values()]
    assert len(ops) > 10
    assert all(op.get("x-interface-ids") for op in ops)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic aGlzOnBhc3N3b3Jk"}],
    ids=["none", "bad-token", "basic"],
)
def test_without_token_is_401_json(client: httpx2.Client, headers: dict[str, str]) -> None:
    r = client.get("/api/v1/lab-reports/1", headers=headers)
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["code"] == "unauthorized"
    assert body["message"]
    assert "report" not in body


def test_wrong_password_is_401(server: Server, client: httpx2.Client) -> None:
    cred = server.demo["credentials"][0]
    r = client.post(
        "/api/v1/auth/token",
        json={"org_code": cred["org_code"], "username": cred["username"], "password": cred["password"] + "x"},
    )
    assert r.status_code == 401
    assert r.json()["code"] == "unauthorized"


def test_two_workers_serve_healthz(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serve(data, "--workers", "2") as s:
        # the first worker answers while the second may still be starting: wait for both
        deadline = time.monotonic() + START_TIMEOUT
        while s.log.read_text("utf-8", "replace").count("Application startup complete") < 2:
            assert time.monotonic() < deadline, s.log.read_text("utf-8", "replace")
            time.sleep(0.1)
        log = s.log.read_text("utf-8", "replace")
        with httpx2.Client(base_url=s.base_url, timeout=10.0) as c:
            for _ in range(10):  # new connections each time: spread over the workers
                r = c.get("/healthz", headers={"Connection": "close"})
                assert r.status_code == 200
                assert r.json()["code"] == "ok"
    assert "Started parent process" in log
    assert log.count("Started server process") == 2, log
    assert (data / "huren.db").is_file()
    assert (data / "keys" / "token.key").is_file()
    assert s.proc.returncode is not None  # stopped
