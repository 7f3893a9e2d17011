"""PostgreSQL restarted under a running platform (issue 13 fault tests): while the server is down
a registration is answered 503 naming the database (never a 500) and nothing is half-kept; once
it is back the same process serves again (its pool reconnects), and a city's feed applied across
the restart lands every report exactly once."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from huren.api.app import create_app
from huren.bootstrap import build
from huren.client import HurenClient
from huren.context import Clock
from huren.federation.config import Endpoint, FederationConfig
from huren.federation.runner import Runner
from huren.settings import Settings
from huren.store.tables import lab_report
from tests import pgcluster, samples
from tests.conftest import HASH_N, ORG_A, SECRET, SUPERVISOR, add_fixture_orgs, login, missing

pytestmark = pytest.mark.postgres


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[pgcluster.Cluster]:
    if not pgcluster.available():
        missing("PostgreSQL server binaries (initdb, pg_ctl) not found")
    # outside pytest's tmp_path: the postgres user must reach it (a fresh directory each time)
    root = Path(tempfile.mkdtemp(prefix="huren-pg-", dir="/tmp"))
    c = pgcluster.Cluster(root / "cluster").init()
    try:
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


def _build(url: str, data: Path) -> Any:
    settings = Settings(data_dir=data, database_url=url, secret_key=SECRET, max_pdf_bytes=64 * 1024, password_hash_n=HASH_N)
    c = build(settings, clock=Clock(), upgrade=True)
    add_fixture_orgs(c)
    return c


def _report(n: int) -> dict[str, Any]:
    p = samples.lab()
    p["labmaster"]["report_form_no"] = f"R-{n}"
    for it in p["lab_subitem"]:
        it["report_form_no"] = f"R-{n}"
    return p


def test_a_restart_is_503_then_served_again(cluster: pgcluster.Cluster, tmp_path: Path) -> None:
    c = _build(cluster.url(), tmp_path / "data")
    with TestClient(create_app(c)) as tc:
        a = login(tc, ORG_A)
        assert a.post("/api/v1/lab-reports", _report(1)).status_code == 200
        cluster.stop()
        r = a.post("/api/v1/lab-reports", _report(2))
        assert r.status_code == 503, r.text
        assert r.json()["problems"][0]["field"] == "database" and "数据库" in r.json()["message"]
        cluster.start()
        for _ in range(50):  # the first checkout after the restart may still find a stale connection
            r = a.post("/api/v1/lab-reports", _report(2))
            if r.status_code == 200:
                break
            assert r.status_code == 503, r.text
            time.sleep(0.1)
        assert r.status_code == 200, r.text
        with c.db.read() as conn:
            assert conn.execute(select(func.count()).select_from(lab_report)).scalar_one() == 2
    c.close()


def test_a_feed_applied_across_a_restart_lands_once(cluster: pgcluster.Cluster, sqlite_template: Path, tmp_path: Path) -> None:
    shutil.copy(sqlite_template, tmp_path / "city.db")
    city = build(Settings(data_dir=tmp_path / "city", database_url=f"sqlite:///{tmp_path / 'city.db'}", secret_key=SECRET,
                          max_pdf_bytes=64 * 1024, password_hash_n=HASH_N), clock=Clock())
    region = _build(cluster.url(), tmp_path / "region")
    sync = (SUPERVISOR[0], "sync", "sync-password")
    city.federation.add_platform("XJ", "新疆维吾尔自治区平台", "region", division="650000", local=False)
    city.federation.add_platform("XJ-6501", "乌鲁木齐市平台", "city", parent="XJ", division="650100")
    region.federation.add_platform("XJ", "新疆维吾尔自治区平台", "region", division="650000")
    region.federation.add_platform("XJ-6501", "乌鲁木齐市平台", "city", parent="XJ", division="650100", local=False)
    for c in (city, region):
        c.directory.add_credential(sync[0], sync[1], sync[2], role="platform")
    n = 60
    with TestClient(create_app(city)) as tc, TestClient(create_app(region)) as tr:
        a = login(tc, ORG_A)
        for i in range(n):
            assert a.post("/api/v1/lab-reports", _report(i)).status_code == 200
        ep = Endpoint("http://x", *sync)
        cfg = FederationConfig(platform="XJ-6501", source=ep, target=ep, batch=5, wait_seconds=0.0, max_backoff_seconds=1.0)
        runner = Runner(cfg, source=HurenClient("http://c", *sync, http=tc), target=HurenClient("http://r", *sync, http=tr))
        done = threading.Event()

        def run() -> None:
            while not done.is_set():
                runner.run(until_idle=True)
                time.sleep(0.05)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        time.sleep(0.3)
        cluster.restart(down_seconds=1.0)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with region.db.read() as conn:
                    if conn.execute(select(func.count()).select_from(lab_report)).scalar_one() >= n:
                        break
            except Exception:
                pass
            time.sleep(0.2)
        time.sleep(0.5)
        done.set()
        t.join(30)
        runner.close()
        with region.db.read() as conn:
            forms = [r[0] for r in conn.execute(select(lab_report.c.report_form_no))]
        assert sorted(forms) == sorted(f"R-{i}" for i in range(n))  # every report, once
    city.close()
    region.close()
