"""The migrations build the schema the code declares (``huren.store.tables.metadata``): no table,
column, index or constraint that one has and the other lacks (Alembic's own comparison). SQLite
ignores declared string lengths (the sealed columns were widened on PostgreSQL only, migrations
0006 / 0007), so only those are allowed to differ there; PostgreSQL's partitioned tables
(migration 0011) differ by design in their keys and are compared in test_pg_partitions."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import String, create_engine

from huren.store import migrate
from huren.store.tables import metadata


def test_sqlite_schema_after_every_migration_is_the_declared_one(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    migrate.upgrade(engine)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    engine.dispose()
    flat = [d[0] if isinstance(d, list) else d for d in diffs]
    lengths_only = [d for d in flat if d[0] == "modify_type" and isinstance(d[6], String) and d[6].length == 768]
    assert [d for d in flat if d not in lengths_only] == []
