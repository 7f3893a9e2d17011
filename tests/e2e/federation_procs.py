"""Platforms as real processes for the federation e2e tests: each a ``huren serve`` on its own data
directory (SQLite, or a PostgreSQL database), its platform tree made with the ``huren platform add``
CLI, and ``huren federation run`` processes between them — each stopped, killed and started again."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from huren.bootstrap import build
from huren.client import HurenClient
from huren.demo.generator import DemoOrg, demo_orgs, make_lab_report, make_patients
from huren.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "fed-e2e-pass-1"
#: (code, name, division, level) of each platform's health commission: its platform account syncs
COMMISSION = {
    "XJ-6501": ("650100000", "乌鲁木齐市卫生健康委员会", "650100", "3"),
    "XJ": ("650000000", "新疆维吾尔自治区卫生健康委员会", "650000", "3"),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(what: str, cond: Callable[[], bool], timeout: float = 60.0, logs: tuple[Path, ...] = ()) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p}\n{p.read_text('utf-8', 'replace')[-4000:]}" for p in logs if p.exists())
            pytest.fail(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.05)


def env(data: Path | None, url: str | None = None) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.upper().startswith("HUREN_")}
    out |= {"PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8", "HUREN_SYNC_PASSWORD": PASSWORD}
    out["HUREN_PASSWORD_HASH_N"] = os.environ.get("HUREN_PASSWORD_HASH_N", "16")
    if data is not None:
        out["HUREN_DATA_DIR"] = str(data)
    if url:
        out["HUREN_DATABASE_URL"] = url
    return out


class Proc:
    def __init__(self, argv: list[str], environ: dict[str, str], log: Path) -> None:
        self.argv, self.environ, self.log = argv, environ, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "huren.cli", *self.argv], env=self.environ, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.alive():
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(20)


class Platform(Proc):
    """One platform's deployment: its institutions and accounts made in process, its tree with the
    ``huren platform add`` CLI, then served by ``huren serve``."""

    def __init__(self, tmp: Path, name: str, url: str | None = None) -> None:
        self.data, self.url, self.port = tmp / name, url, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        super().__init__(["serve", "--port", str(self.port)], env(self.data, url), tmp / f"{name}.log")

    def setup(self, orgs: list[tuple[str, str, str, str, str]], accounts: list[str], platforms: list[list[str]]) -> None:
        """``orgs``: (code, name, division, level, role); ``accounts``: org codes given the platform
        account ``sync``; ``platforms``: the arguments of each ``huren platform add``."""
        c = build(Settings(data_dir=self.data, database_url=self.url), upgrade=True)
        try:
            for code, name, division, level, role in orgs:
                c.directory.add_org(code, name, division, level, user="his" if role == "hospital" else "admin", password=PASSWORD, role=role)
            for code in accounts:
                c.directory.add_credential(code, "sync", PASSWORD, role="platform")
        finally:
            c.close()
        for args in platforms:
            subprocess.run(
                [sys.executable, "-m", "huren.cli", "platform", "add", *args], env=env(self.data, self.url), cwd=ROOT, check=True,
                capture_output=True, timeout=60,
            )

    def start(self) -> None:
        super().start()

        def up() -> bool:
            assert self.alive(), self.log.read_text("utf-8", "replace")[-4000:]
            try:
                return httpx2.get(f"{self.base}/healthz", timeout=1.0).status_code == 200
            except httpx2.TransportError:
                return False

        wait(f"{self.data.name} to start", up, 60, (self.log,))

    def client(self, org: str, user: str = "his") -> HurenClient:
        return HurenClient(self.base, org, user, PASSWORD, timeout=30)

    def sql(self, query: str, **params: Any) -> list[Any]:
        eng = create_engine(self.url or f"sqlite:///{self.data / 'huren.db'}", poolclass=NullPool)
        try:
            with eng.connect() as conn:
                return list(conn.execute(text(query), params))
        finally:
            eng.dispose()

    def reports(self) -> dict[str, tuple[int, str, bool, int]]:
        """key → (rows with it, last_update_dtime, voided, items) of every lab report stored here."""
        rows = self.sql(
            "SELECT r.org_code, r.report_form_no, r.patient_id, r.event_type, r.event_no, r.last_update_dtime, r.voided,"
            " (SELECT count(*) FROM lab_item i WHERE i.report_id = r.id) FROM lab_report r"
        )
        out: dict[str, tuple[int, str, bool, int]] = {}
        for r in rows:
            key = "|".join(str(x) for x in r[:5])
            out[key] = ((out[key][0] if key in out else 0) + 1, str(r[5])[:19], bool(r[6]), int(r[7]))
        return out

    def applied(self, child: str) -> int:
        try:
            rows = self.sql("SELECT applied_seq FROM federation_peer WHERE platform = :p", p=child)
        except Exception:
            return -1
        return int(rows[0][0]) if rows else 0


def runner(tmp: Path, name: str, platform: str, source: Platform, target: Platform, account: str, batch: int) -> Proc:
    def ep(section: str, p: Platform) -> str:
        return (f'[{section}]\nbase_url = "{p.base}"\norg_code = "{account}"\nusername = "sync"\n'
                f'password_env = "HUREN_SYNC_PASSWORD"\ntimeout_seconds = 10\n')

    config = tmp / f"{name}.toml"
    config.write_text(
        f'platform = "{platform}"\n' + ep("source", source) + ep("target", target)
        + f"[sync]\nbatch = {batch}\nwait_seconds = 0.5\nmax_backoff_seconds = 1\n", "utf-8",
    )
    return Proc(["federation", "run", "--config", str(config)], env(None), tmp / f"{name}.log")


def lab_reports(org: DemoOrg, n: int, prefix: str, pdfs: int = 0, seed: int = 5) -> list[dict[str, Any]]:
    """``n`` lab reports of ``org`` (demo generator), form numbers ``prefix`` + a number, the first
    ``pdfs`` with their PDF."""
    rng = random.Random(seed)
    patients = make_patients(rng, max(5, n // 10))
    base = datetime(2026, 11, 1, 9, 0, 0)
    out = []
    for i in range(n):
        p = make_lab_report(rng, org, patients[i % len(patients)], base - timedelta(minutes=i), with_pdf=i < pdfs)
        form = f"{prefix}{i:06d}"
        p["labmaster"]["report_form_no"] = form
        for item in p["lab_subitem"]:
            item["report_form_no"] = form
        out.append(p)
    return out


def newer(p: dict[str, Any]) -> dict[str, Any]:
    t = (datetime.fromisoformat(p["labmaster"]["last_update_dtime"]) + timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S")
    items: list[dict[str, Any]] = [dict(i, last_update_dtime=t) for i in p["lab_subitem"]]
    items[0]["result_value"] = "8.88"
    return {"labmaster": dict(p["labmaster"], last_update_dtime=t, pdf=""), "lab_subitem": items}


def void_filter(p: dict[str, Any]) -> dict[str, Any]:
    m = p["labmaster"]
    return {k: m[k] for k in ("org_code", "report_form_no", "patient_id", "event_type", "event_no", "id_no")} | {"id_type": m["id_type_code"]}


def hospitals() -> tuple[DemoOrg, DemoOrg]:
    """Two hospitals of Urumqi (the city platform XJ-6501)."""
    return demo_orgs()[0], demo_orgs()[1]
