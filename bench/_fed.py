"""Helpers of ``bench/federation.py``: the two platforms (a city and its region) set up in process,
then served by real ``huren serve`` processes, and the runner as a real ``huren federation run``
process — each stopped, killed and started again on the same data."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2
from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.engine import Engine

from huren.bootstrap import build
from huren.demo.generator import demo_orgs
from huren.services.container import Container
from huren.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-" + "k" * 40
CITY, REGION = "XJ-6501", "XJ"
#: the city platform's health commission: its platform account syncs the city's feed upward
SYNC_ORG = ("650100000", "乌鲁木齐市卫生健康委员会", "650100", "3")
SYNC_USER, SYNC_PASSWORD = "sync", "bench-sync-pass"
HOSPITAL_PASSWORD, DOCTOR_PASSWORD = "bench-pass", "bench-doc-pass"


def wipe_pg(url: str) -> None:
    """Empty a PostgreSQL database the bench was given (its public schema dropped and made again)."""
    eng = create_engine(url, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    eng.dispose()


def settings(data: Path, url: str | None) -> Settings:
    return Settings(data_dir=data, database_url=url, secret_key=SECRET)


def db_url(data: Path, url: str | None) -> str:
    return url or f"sqlite:///{data / 'huren.db'}"


def engine(data: Path, url: str | None) -> Engine:
    return create_engine(db_url(data, url), connect_args={"timeout": 30} if not url else {})


def setup_city(data: Path, url: str | None) -> Container:
    """The city: its hospital (reports) and a second hospital (decisions), the sync account; then
    the region above it (by name) and the city's own platform, which takes the institutions in."""
    if url:
        wipe_pg(url)
    c = build(settings(data, url), upgrade=True)
    hosp, doc = demo_orgs()[0], demo_orgs()[1]
    c.directory.add_org(hosp.code, hosp.name, hosp.region_code, "3甲", user="his", password=HOSPITAL_PASSWORD)
    c.directory.add_org(doc.code, doc.name, doc.region_code, "3甲", user="his", password=DOCTOR_PASSWORD)
    c.directory.add_org(*SYNC_ORG, user="admin", password=SYNC_PASSWORD + "-admin", role="supervisor")
    c.directory.add_credential(SYNC_ORG[0], SYNC_USER, SYNC_PASSWORD, role="platform")
    c.federation.add_platform(REGION, "新疆维吾尔自治区平台", "region", division="650000", local=False)
    c.federation.add_platform(CITY, "乌鲁木齐市平台", "city", parent=REGION, division="650100")
    return c


def setup_region(data: Path, url: str | None) -> None:
    """The region: itself, the city (its own deployment, by name) and the city's account there."""
    if url:
        wipe_pg(url)
    c = build(settings(data, url), upgrade=True)
    c.directory.add_org(*SYNC_ORG, user="admin", password=SYNC_PASSWORD + "-admin", role="supervisor")
    c.directory.add_credential(SYNC_ORG[0], SYNC_USER, SYNC_PASSWORD, role="platform")
    c.federation.add_platform(REGION, "新疆维吾尔自治区平台", "region", division="650000")
    c.federation.add_platform(CITY, "乌鲁木齐市平台", "city", parent=REGION, division="650100", local=False)
    c.close()


def _env(data: Path, url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("HUREN_")}
    env |= {"HUREN_DATA_DIR": str(data), "HUREN_SECRET_KEY": SECRET, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
    env |= {"HUREN_CITY_SYNC_PASSWORD": SYNC_PASSWORD, "HUREN_REGION_SYNC_PASSWORD": SYNC_PASSWORD}
    if url:
        env["HUREN_DATABASE_URL"] = url
    return env


class Proc:
    """A ``huren`` subprocess (its own process group), its output appended to a log file."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.argv, self.env, self.log = argv, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "huren.cli", *self.argv], env=self.env, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)

    def tail(self) -> str:
        return self.log.read_text("utf-8", "replace")[-4000:] if self.log.exists() else ""


class Server(Proc):
    def __init__(self, data: Path, url: str | None, port: int, workers: int = 1) -> None:
        super().__init__(["serve", "--port", str(port), "--workers", str(workers)], _env(data, url), data.parent / f"{data.name}.log")
        self.port = port
        self.base = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        super().start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError("huren serve exited:\n" + self.tail())
            try:
                if httpx2.get(f"{self.base}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("huren serve did not start:\n" + self.tail())


def sync_config(path: Path, city: Server, region: Server, batch: int, wait: float = 2.0) -> Path:
    def ep(name: str, s: Server, env: str) -> str:
        return (f'[{name}]\nbase_url = "{s.base}"\norg_code = "{SYNC_ORG[0]}"\nusername = "{SYNC_USER}"\n'
                f'password_env = "{env}"\ntimeout_seconds = 30\n')

    path.write_text(
        f'platform = "{CITY}"\n' + ep("source", city, "HUREN_CITY_SYNC_PASSWORD") + ep("target", region, "HUREN_REGION_SYNC_PASSWORD")
        + f"[sync]\nbatch = {batch}\nwait_seconds = {wait}\nmax_backoff_seconds = 1\n",
        "utf-8",
    )
    return path


def runner(config: Path, data: Path) -> Proc:
    return Proc(["federation", "run", "--config", str(config)], _env(data, None), config.parent / "runner.log")


def states(eng: Engine, prefix: str) -> dict[str, tuple[int, str, bool, int]]:
    """report_form_no → (rows with that business key, last_update_dtime, voided, items) for the
    bench's lab reports (form numbers starting with ``prefix``)."""
    q = text(
        "SELECT r.org_code, r.report_form_no, r.patient_id, r.event_type, r.event_no, r.last_update_dtime, r.voided,"
        " (SELECT count(*) FROM lab_item i WHERE i.report_id = r.id) FROM lab_report r WHERE r.report_form_no LIKE :p"
    )
    out: dict[str, tuple[int, str, bool, int]] = {}
    with eng.connect() as conn:
        for row in conn.execute(q, {"p": prefix + "%"}):
            key = "|".join(str(x) for x in row[:5])
            prev = out.get(key)
            out[key] = ((prev[0] if prev else 0) + 1, str(row[5])[:19], bool(row[6]), int(row[7]))
    return out


def count(eng: Engine, sql: str, **params: Any) -> int:
    with eng.connect() as conn:
        return int(conn.execute(text(sql), params).scalar() or 0)


def sample(eng: Engine, org: str, forms: list[str]) -> dict[str, tuple[str, bool]]:
    """report_form_no → (last_update_dtime, voided) of these lab reports of ``org``, where present
    (by the business key's index: the sampler must not slow down what it watches)."""
    out: dict[str, tuple[str, bool]] = {}
    q = text("SELECT report_form_no, last_update_dtime, voided FROM lab_report WHERE org_code = :o AND report_form_no IN :f")
    q = q.bindparams(bindparam("f", expanding=True))
    with eng.connect() as conn:
        for i in range(0, len(forms), 500):
            for row in conn.execute(q, {"o": org, "f": forms[i : i + 500]}):
                out[str(row[0])] = (str(row[1])[:19], bool(row[2]))
    return out


def new_rows(eng: Engine, after: int) -> list[tuple[int, str]]:
    """(id, report_form_no) of the lab reports stored after id ``after`` (by the primary key: cheap
    to ask every few ten milliseconds)."""
    with eng.connect() as conn:
        rows = conn.execute(text("SELECT id, report_form_no FROM lab_report WHERE id > :a ORDER BY id"), {"a": after})
        return [(int(r[0]), str(r[1])) for r in rows]


ANALYZED = ("lab_report", "lab_report_key", "lab_item", "feed_change", "accept_record", "federation_peer")


def analyze(url: str | None) -> None:
    """On PostgreSQL, ``ANALYZE`` the tables the sync reads by key: what autovacuum does on a
    production server (the test server may run with ``autovacuum = off``, and a table filled
    without statistics gets plans that scan an institution's every report per lookup)."""
    if not url:
        return
    eng = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as conn:
            for t in ANALYZED:
                conn.execute(text(f"ANALYZE {t}"))
    finally:
        eng.dispose()
