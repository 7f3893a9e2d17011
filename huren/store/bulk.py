"""Many rows into one table past SQLAlchemy's per-row parameter building (``construct_params``:
about half the time of a 5,000-report batch's 75,000 item rows on SQLite; issue 13, the
federation sync).

SQLite: the driver's ``executemany``. PostgreSQL: ``COPY … FROM STDIN`` in the caller's
transaction (one statement for all rows: measured on a merged batch of 8–16 single-report
registrations, bench/ingest.py, against psycopg's pipelined ``executemany`` of one ``INSERT`` per
row — 0.6 → 0.4 ms of Python and 0.37 → 0.24 ms of PostgreSQL CPU per report, 1.8 → 0.7 ms of
wall time). COPY fires the tables' row triggers and checks their constraints as ``INSERT`` does.

Each row's values go through the column types' own bind processors (SQLite's ``DateTime`` text,
``Boolean`` 0/1, …), so what is stored is what ``conn.execute(insert(table), rows)`` stores. A
column with a Python-side default must be given in every row (SQLAlchemy would fill it per row);
otherwise, and for other drivers' parameter styles, the ordinary path is taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, insert

from huren.errors import Problem, StoreUnavailable
from huren.store.database import translate_error

_PLACEHOLDER = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """``INSERT`` every row (dicts keyed by column name; a missing key is NULL)."""
    if not rows:
        return
    dialect = conn.dialect
    mark = _PLACEHOLDER.get(dialect.paramstyle)
    cols = [c for c in table.columns if not (c.primary_key and c.autoincrement is True and c.name not in rows[0])]
    defaulted = {c.name for c in cols if c.default is not None or c.onupdate is not None}
    if mark is None or any(c.onupdate is not None for c in cols) or (defaulted and not all(defaulted <= r.keys() for r in rows)):
        conn.execute(insert(table), list(rows))
        return
    names = [c.name for c in cols]
    procs = [c.type._cached_bind_processor(dialect) for c in cols]
    quote = dialect.identifier_preparer.quote
    columns = ", ".join(quote(n) for n in names)
    typed = [(i, p) for i, p in enumerate(procs) if p is not None]
    params: list[tuple[Any, ...]] = []
    for r in rows:
        values = [r.get(n) for n in names]
        for i, p in typed:
            values[i] = p(values[i])
        params.append(tuple(values))
    if dialect.name == "postgresql":
        _copy(conn, f"COPY {quote(table.name)} ({columns}) FROM STDIN", params, names)
        return
    conn.exec_driver_sql(f"INSERT INTO {quote(table.name)} ({columns}) VALUES ({', '.join([mark] * len(names))})", params)


def _copy(conn: Connection, sql: str, params: list[tuple[Any, ...]], names: Sequence[str]) -> None:
    """The rows through psycopg's COPY on the connection's open transaction; a refusal is
    translated as SQLAlchemy's hook does for its own statements (huren.store.database)."""
    raw: Any = conn.connection.driver_connection
    try:
        with raw.cursor() as cur, cur.copy(sql) as copy:
            for values in params:
                copy.write_row(values)
    except Exception as exc:  # past SQLAlchemy's hook: translated here, the same way
        if any(c.__name__ == "OperationalError" for c in type(exc).__mro__):  # the pool drops it on return
            raise StoreUnavailable(
                "数据库暂时不可用，请稍后重试（未保存任何内容）", [Problem("database", "unavailable", "平台数据库连接中断或正在重启")]
            ) from exc
        err = translate_error(exc, params, names)
        if err is None:
            raise
        raise err from exc
