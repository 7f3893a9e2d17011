"""The PostgreSQL pool (huren.store.database): bounded per process, no ping on a quick reuse, and
a connection that died while idle in the pool (a restarted server, a cut connection) replaced
before a request uses it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, event, text

from huren.errors import StoreUnavailable
from huren.store import database
from tests.conftest import PG_URL, missing


@pytest.fixture
def pg_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Engine, list[str]]]:
    try:
        probe = create_engine(PG_URL)
        with probe.connect() as conn:
            conn.execute(text("SELECT 1"))
        probe.dispose()
    except Exception as exc:  # no server here
        missing(f"PostgreSQL not reachable at {PG_URL}: {exc.__class__.__name__}")
    monkeypatch.setattr(database, "PG_PING_IDLE_SECONDS", 0.0)  # every checkout after a checkin is "idle"
    engine = database.make_engine(PG_URL)
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _seen(_conn: object, _cur: object, statement: str, *_a: object) -> None:
        statements.append(statement)

    yield engine, statements
    engine.dispose()


def test_pool_is_bounded_per_process() -> None:
    engine = database.make_engine(PG_URL)
    try:
        assert engine.pool.size() == database.PG_POOL_SIZE  # type: ignore[attr-defined]
        assert database.PG_POOL_SIZE + database.PG_MAX_OVERFLOW <= 25  # 4 workers under max_connections 100
    finally:
        engine.dispose()


def test_dead_idle_connection_is_replaced(pg_engine: tuple[Engine, list[str]]) -> None:
    engine, statements = pg_engine
    with engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    killer = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with killer.connect() as k:
            assert k.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar() is True
    finally:
        killer.dispose()
    with engine.connect() as conn:  # the pooled connection is dead: pinged, replaced, no error
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != pid
    assert statements.count("SELECT pg_backend_pid()") == 2  # the ping runs on the driver, not as a request's statement


def test_no_ping_on_a_quick_reuse(monkeypatch: pytest.MonkeyPatch) -> None:
    """Within the idle time a connection is used without a ping (so a dead one fails its one
    statement), and the pool is then dropped, so the next request gets a new connection."""
    monkeypatch.setattr(database, "PG_PING_IDLE_SECONDS", 3600.0)
    quick = database.make_engine(PG_URL)
    try:
        with quick.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        with quick.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar() == pid
        killer = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with killer.connect() as k:
            k.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        killer.dispose()
        with pytest.raises(StoreUnavailable), quick.connect() as conn:  # 503: try again
            conn.execute(text("SELECT 1"))
        with quick.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != pid
    finally:
        quick.dispose()


def test_only_read_logs_skip_the_flush_wait(pg_engine: tuple[Engine, list[str]]) -> None:
    """``Database.write(durable=False)`` (access and reminder logs) commits without waiting for
    its WAL flush, for that one transaction; every other write keeps synchronous_commit on."""
    engine, _ = pg_engine
    db = database.Database(engine)
    with db.write(durable=False) as conn:
        assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "off"
    with db.write() as conn:
        assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
    with db.read() as conn:  # SET LOCAL ended with its transaction, on the pooled connection too
        assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_prepared_statements_use_generic_plans(pg_engine: tuple[Engine, list[str]]) -> None:
    """Every pooled connection plans its prepared statements once (partitioned tables: a custom
    plan per execution cost more than the query), the pruning done when the plan starts."""
    engine, _ = pg_engine
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar() == "force_generic_plan"
        assert conn.exec_driver_sql("SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' AND pid = pg_backend_pid()").scalar() == 0
