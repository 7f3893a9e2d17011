"""Shared fixtures: a container on SQLite and on a real PostgreSQL, and a REST client.

PostgreSQL: ``HUREN_TEST_PG_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``)
names a server the tests may create databases on. Without one the PostgreSQL tests skip with the
reason — unless ``HUREN_REQUIRE_ALL=1`` (CI), where they fail.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, NullPool, create_engine, insert, select, text
from sqlalchemy.engine import make_url

from huren.api.app import create_app
from huren.bootstrap import Container, build
from huren.context import Clock
from huren.errors import NotFound
from huren.settings import Settings
from huren.store.database import make_engine

PG_URL = os.environ.get("HUREN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_ALL = os.environ.get("HUREN_REQUIRE_ALL") == "1"
SECRET = "test-secret-" + "x" * 32
#: a cheap scrypt cost for the tests' passwords (production: Settings' default, 2**14); also in the
#: environment, so servers the tests start as processes and Settings() built in tests hash cheaply
HASH_N = 2**4
os.environ.setdefault("HUREN_PASSWORD_HASH_N", str(HASH_N))

ORG_A = ("457759922", "第一人民医院", "650102", "3甲", "his", "password-a")
ORG_B = ("457759933", "沙依巴克区人民医院", "650103", "2甲", "lis", "password-b")
SUPERVISOR = ("650100000", "乌鲁木齐市卫生健康委员会", "650100", "3", "admin", "password-s")


FIXTURE_ORGS = (ORG_A, ORG_B, SUPERVISOR)


def add_fixture_orgs(c: Container) -> None:
    """The three institutions every test starts with (hospital A, hospital B, the supervisor)."""
    for code, name, region, level, user, pw in FIXTURE_ORGS:
        role = "supervisor" if code == SUPERVISOR[0] else "hospital"
        c.directory.add_org(code, name, region, level, user=user, password=pw, role=role)


def seed_template(url: str, tmp: Path) -> None:
    """Migrate a template database and add the fixture institutions once (their password hashes are
    the costly part of a test's setup), so each test copies a ready database."""
    settings = Settings(data_dir=tmp, database_url=url, secret_key=SECRET, password_hash_n=HASH_N)
    c = build(settings, clock=Clock(), upgrade=True)
    try:
        add_fixture_orgs(c)
    finally:
        c.close()


def missing(reason: str) -> None:
    if REQUIRE_ALL:
        pytest.fail(f"HUREN_REQUIRE_ALL=1 but {reason}")
    pytest.skip(reason)


class PgDatabases:
    """Databases for the PostgreSQL tests: copies of a migrated template that holds the fixture
    institutions. A copy is handed back after its test and reset to the template's rows (all rows
    deleted, the template's put back, sequences restarted), which costs a few milliseconds where a
    new ``CREATE DATABASE … TEMPLATE`` costs ~130 ms; a copy whose schema a test changed, or that a
    leftover connection still locks, is dropped instead."""

    def __init__(self, admin_url: Any, template: str) -> None:
        self.admin_url = admin_url
        self.template = template
        self.admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.free: list[str] = []
        self.made: list[str] = []
        engine = create_engine(self.url(template))
        try:
            self.meta = MetaData()
            self.meta.reflect(engine)
            with engine.connect() as conn:
                self.version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
                self.rows = {
                    t.name: [dict(r) for r in conn.execute(select(t)).mappings()]
                    for t in self.meta.sorted_tables
                    if t.name != "alembic_version"
                }
                sequences = conn.execute(text(
                    "SELECT s.relname, t.relname, a.attname FROM pg_class s "
                    "JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass "
                    "JOIN pg_class t ON t.oid = d.refobjid "
                    "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid "
                    "WHERE s.relkind = 'S'"
                )).all()
        finally:
            engine.dispose()
        tables = [t for t in self.meta.sorted_tables if t.name != "alembic_version"]
        self.wipe = "; ".join(f'DELETE FROM "{t.name}"' for t in reversed(tables))
        self.restart = "SELECT " + ", ".join(
            f"setval('\"{seq}\"', COALESCE((SELECT max(\"{col}\") FROM \"{tbl}\"), 0) + 1, false)"
            for seq, tbl, col in sequences
        ) if sequences else ""
        self.table_names = {t.name for t in self.meta.sorted_tables}

    def url(self, name: str) -> str:
        return str(self.admin_url.set(database=name).render_as_string(hide_password=False))

    def acquire(self) -> str:
        if self.free:
            return self.free.pop()
        name = f"huren_t_{uuid.uuid4().hex[:10]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'))
        self.made.append(name)
        return name

    def release(self, name: str) -> None:
        engine = create_engine(self.url(name), poolclass=NullPool)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
                version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
                names = set(conn.execute(text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                )).scalars())
                if version != self.version or names != self.table_names:
                    raise RuntimeError("schema changed by the test")
                conn.exec_driver_sql(self.wipe)
                for table in self.meta.sorted_tables:
                    if self.rows.get(table.name):
                        conn.execute(insert(table), self.rows[table.name])
                if self.restart:
                    conn.exec_driver_sql(self.restart)
        except Exception:  # a changed schema or a lingering lock: drop this copy, make another
            engine.dispose()
            self.drop(name)
            return
        engine.dispose()
        self.free.append(name)

    def drop(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if name in self.made:
            self.made.remove(name)
        if name in self.free:
            self.free.remove(name)

    def close(self) -> None:
        for name in list(self.made):
            self.drop(name)
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def pg_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgDatabases]:
    """The PostgreSQL server's test databases: a migrated template and the copies made from it."""
    admin_url = make_url(PG_URL)
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any connection failure means: no server here
        missing(f"PostgreSQL not reachable at {PG_URL}: {exc.__class__.__name__}")
    name = f"huren_tpl_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    seed_template(admin_url.set(database=name).render_as_string(hide_password=False), tmp_path_factory.mktemp("pgtpl"))
    dbs = PgDatabases(admin_url, name)
    yield dbs
    dbs.close()


@pytest.fixture(scope="session")
def pg_template(pg_databases: PgDatabases) -> str:
    """The name of the migrated template database (with the fixture institutions)."""
    return pg_databases.template


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("tpl")
    path = tmp / "huren.db"
    seed_template(f"sqlite:///{path}", tmp / "data")
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        tpl: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "huren.db"
        shutil.copy(tpl, target)
        yield f"sqlite:///{target}"
        return
    dbs: PgDatabases = request.getfixturevalue("pg_databases")
    name = dbs.acquire()
    yield dbs.url(name)
    dbs.release(name)


@pytest.fixture
def container(database_url: str, tmp_path: Path) -> Iterator[Container]:
    settings = Settings(
        data_dir=tmp_path / "data", database_url=database_url, secret_key=SECRET, max_pdf_bytes=64 * 1024,
        password_hash_n=HASH_N,
    )
    c = build(settings, clock=Clock())
    # the databases of database_url are copies of a template that holds the fixture institutions;
    # a test module that brings a database of its own gets them added here
    try:
        c.directory.get_org(ORG_A[0])
    except NotFound:
        add_fixture_orgs(c)
    yield c
    c.close()


class Api:
    """A REST client logged in as one institution."""

    def __init__(self, client: TestClient, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.client.post(path, json=json, headers=self.headers | kw.pop("headers", {}), **kw)

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, headers=self.headers | kw.pop("headers", {}), **kw)

    def put(self, path: str, **kw: Any) -> Any:
        return self.client.put(path, headers=self.headers | kw.pop("headers", {}), **kw)


@pytest.fixture
def client(container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(container)) as tc:
        yield tc


def login(client: TestClient, org: tuple[str, ...]) -> Api:
    r = client.post("/api/v1/auth/token", json={"org_code": org[0], "username": org[4], "password": org[5]})
    assert r.status_code == 200, r.text
    return Api(client, r.json()["access_token"])


@pytest.fixture
def api_a(client: TestClient) -> Api:
    return login(client, ORG_A)


@pytest.fixture
def api_b(client: TestClient) -> Api:
    return login(client, ORG_B)


@pytest.fixture
def api_sup(client: TestClient) -> Api:
    return login(client, SUPERVISOR)
