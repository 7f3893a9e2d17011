"""Hot statements run straight on the DBAPI cursor.

SQLAlchemy Core builds and compiles the statement once per dialect and shape; each call then
only converts its parameters with the column types' own bind processors, executes on the
driver's cursor and converts the result columns with the types' result processors (SQLite keeps
datetimes as text and booleans as integers; psycopg needs neither). What is skipped is Core's
per-call work — cache-key generation, parameter post-processing, the result object — which the
recognition benchmark measured at about half of an exists-for-order call (docs/performance.md).

Used only where the benchmark shows it matters; everything else goes through Core.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Insert, Select, Table, bindparam, insert
from sqlalchemy.engine import Dialect

from huren.store.database import translate_error

Processor = Callable[[Any], Any]


class _Compiled:
    """One statement compiled for one dialect: its SQL text, parameter order and converters."""

    __slots__ = ("binds", "defaults", "order", "sql")

    def __init__(self, stmt: Select[Any] | Insert, dialect: Dialect) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql = compiled.string
        # positional paramstyles (SQLite's "?") take a tuple in this order; named ones a dict
        self.order: tuple[str, ...] | None = tuple(compiled.positiontup or ()) if compiled.positional else None
        # values the statement carries itself (column defaults of an INSERT, literal binds)
        self.defaults: dict[str, Any] = {name: bind.value for name, bind in compiled.binds.items()}
        self.binds: dict[str, Processor] = {}
        for name, bind in compiled.binds.items():
            proc = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if proc is not None:
                self.binds[name] = proc

    def args(self, values: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        params = self.defaults | dict(values)
        for name, proc in self.binds.items():
            v = params.get(name)
            if v is not None:
                params[name] = proc(v)
        if self.order is None:
            return params
        return tuple(params[name] for name in self.order)


class DirectSelect(_Compiled):
    """A SELECT whose rows come back as plain dicts keyed by the selected columns' keys."""

    __slots__ = ("keys", "procs")

    def __init__(self, stmt: Select[Any], dialect: Dialect) -> None:
        super().__init__(stmt, dialect)
        cols = list(stmt.selected_columns)
        self.keys = tuple(str(c.key) for c in cols)
        self.procs: tuple[tuple[int, Processor], ...] = tuple(
            (i, proc) for i, c in enumerate(cols) if (proc := c.type.dialect_impl(dialect).result_processor(dialect, None)) is not None
        )

    def all(self, conn: Connection, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        args = self.args(values)
        try:
            cur.execute(self.sql, args)
            rows = cur.fetchall()
        except Exception as exc:  # past SQLAlchemy's hook: translated here, the same way
            err = translate_error(exc, args, self.order or ())
            if err is None:
                raise
            raise err from exc
        finally:
            cur.close()
        keys, procs = self.keys, self.procs
        if not procs:
            return [dict(zip(keys, row, strict=True)) for row in rows]
        out = []
        for row in rows:
            vals = list(row)
            for i, proc in procs:
                if vals[i] is not None:
                    vals[i] = proc(vals[i])
            out.append(dict(zip(keys, vals, strict=True)))
        return out


class DirectInsert(_Compiled):
    """An INSERT into every column of a table but its autoincrement key; a row that leaves a
    column out gets the column's scalar default (or NULL). Many rows go in one ``executemany``,
    in the caller's transaction: the commit is the caller's."""

    def __init__(self, table: Table, dialect: Dialect) -> None:
        cols = [c for c in table.columns if not (c.primary_key and c.autoincrement is True)]
        super().__init__(insert(table).values({c.key: bindparam(c.key, type_=c.type) for c in cols}), dialect)
        for c in cols:
            if c.default is None:
                self.defaults[c.key] = None
            elif c.default.is_scalar:
                self.defaults[c.key] = c.default.arg  # type: ignore[attr-defined]
            else:
                raise ValueError(f"{table.name}.{c.key}: only scalar column defaults can be applied here")

    def run(self, conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        params: Sequence[Any] = [self.args(r) for r in rows]
        if not params:
            return
        cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            if len(params) == 1:
                cur.execute(self.sql, params[0])
            else:
                cur.executemany(self.sql, params)
        except Exception as exc:  # past SQLAlchemy's hook: translated here, the same way
            err = translate_error(exc, list(params), self.order or ())
            if err is None:
                raise
            raise err from exc
        finally:
            cur.close()
