"""Many rows into one table through the driver's ``executemany``, past SQLAlchemy's per-row
parameter building (``construct_params``: about half the time of a 5,000-report batch's 75,000
item rows on SQLite; issue 13, the federation sync).

Each row's values go through the column types' own bind processors (SQLite's ``DateTime`` text,
``Boolean`` 0/1, …), so what is stored is what ``conn.execute(insert(table), rows)`` stores. Only
for tables without Python-side column defaults (those are filled by SQLAlchemy per row); other
tables, and other drivers' parameter styles, take the ordinary path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, insert

_PLACEHOLDER = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """``INSERT`` every row (dicts keyed by column name; a missing key is NULL)."""
    if not rows:
        return
    dialect = conn.dialect
    mark = _PLACEHOLDER.get(dialect.paramstyle)
    cols = [c for c in table.columns if not (c.primary_key and c.autoincrement is True and c.name not in rows[0])]
    if mark is None or any(c.default is not None or c.onupdate is not None for c in cols):
        conn.execute(insert(table), list(rows))
        return
    names = [c.name for c in cols]
    procs = [c.type._cached_bind_processor(dialect) for c in cols]
    quote = dialect.identifier_preparer.quote
    sql = f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) VALUES ({', '.join([mark] * len(names))})"
    typed = [(i, p) for i, p in enumerate(procs) if p is not None]
    params: list[tuple[Any, ...]] = []
    for r in rows:
        values = [r.get(n) for n in names]
        for i, p in typed:
            values[i] = p(values[i])
        params.append(tuple(values))
    conn.exec_driver_sql(sql, params)
