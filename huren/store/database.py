"""Engine creation (SQLite in WAL mode, or PostgreSQL through psycopg 3) and a write lock."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine.interfaces import ExceptionContext
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import QueuePool

from huren.domain.limits import MAX_INT
from huren.errors import Conflict, HurenError, InvalidInput, Problem, StoreUnavailable

if TYPE_CHECKING:
    from huren.crypto.aead import FieldCipher

log = logging.getLogger("huren.store")


def _param_over(parameters: Any, positions: Sequence[str] = ()) -> str | None:
    """The name of the first bound integer a 64-bit column cannot hold (``id`` for ``id_1``)."""
    rows = parameters if isinstance(parameters, list) else [parameters]  # executemany: a list of rows
    for row in rows:
        items: Any = row.items() if isinstance(row, dict) else enumerate(row) if isinstance(row, tuple) else ()
        for name, value in items:
            if isinstance(value, int) and not isinstance(value, bool) and not -MAX_INT - 1 <= value <= MAX_INT:
                if isinstance(name, int):
                    name = positions[name] if name < len(positions) else "value"
                return str(name).rstrip("0123456789").rstrip("_") or "value"
    return None


def _is(err: BaseException, name: str) -> bool:
    """PEP 249 error classes by name, whichever driver raised them (sqlite3, psycopg) or wrapped
    them (SQLAlchemy's own DataError, IntegrityError)."""
    return any(c.__name__ == name for c in type(err).__mro__)


def translate_error(err: BaseException, parameters: Any = None, positions: Sequence[str] = ()) -> HurenError | None:
    """A database refusal as the error a caller can act on (never a 500), or None to let it be.

    Input the field rules should have refused, reaching the store anyway: a number out of range,
    text too long or not encodable (DataError, OverflowError on binding, UnicodeEncodeError), and a
    unique or foreign key violated (IntegrityError). Used by the engine's ``handle_error`` hook
    and by the statements run straight on the driver's cursor (huren.store.direct).
    """
    if _is(err, "DataError") and ("NUL" in str(err) or "0x00" in str(err)):  # PostgreSQL's text refuses it
        message = "文本含有不允许的字符 U+0000（NUL）"
        return InvalidInput(message, [Problem("value", "text", message)])
    if isinstance(err, OverflowError) or _is(err, "DataError"):
        name = _param_over(parameters, positions)
        message = f"数值（{name}）超出允许范围（不能超过 {MAX_INT}）" if name else "数据超出数据库字段允许的长度或范围"
        return InvalidInput(message, [Problem(name or "value", "range", message)])
    if isinstance(err, UnicodeError):
        message = "文本含有无法存储的字符"
        return InvalidInput(message, [Problem("value", "text", message)])
    if _is(err, "IntegrityError"):
        message = "与已保存的数据冲突（重复的编码或引用了不存在的数据）"
        return Conflict(message, [Problem("value", "conflict", message)])
    return None


def translate(ctx: ExceptionContext) -> HurenError | None:
    """:func:`translate_error` for SQLAlchemy's ``handle_error`` hook. A lost or refused connection
    (the database restarting, a failover) is ``StoreUnavailable`` (503: try again), after SQLAlchemy
    has dropped the pool's connections, which the next checkout opens anew."""
    lost = _is(ctx.original_exception, "OperationalError") and ctx.dialect is not None and ctx.dialect.name == "postgresql"
    if ctx.is_disconnect or lost:
        log.warning("database unavailable: %s", ctx.original_exception)
        return StoreUnavailable(
            "数据库暂时不可用，请稍后重试（未保存任何内容）", [Problem("database", "unavailable", "平台数据库连接中断或正在重启")]
        )
    compiled = getattr(ctx.execution_context, "compiled", None)
    positions = tuple(getattr(compiled, "positiontup", None) or ())
    return translate_error(ctx.original_exception, ctx.parameters, positions)


def _translating(engine: Engine) -> Engine:
    """DBAPI errors become huren errors once, here, at the store's edge (see :func:`translate`)."""

    @event.listens_for(engine, "handle_error")
    def _translate(ctx: ExceptionContext) -> None:
        err = translate(ctx)
        if err is not None:
            raise err from ctx.original_exception

    return engine


def make_engine(url: str) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            poolclass=QueuePool,
            pool_size=8,
            max_overflow=8,
            connect_args={"check_same_thread": False, "timeout": 30},
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # FULL: in WAL mode every commit is fsynced, so an answered "ok" survives power loss
            # (NORMAL syncs only at checkpoints; issue 10 §1.15, cost measured with bench/ingest.py)
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # checkpoints run in the background (Database.start_checkpointer) rather than inside
            # whichever request's commit crosses the default 1,000 pages; this is the safety net
            cur.execute("PRAGMA wal_autocheckpoint=20000")
            cur.close()

        return _translating(engine)
    engine = create_engine(
        url,
        pool_size=PG_POOL_SIZE,
        max_overflow=PG_MAX_OVERFLOW,
        pool_timeout=30,
        pool_use_lifo=True,  # the most recently used connections first: the others stay idle, then pinged
    )
    _ping_when_idle(engine, PG_PING_IDLE_SECONDS)

    @event.listens_for(engine, "connect")
    def _session(dbapi_conn: Any, _record: Any) -> None:
        # Generic plans for the statements psycopg prepares (a statement's 5th execution on a
        # connection): the report, item and log tables are partitioned by month, and a custom
        # plan re-plans over every partition on each execution (bench/recognition.py: 1.5-1.9 ms
        # of planning per prior-items query, 0.1 ms executing it); a generic plan prunes the
        # partitions when it starts. Measured over HTTP, exists-for-order with 2 workers:
        # PostgreSQL CPU 3.5-4.4 -> 1.7-2.2 ms a request. (Behind PgBouncer in transaction
        # mode, set it on the database instead: ALTER DATABASE ... SET plan_cache_mode.)
        with dbapi_conn.cursor() as cur:
            cur.execute("SET plan_cache_mode = force_generic_plan")
        dbapi_conn.commit()
        # and prepared at their first execution, not their fifth: a generic plan over the months'
        # partitions costs ~4 ms to make, and with 16 pooled connections per worker each query
        # shape was planned 4 times per connection before psycopg prepared it (bench/recognition.py
        # at 5 M reports, exists-for-order with 2 workers: PostgreSQL CPU 4.7 / 4.1 -> 3.0 / 2.4 ms
        # a request, 281 / 305 -> 379 / 450 req/s)
        dbapi_conn.prepare_threshold = 0

    return _translating(engine)


#: connections per process (each ``huren serve`` worker has its own pool): with N workers the
#: server needs N x (PG_POOL_SIZE + PG_MAX_OVERFLOW) connections under ``max_connections``
#: (default 100: 4 workers use at most 64; docs/deployment.md)
PG_POOL_SIZE = 8
PG_MAX_OVERFLOW = 8
#: a pooled connection idle for longer than this is checked (``SELECT 1``) before use; one used
#: more recently is not (a ping on every checkout was a round trip per request: bench/ingest.py)
PG_PING_IDLE_SECONDS = 10.0


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Pre-ping only the connections that sat idle in the pool for ``idle_seconds``: a server
    restarted (or a connection cut by a firewall) while they waited is found before a request
    uses them, and a dead one is replaced (SQLAlchemy retries the checkout). A connection that
    dies between two quick uses fails its one statement, and SQLAlchemy then drops the whole
    pool (every connection of a restarted server is dead at once)."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["huren_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("huren_idle_since")
        if since is None or time.monotonic() - since < idle_seconds:
            return
        try:
            with dbapi_conn.cursor() as cur:
                cur.execute("SELECT 1")
            if not dbapi_conn.autocommit:
                dbapi_conn.rollback()  # the ping's own transaction: the request begins its own
        except Exception as exc:
            raise DisconnectionError("连接已失效，改用新的连接") from exc


class Database:
    """The engine plus a process-wide write lock for SQLite (one writer at a time)."""

    def __init__(self, engine: Engine, *, fields: FieldCipher | None = None) -> None:
        """``fields``: the keyring's field cipher, which seals and opens the patient identity the
        store's rows hold (huren.store.sealing); without it those rows cannot be written or read."""
        self.engine = engine
        if fields is not None:
            self.seal_with(fields)
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._lock: threading.Lock | None = threading.Lock() if self.is_sqlite else None
        self._checkpointer: threading.Thread | None = None
        self._stop = threading.Event()

    def seal_with(self, fields: FieldCipher) -> None:
        """Seal and open the patient identity of the rows written and read here with ``fields``."""
        from huren.store import sealing

        sealing.bind(self.engine, fields)

    @contextlib.contextmanager
    def write(self, *, durable: bool = True) -> Iterator[Connection]:
        """A transaction for writing; serialised on SQLite.

        ``durable=False`` is for rows that record what was read (access and reminder logs): their
        commit does not wait for the disk by itself. SQLite: ``synchronous=NORMAL`` for that one
        transaction; PostgreSQL: ``SET LOCAL synchronous_commit TO OFF`` (the commit returns
        before its WAL flush; the WAL writer flushes it within 3 x ``wal_writer_delay``, 600 ms by
        default). Either way they reach the disk with the next durable commit (the log is written
        in order, so a durable commit flushes every record before it) or checkpoint / WAL-writer
        round; a crash can lose the last moments of such rows, never a row committed before a
        durable commit, and never a durable one. A registration answered ``ok`` is always
        durable (``synchronous_commit = on``, the server's setting, stays in force for it)."""
        lock = self._lock or contextlib.nullcontext()
        with lock, self.engine.connect() as conn:
            # on the driver's connection: through SQLAlchemy the pragma would begin a transaction
            raw: Any = conn.connection.driver_connection if self.is_sqlite and not durable else None
            if raw is not None:
                raw.execute("PRAGMA synchronous=NORMAL")
            try:
                with conn.begin():
                    if not durable and not self.is_sqlite:
                        # measured (bench/recognition.py, PostgreSQL): each exists-for-order call
                        # waited for a WAL flush of its two log rows; the flushes, not the CPU,
                        # capped it at ~340 req/s with 2 workers
                        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                    yield conn
            finally:
                if raw is not None:
                    raw.execute("PRAGMA synchronous=FULL")

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def start_checkpointer(self, interval: float = 2.0) -> None:
        """SQLite: checkpoint the WAL from a background thread every ``interval`` seconds, so no
        request pays for it (measured: the cause of the recognition p99)."""
        if not self.is_sqlite or self._checkpointer is not None:
            return
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    with self.engine.connect() as conn:
                        conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
                except Exception:  # a failed checkpoint is retried on the next tick
                    log.warning("WAL checkpoint failed", exc_info=True)

        self._checkpointer = threading.Thread(target=run, name="huren-wal-checkpoint", daemon=True)
        self._checkpointer.start()

    def stop_checkpointer(self) -> None:
        if self._checkpointer is not None:
            self._stop.set()
            self._checkpointer.join(timeout=10)
            self._checkpointer = None

    def dispose(self) -> None:
        self.stop_checkpointer()
        self.engine.dispose()
