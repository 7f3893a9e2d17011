"""Monthly partitions on PostgreSQL (issue 13 §6, migration 0011, huren.store.partitions): the
conversion of existing rows and back, the business key held across partitions under concurrent
writers, the recognition query reading only the recent partitions (EXPLAIN ANALYZE), the same
answers on SQLite and PostgreSQL, the DEFAULT partition emptied by ``ensure``, and ``huren db
partitions`` (detach refused inside the recognition window)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, NullPool, create_engine, text

from huren.cli import main
from huren.context import Principal
from huren.errors import Conflict
from huren.services.container import Container
from huren.store import migrate, partitions, report_queries, sealing
from huren.store import recognition as rstore
from huren.store.database import make_engine
from tests import samples
from tests.conftest import ORG_A, SECRET, PgDatabases

HOSPITAL = Principal(ORG_A[0], ORG_A[4], "hospital")
PG_ONLY = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
DAY = 86400.0


def lab(c: Container, form_no: str, days_ago: float, *, updated: str = "08:00:00") -> dict[str, Any]:
    """The sample lab report, authenticated ``days_ago`` before the container's clock."""
    day = (c.clock.now() - timedelta(days=days_ago)).date().isoformat()
    p: dict[str, Any] = json.loads(json.dumps(samples.lab(), ensure_ascii=False).replace("2024-03-11", day))
    p["labmaster"]["report_form_no"] = form_no
    for row in [p["labmaster"], *p["lab_subitem"]]:
        row["report_form_no"] = form_no
        row["last_update_dtime"] = row["last_update_dtime"][:11] + updated
    return p


def register_at(c: Container, payload: dict[str, Any], days_ago: float) -> None:
    """Register as if the platform's clock were ``days_ago`` behind (received_at then)."""
    saved = c.clock.offset
    c.clock.offset = saved - days_ago * DAY
    try:
        c.registry.register("lab", payload, HOSPITAL)
    finally:
        c.clock.offset = saved


def months_around(c: Container, back: int, ahead: int) -> list[date]:
    first = partitions.month_of(c.clock.now())
    return [partitions.add_months(first, n) for n in range(-back, ahead + 1)]


def where_is(conn: Connection, table: str, form_no: str) -> set[str]:
    if table.endswith("_item"):
        q = f"SELECT DISTINCT tableoid::regclass::text FROM {table} WHERE report_id IN (SELECT id FROM lab_report WHERE report_form_no = :f)"
    else:
        q = f"SELECT DISTINCT tableoid::regclass::text FROM {table} WHERE report_form_no = :f"
    return set(conn.execute(text(q), {"f": form_no}).scalars())


# -- migration 0011: rows converted, and back --------------------------------------------------


def _fill(conn: Connection, table: str, n: int, over: dict[str, str]) -> None:
    """``n`` rows in ``table``, each NOT NULL column without a default given a plain value."""
    cols = conn.execute(text(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = :t "
        "AND is_nullable = 'NO' AND column_default IS NULL ORDER BY ordinal_position"
    ), {"t": table}).all()
    plain = {"date": "DATE '2025-01-01'", "integer": "1", "bigint": "1", "boolean": "false"}
    values = [over.get(c, "TIMESTAMP '2025-01-01'" if "timestamp" in t else plain.get(t, "'x'")) for c, t in cols]
    names = ", ".join(c for c, _ in cols)
    conn.execute(text(f"INSERT INTO {table} ({names}) SELECT {', '.join(values)} FROM generate_series(1, {n}) g"))


def _schema(conn: Connection) -> set[tuple[str, ...]]:
    """The tables, columns, indexes and constraints of the current schema, as text."""
    out: set[tuple[str, ...]] = set()
    for t, k in conn.execute(text("SELECT relname, relkind FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p')")):
        out.add(("table", t, k))
    for row in conn.execute(text(
        "SELECT table_name, column_name, data_type, is_nullable, coalesce(column_default, '') FROM information_schema.columns "
        "WHERE table_schema = 'public'"
    )):
        out.add(("column", *map(str, row)))
    for row in conn.execute(text("SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'")):
        out.add(("index", *row))
    for row in conn.execute(text(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE connamespace = 'public'::regnamespace"
    )):
        out.add(("constraint", *row))
    return out


@pytest.fixture
def empty_pg(pg_databases: PgDatabases) -> Iterator[str]:
    name = f"huren_p_{uuid.uuid4().hex[:10]}"
    with pg_databases.admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield pg_databases.url(name)
    with pg_databases.admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_migration_partitions_existing_rows_and_downgrades_back(empty_pg: str) -> None:
    cfg = migrate.alembic_config(empty_pg)
    below = ScriptDirectory.from_config(cfg).get_revision("0011").down_revision
    assert isinstance(below, str)
    engine = create_engine(empty_pg, poolclass=NullPool)
    try:
        migrate.upgrade(engine, below)
        with engine.connect() as conn:
            before = _schema(conn)
        with engine.begin() as conn:  # 100 lab reports over ten months, 2 items each; access log rows over four
            _fill(conn, "lab_report", 100, {
                "report_form_no": "'F' || g", "received_at": "TIMESTAMP '2025-01-01' + g * INTERVAL '3 day'",
                "authenticator_dtime": "TIMESTAMP '2025-01-01' + g * INTERVAL '3 day' - INTERVAL '1 hour'",
            })
            _fill(conn, "lab_item", 100, {"report_id": "g", "serial_no": "1"})
            _fill(conn, "lab_item", 100, {"report_id": "g", "serial_no": "2"})
            _fill(conn, "exam_report", 3, {  # one authenticated 40 days after its receipt
                "report_form_no": "'E' || g", "received_at": "TIMESTAMP '2025-03-01'",
                "authenticator_dtime": "TIMESTAMP '2025-03-01' + g * INTERVAL '20 day'",
            })
            _fill(conn, "access_log", 50, {"at": "TIMESTAMP '2025-06-01' + g * INTERVAL '2 day'"})
        migrate.upgrade(engine)
        with engine.connect() as conn:
            assert partitions.is_partitioned(conn)
            assert conn.execute(text("SELECT count(*), count(DISTINCT tableoid) FROM lab_report")).one() == (100, 10)
            assert conn.execute(text("SELECT count(*), count(DISTINCT tableoid) FROM lab_item")).one() == (200, 10)
            # each item lives in its report's month, and the report's key is held
            assert conn.execute(text(
                "SELECT count(*) FROM lab_item i JOIN lab_report r ON r.id = i.report_id "
                "WHERE i.received_at = r.received_at AND i.tableoid::regclass::text = replace(r.tableoid::regclass::text, 'report', 'item')"
            )).scalar_one() == 200
            assert conn.execute(text("SELECT count(*) FROM lab_report_key")).scalar_one() == 100
            assert conn.execute(text("SELECT count(DISTINCT tableoid) FROM access_log")).scalar_one() == 4
            leads: dict[str, timedelta] = dict(conn.execute(text("SELECT kind, lead FROM report_lead")).all())
            assert leads == {"lab": timedelta(days=1), "exam": timedelta(days=60)}
            # the id sequences carry on from the copied rows
            assert conn.execute(text("SELECT nextval(pg_get_serial_sequence('lab_report', 'id'))")).scalar_one() == 101
            names = {p.name for p in partitions.partitions(conn)}
            now = partitions.month_of(datetime.now())
            for t in partitions.PARTITIONED:
                assert {partitions.default_name(t), partitions.partition_name(t, now)} <= names
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, below)
        with engine.connect() as conn:
            assert _schema(conn) == before  # the tables exactly as the revision below made them
            assert conn.execute(text("SELECT count(*) FROM lab_item")).scalar_one() == 200
            assert conn.execute(text("SELECT count(*) FROM access_log")).scalar_one() == 50
        migrate.upgrade(engine)  # and up again
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM lab_report_key")).scalar_one() == 100
    finally:
        engine.dispose()


# -- the business key across partitions ---------------------------------------------------------


@PG_ONLY
def test_business_key_unique_across_months_under_concurrent_connections(container: Container, database_url: str) -> None:
    """Two connections insert one key with receipts in different months (different partitions):
    the second waits for the first and is refused when it commits."""
    container.registry.register("lab", lab(container, "K-1", 1), HOSPITAL)
    engine = make_engine(database_url)  # DBAPI errors translated, as the store's
    try:
        with engine.connect() as first, engine.connect() as second:
            # the same new key, received two months apart, from two connections
            tmpl = (
                "INSERT INTO lab_report (org_code, report_form_no, patient_id, event_type, event_no, id_type_code, "
                "retrieve_date, version, voided, received_at, updated_at, authenticator_dtime, {cols}) "
                "SELECT org_code, 'K-2', patient_id, event_type, event_no, id_type_code, retrieve_date, 1, false, "
                ":at, :at, authenticator_dtime, {cols} FROM lab_report WHERE report_form_no = 'K-1'"
            )
            required = [
                c for c in first.execute(text(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = 'lab_report' AND is_nullable = 'NO' "
                    "AND column_default IS NULL"
                )).scalars()
                if c not in {"org_code", "report_form_no", "patient_id", "event_type", "event_no", "id_type_code",
                             "retrieve_date", "version", "voided", "received_at", "updated_at", "authenticator_dtime"}
            ]
            stmt = text(tmpl.format(cols=", ".join(required) or "platform"))
            now = container.clock.now()
            first.rollback()
            first.begin()
            first.execute(stmt, {"at": now})
            failed: list[BaseException] = []

            def other() -> None:
                try:
                    with second.begin():
                        second.execute(stmt, {"at": now - timedelta(days=62)})
                except BaseException as exc:
                    failed.append(exc)

            t = threading.Thread(target=other)
            t.start()
            t.join(0.5)
            assert t.is_alive()  # waiting on the first writer's key
            first.commit()
            t.join(10)
            assert len(failed) == 1 and isinstance(failed[0], Conflict), failed
            assert first.execute(text("SELECT count(*) FROM lab_report WHERE report_form_no = 'K-2'")).scalar_one() == 1
    finally:
        engine.dispose()


@PG_ONLY
def test_store_registers_one_report_per_key_from_concurrent_workers(container: Container) -> None:
    """Eight threads (eight pooled connections) register the same new report at once: one
    report, its items once, and every caller told created or the same (not an error)."""
    container.registry.register("lab", lab(container, "W-0", 1), HOSPITAL)  # warm the caches
    payload = lab(container, "W-1", 1)
    barrier = threading.Barrier(8)
    outcomes: list[tuple[bool, bool]] = []
    errors: list[BaseException] = []

    def register() -> None:
        barrier.wait()
        try:
            r = container.registry.register("lab", payload, HOSPITAL)
            outcomes.append((r.created, r.unchanged))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=register) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert sorted(outcomes) == [(False, True)] * 7 + [(True, False)], outcomes
    with container.db.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM lab_report WHERE report_form_no = 'W-1'")).scalar_one() == 1
        assert conn.execute(text("SELECT count(*) FROM lab_report_key WHERE report_form_no = 'W-1'")).scalar_one() == 1
        items = conn.execute(text(
            "SELECT count(*) FROM lab_item WHERE report_id = (SELECT id FROM lab_report WHERE report_form_no = 'W-1')"
        )).scalar_one()
    assert items == len(payload["lab_subitem"])


# -- the recognition query on the recent partitions -----------------------------------------------


def _scanned(plan: dict[str, Any], prefix: str) -> dict[str, int]:
    """Partition name → how many times it was scanned (0: pruned while running)."""
    out: dict[str, int] = {}

    def walk(node: dict[str, Any]) -> None:
        name = node.get("Relation Name", "")
        if name.startswith(prefix):
            out[name] = out.get(name, 0) + int(node.get("Actual Loops", 0))
        for child in node.get("Plans", []):
            walk(child)

    walk(plan["Plan"])
    return out


@PG_ONLY
def test_prior_items_reads_only_the_recent_partitions(container: Container) -> None:
    with container.db.write() as conn:
        partitions.ensure(conn, months_around(container, 8, 1))
    register_at(container, lab(container, "OLD-1", 200), 200)
    container.registry.register("lab", lab(container, "NEW-1", 2), HOSPITAL)
    since = container.clock.now() - timedelta(days=30)
    floor = partitions.month_of(since - partitions.MIN_LEAD)
    query = rstore._prior_query(container.db.engine.dialect, "lab", None, False, False)
    with container.db.read() as conn:
        params = {"id_type_code": "01", "id_no_bidx": sealing.blind_id(sealing.cipher(conn), samples.ID_NO), "since": since}
        raw: Any = conn.connection.driver_connection
        with raw.cursor() as cur:
            cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + query.sql, query.args(params))
            [[plan]] = cur.fetchall()
        rows = rstore.prior_items(conn, "lab", "01", samples.ID_NO, since)
    assert {r["report_form_no"] for r in rows} == {"NEW-1"}
    plan = plan[0] if isinstance(plan, list) else plan
    for table in ("lab_report", "lab_item"):
        scans = _scanned(plan, f"{table}_p")
        old = {n: k for n, k in scans.items() if partitions._month_of_name(table, n) < floor}  # type: ignore[operator]
        recent = {n: k for n, k in scans.items() if partitions._month_of_name(table, n) >= floor}  # type: ignore[operator]
        assert len(old) >= 6 and all(k == 0 for k in old.values()), (table, scans)
        assert recent[partitions.partition_name(table, partitions.month_of(container.clock.now()))] >= 1, (table, scans)


def test_answers_the_same_on_both_dialects_with_a_late_authentication(container: Container) -> None:
    """A report received long ago and resubmitted with a recent authentication time keeps its
    receipt (its partition) and is still found; old ones stay out. Same on SQLite and PostgreSQL."""
    if not container.db.is_sqlite:
        with container.db.write() as conn:
            partitions.ensure(conn, months_around(container, 6, 1))
    register_at(container, lab(container, "L-OLD", 201), 200)
    register_at(container, lab(container, "L-LATE", 121), 120)
    container.registry.register("lab", lab(container, "L-LATE", 2, updated="09:00:00"), HOSPITAL)  # re-authenticated
    container.registry.register("lab", lab(container, "L-NEW", 1), HOSPITAL)
    since = container.clock.now() - timedelta(days=30)
    with container.db.read() as conn:
        found = {r["report_form_no"] for r in rstore.prior_items(conn, "lab", "01", samples.ID_NO, since)}
        listed = [r["report_form_no"] for r in report_queries.for_patient(conn, "lab", "01", samples.ID_NO, since, container.clock.now())]
        abnormal = {m["report_form_no"] for m, _ in report_queries.abnormal_lab_items(conn, "01", samples.ID_NO, since, container.clock.now(), ["H", "L", "1", "2"])}
        late = conn.execute(text("SELECT received_at FROM lab_report WHERE report_form_no = 'L-LATE'")).scalar_one()
        items_at = set(conn.execute(text(
            "SELECT received_at FROM lab_item WHERE report_id = (SELECT id FROM lab_report WHERE report_form_no = 'L-LATE')"
        )).scalars())
        lead = None if container.db.is_sqlite else conn.execute(text("SELECT lead FROM report_lead WHERE kind = 'lab'")).scalar_one()
    assert found == {"L-LATE", "L-NEW"}
    assert listed == ["L-NEW", "L-LATE"]
    assert abnormal <= {"L-LATE", "L-NEW"}
    late_at = late if isinstance(late, datetime) else datetime.fromisoformat(late)
    assert late_at < container.clock.now() - timedelta(days=119)  # the first receipt, kept
    assert {v if isinstance(v, datetime) else datetime.fromisoformat(v) for v in items_at} == {late_at}
    if lead is not None:  # the authentication lies ~118 days after the receipt: the lead followed
        assert lead >= timedelta(days=117)


# -- ensure and detach --------------------------------------------------------------------------


@PG_ONLY
def test_ensure_moves_rows_out_of_the_default_partition(container: Container) -> None:
    register_at(container, lab(container, "FUT-1", -400), -401)  # a clock a year ahead: no partition yet
    month = partitions.month_of(container.clock.now() + timedelta(days=401))
    with container.db.read() as conn:
        assert where_is(conn, "lab_report", "FUT-1") == {"lab_report_default"}
        assert where_is(conn, "lab_item", "FUT-1") == {"lab_item_default"}
    with container.db.write() as conn:
        made = partitions.ensure(conn, [month])
    assert partitions.partition_name("lab_report", month) in made and partitions.partition_name("access_log", month) in made
    with container.db.read() as conn:
        assert where_is(conn, "lab_report", "FUT-1") == {partitions.partition_name("lab_report", month)}
        assert where_is(conn, "lab_item", "FUT-1") == {partitions.partition_name("lab_item", month)}
        assert conn.execute(text("SELECT count(*) FROM lab_report_key WHERE report_form_no = 'FUT-1'")).scalar_one() == 1
    again = lab(container, "FUT-1", -400, updated="09:00:00")
    replaced = container.registry.register("lab", again, HOSPITAL)  # still the one report
    assert (replaced.created, replaced.unchanged, replaced.version) == (False, False, 2)


@PG_ONLY
def test_cli_lists_ensures_and_detaches_outside_the_recognition_window(
    container: Container, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HUREN_SECRET_KEY", SECRET)
    args = ["--database-url", database_url, "--data-dir", str(container.settings.data_dir)]
    assert main(["db", "partitions", "ensure", "--months-ahead", "3", *args]) == 0
    assert "已建分区" in capsys.readouterr().out
    with container.db.write() as conn:
        partitions.ensure(conn, months_around(container, 14, 0))
    register_at(container, lab(container, "ARC-1", 400), 400)
    old = partitions.month_of(container.clock.now() - timedelta(days=400))
    assert main(["db", "partitions", "list", *args]) == 0
    assert partitions.partition_name("lab_report", old) in capsys.readouterr().out
    # the recognition window (90 days at least) still reads last month: refused, in Chinese
    recent = partitions.add_months(partitions.month_of(container.clock.now()), -1)
    assert main(["db", "partitions", "detach", "--before", f"{recent:%Y-%m}", *args]) == 2
    assert "不能分离" in capsys.readouterr().err
    assert main(["db", "partitions", "detach", "--before", "2025-13", *args]) == 2
    assert "YYYY-MM" in capsys.readouterr().err
    before = partitions.add_months(old, 1)
    assert main(["db", "partitions", "detach", "--before", f"{before:%Y-%m}", *args]) == 0
    out = capsys.readouterr().out
    assert partitions.partition_name("lab_item", old) in out and partitions.partition_name("lab_report", old) in out
    with container.db.read() as conn:
        assert where_is(conn, "lab_report", "ARC-1") == set()
        archived = conn.execute(text(f"SELECT count(*) FROM {partitions.partition_name('lab_report', old)} WHERE report_form_no = 'ARC-1'")).scalar_one()
        assert archived == 1  # kept for archiving, outside the table
        assert conn.execute(text("SELECT count(*) FROM lab_report_key WHERE report_form_no = 'ARC-1'")).scalar_one() == 0
    assert container.registry.register("lab", lab(container, "ARC-1", 400), HOSPITAL).created


def test_cli_on_sqlite_says_it_is_not_partitioned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HUREN_SECRET_KEY", SECRET)
    assert main(["db", "upgrade", "--data-dir", str(tmp_path)]) == 0
    assert main(["db", "partitions", "list", "--data-dir", str(tmp_path)]) == 2
    assert "SQLite 不分区" in capsys.readouterr().err


@PG_ONLY
def test_a_corrected_receipt_moves_the_report_with_its_items(container: Container) -> None:
    """The store never changes received_at; an operator's correction moves the report, its items
    and its key's month together (ON UPDATE CASCADE, the trigger)."""
    with container.db.write() as conn:
        partitions.ensure(conn, months_around(container, 3, 1))
    container.registry.register("lab", lab(container, "MV-1", 1), HOSPITAL)
    with container.db.write() as conn:
        conn.execute(text("UPDATE lab_report SET received_at = received_at - INTERVAL '62 day' WHERE report_form_no = 'MV-1'"))
    with container.db.read() as conn:
        at = conn.execute(text("SELECT received_at FROM lab_report WHERE report_form_no = 'MV-1'")).scalar_one()
        month = partitions.month_of(at)
        assert where_is(conn, "lab_report", "MV-1") == {partitions.partition_name("lab_report", month)}
        assert where_is(conn, "lab_item", "MV-1") == {partitions.partition_name("lab_item", month)}
        assert conn.execute(text("SELECT received_at FROM lab_report_key WHERE report_form_no = 'MV-1'")).scalar_one() == at
    assert month < partitions.month_of(container.clock.now())
