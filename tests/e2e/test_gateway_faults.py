"""`huren gateway run` as a real process in front of `huren serve`: every report arrives once —
also when the platform is stopped for a while mid-stream and the gateway is killed (SIGKILL)
during a drain, then both restart. Checked in the platform's own database."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest

from huren.bootstrap import build
from huren.settings import Settings
from tests.e2e.gateway_source import ORG, PASSWORD, append, stream

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def _env(data_dir: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("HUREN_")}
    if data_dir is not None:
        env["HUREN_DATA_DIR"] = str(data_dir)
    env["HUREN_GATEWAY_PASSWORD"] = PASSWORD
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(what: str, cond: Callable[[], bool], timeout: float = 90.0, logs: tuple[Path, ...] = ()) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p}\n{p.read_text('utf-8', 'replace')[-4000:]}" for p in logs if p.exists())
            pytest.fail(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.02)


class Platform:
    """`huren serve` on a fixed port, stopped and started again on the same data directory."""

    def __init__(self, data: Path, port: int) -> None:
        self.data, self.port = data, port
        self.log = data.parent / "platform.log"
        self.proc: subprocess.Popen[bytes] | None = None
        c = build(Settings(data_dir=data), upgrade=True)
        c.directory.add_org(ORG.code, ORG.name, ORG.region_code, "3甲", user="his", password=PASSWORD)
        c.close()

    def start(self) -> None:
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "huren.cli", "serve", "--port", str(self.port)],
                env=_env(self.data), cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
            )

        def up() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text("utf-8", "replace")
            try:
                return httpx2.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1.0).status_code == 200
            except httpx2.TransportError:
                return False

        _wait("the platform to start", up, 60, (self.log,))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(15)

    def reports(self, kind: str = "lab") -> dict[str, tuple[int, bool, str]]:
        """key → (rows with that key, voided, report title) from the platform's database."""
        title = "max(report_title)" if kind == "lab" else "''"
        with contextlib.closing(sqlite3.connect(self.data / "huren.db", timeout=30)) as db:
            rows = db.execute(
                f"SELECT org_code, report_form_no, patient_id, event_type, event_no, count(*), max(voided), {title}"
                f" FROM {kind}_report GROUP BY org_code, report_form_no, patient_id, event_type, event_no"
            ).fetchall()
        return {f"{kind}:" + "|".join(str(x) for x in r[:5]): (int(r[5]), bool(r[6]), str(r[7])) for r in rows}


class GatewayProc:
    def __init__(self, tmp: Path, port: int, batch_size: int) -> None:
        self.source = tmp / "lis.jsonl"
        self.source.touch()
        self.outbox = tmp / "outbox.db"
        self.log = tmp / "gateway.log"
        self.config = tmp / "gateway.toml"
        self.config.write_text(
            f'[platform]\nbase_url = "http://127.0.0.1:{port}"\norg_code = "{ORG.code}"\nusername = "his"\n'
            'password_env = "HUREN_GATEWAY_PASSWORD"\ntimeout_seconds = 10\n'
            f'[outbox]\npath = "outbox.db"\nbatch_size = {batch_size}\nmax_backoff_seconds = 1\n'
            # daily counts off: they would add a record after 03:00 (covered in test_gateway_outbox.py)
            '[schedule]\npoll_every_seconds = 0.2\ndaily_counts = "off"\n'
            f'[[source]]\nname = "lis"\nfactory = "tests.e2e.gateway_source:build"\npath = "{self.source}"\n',
            "utf-8",
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "huren.cli", "gateway", "run", "--config", str(self.config)],
                env=_env(), cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(30)

    def query(self, sql: str) -> Any:
        if not self.outbox.exists():
            return None
        try:
            with contextlib.closing(sqlite3.connect(self.outbox, timeout=30)) as db:
                return db.execute(sql).fetchone()
        except sqlite3.OperationalError:  # the schema is still being created
            return None

    def counts(self) -> dict[str, int]:
        row = self.query(
            "SELECT sum(state = 'pending'), sum(state = 'done'), sum(state = 'dead'), count(*) FROM record"
        )
        keys = ("pending", "done", "dead", "all")
        return {k: int(v or 0) for k, v in zip(keys, row or (0, 0, 0, 0), strict=True)}

    def watermark(self) -> str:
        row = self.query("SELECT watermark FROM source_state WHERE name = 'lis'")
        return str(row[0]) if row else ""

    def meta(self, name: str) -> str:
        row = self.query(f"SELECT value FROM meta WHERE name = '{name}'")
        return str(row[0]) if row else ""


def _expected(lines: list[dict[str, Any]]) -> dict[str, tuple[int, bool, str]]:
    out: dict[str, tuple[int, bool, str]] = {}
    for d in lines:
        if d["kind"] == "lab":
            out[d["key"]] = (1, False, d["payload"]["labmaster"]["report_title"])
        elif d["kind"] == "void_lab":
            out[d["key"]] = (out[d["key"]][0], True, out[d["key"]][2])
    return out


@pytest.fixture
def setup(tmp_path: Path) -> Any:
    port = _free_port()
    platform = Platform(tmp_path / "data", port)
    gateway = GatewayProc(tmp_path, port, batch_size=20)
    yield platform, gateway
    for p in (gateway.proc, platform.proc):
        if p is not None and p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(15)


def _all_sent(gateway: GatewayProc, lines: list[dict[str, Any]]) -> Callable[[], bool]:
    last = f"{len(lines) - 1:09d}"
    return lambda: gateway.watermark() == last and gateway.counts()["pending"] == 0


def test_every_report_arrives_once(setup: Any) -> None:
    platform, gateway = setup
    lines = stream(200, voids=20, resubmits=10, exams=10)
    append(gateway.source, lines)
    platform.start()
    gateway.start()
    _wait("the gateway to send everything", _all_sent(gateway, lines), logs=(gateway.log,))
    assert gateway.stop() == 0  # SIGTERM: a clean stop
    assert gateway.counts() == {"pending": 0, "done": len(lines), "dead": 0, "all": len(lines)}
    assert platform.reports() == _expected(lines)
    assert len(platform.reports("exam")) == 10
    log = [json.loads(x) for x in gateway.log.read_text("utf-8").splitlines() if x.startswith("{")]
    assert {"前置机已启动", "已从来源读取记录", "前置机已停止"} <= {x["msg"] for x in log}

    status = subprocess.run(
        [sys.executable, "-m", "huren.cli", "gateway", "status", "--config", str(gateway.config), "--json"],
        env=_env(), cwd=ROOT, capture_output=True, text=True, encoding="utf-8", timeout=60, check=True,
    )
    st = json.loads(status.stdout)["sources"]["lis"]
    assert st["watermark"] == f"{len(lines) - 1:09d}" and st["pending"] == 0 and st["done"] == len(lines)


def test_platform_down_and_gateway_killed_mid_drain(setup: Any) -> None:
    platform, gateway = setup
    lines = stream(1500, voids=100, resubmits=60, exams=40)
    a, b = 600, 1200
    logs = (gateway.log, platform.log)

    append(gateway.source, lines[:a])
    platform.start()
    gateway.start()
    _wait("a first part to arrive", lambda: gateway.counts()["done"] >= 100, logs=logs)

    # the platform goes away for a while; the hospital keeps producing reports
    platform.stop()
    append(gateway.source, lines[a:b])
    _wait("the gateway to extract while the platform is down", lambda: gateway.watermark() == f"{b - 1:09d}", logs=logs)
    _wait("the gateway to notice", lambda: bool(gateway.meta("last_upload_error")), logs=logs)
    time.sleep(2)
    stuck = gateway.counts()
    assert stuck["pending"] > 0

    # the platform comes back; the gateway is killed in the middle of draining
    platform.start()
    _wait("the drain to resume", lambda: gateway.counts()["done"] >= stuck["done"] + 60, logs=logs)
    assert gateway.stop(signal.SIGKILL) == -signal.SIGKILL
    killed = gateway.counts()
    assert killed["pending"] > 0, "the kill came after the drain: nothing was interrupted"

    append(gateway.source, lines[b:])
    gateway.start()
    _wait("the gateway to send everything", _all_sent(gateway, lines), timeout=120, logs=logs)
    assert gateway.stop() == 0

    final = gateway.counts()
    assert final["dead"] == 0 and final["pending"] == 0
    assert final["all"] == len(lines)  # nothing extracted twice
    assert platform.reports() == _expected(lines)  # each once, voided where voided, corrected where corrected
    assert len(platform.reports("exam")) == 40
    assert all(n == 1 for n, _, _ in platform.reports("exam").values())
    errors = [json.loads(x) for x in gateway.log.read_text("utf-8").splitlines() if x.startswith("{")]
    assert any(x["msg"] == "平台暂时无法连接，稍后重试" for x in errors)
