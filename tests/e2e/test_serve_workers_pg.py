"""`huren serve --workers 2` on PostgreSQL as a real process: each worker has its own connection
pool, registrations from several connections all land in the one database, and the DICOM SCP is
started once (in the main process), not once per worker."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest
from sqlalchemy import create_engine, text

from tests import samples
from tests.conftest import ORG_A, PgDatabases
from tests.e2e.test_serve import START_TIMEOUT, _free_port, serve

pytestmark = pytest.mark.e2e


@pytest.fixture
def pg_url(pg_databases: PgDatabases) -> Iterator[str]:
    name = pg_databases.acquire()
    yield pg_databases.url(name)
    pg_databases.release(name)


def _report(n: int) -> dict[str, object]:
    p = samples.lab()
    form = f"W{n:08d}"
    p["labmaster"]["report_form_no"] = form
    for item in p["lab_subitem"]:
        item["report_form_no"] = form
    return p


def test_two_workers_on_postgresql_one_dicom_scp(tmp_path: Path, pg_url: str) -> None:
    dicom_port = _free_port()
    data = tmp_path / "data"
    with serve(data, "--database-url", pg_url, "--workers", "2", "--dicom-port", str(dicom_port)) as s:
        deadline = time.monotonic() + START_TIMEOUT
        while s.log.read_text("utf-8", "replace").count("Application startup complete") < 2:
            assert time.monotonic() < deadline, s.log.read_text("utf-8", "replace")
            time.sleep(0.1)
        with httpx2.Client(base_url=s.base_url, timeout=30.0) as c:
            r = c.post("/api/v1/auth/token", json={"org_code": ORG_A[0], "username": ORG_A[4], "password": ORG_A[5]})
            assert r.status_code == 200, r.text
            headers = {"Authorization": f"Bearer {r.json()['access_token']}", "Connection": "close"}

        def register(n: int) -> int:  # a new connection each time: spread over the workers
            with httpx2.Client(base_url=s.base_url, timeout=30.0) as c:
                return c.post("/api/v1/lab-reports", json=_report(n), headers=headers).status_code

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(register, range(40))) == [200] * 40
        with socket.create_connection(("127.0.0.1", dicom_port), timeout=5):
            pass  # the SCP listens
        engine = create_engine(pg_url)
        try:
            with engine.connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM lab_report WHERE report_form_no LIKE 'W%'")).scalar() == 40
                # the workers' pools: connections from more than one server process
                pids = conn.execute(
                    text("SELECT count(DISTINCT pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
                ).scalar()
                assert pids is not None and pids >= 2
        finally:
            engine.dispose()
        log = s.log.read_text("utf-8", "replace")
    assert log.count("Started server process") == 2, log
    assert log.count("DICOM 服务已启动") == 1, log  # once, in the main process
