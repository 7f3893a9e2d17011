"""Lab and exam report views in the hospital's own database (HZ-20/21, seed 002 §1.2.2).

The LIS / PACS / RIS exposes two views per report kind: one row per report (the ``labmaster`` /
``exammaster`` fields) and one row per item (``lab_subitem`` / ``exam_subitem``). The gateway reads
them through any SQLAlchemy URL — Oracle, SQL Server, MySQL, PostgreSQL in hospitals, SQLite in the
demo — and never writes: SQLite is opened ``mode=ro``, PostgreSQL sessions are read-only, and every
read is a short transaction that is rolled back. Give it a database account that can only SELECT
the views (seed 002 §2.3: "数据库用户做好权限控制").

New and changed reports are found by ``last_update_dtime``: each poll reads the reports after the
watermark in (last_update_dtime, org_code, report_form_no, patient_id, event_type, event_no) order,
``batch_size`` at a time, so reports sharing one timestamp are neither skipped nor repeated. A row
whose ``data_status`` (or another ``void_column``) is one of ``void_values`` becomes a void.

Keys of a ``type = "db"`` source::

    name = "lis"                      # the source's name (outbox, status, logs)
    type = "db"
    url = "oracle+oracledb://ro_user:…@lis-db:1521/?service_name=LIS"   # any SQLAlchemy URL
    kind = "lab"                      # lab | exam
    master_view = "v_lab_report"      # may be schema-qualified: "LIS.V_LAB_REPORT"
    item_view = "v_lab_item"
    columns = { report_form_no = "BGDH", patient_id = "BRID" }   # seed field → master view column
    item_columns = { report_form_no = "BGDH", serial_no = "XH" } # seed field → item view column
    defaults = { org_code = "457759922" }   # constants for fields the views lack
    pdf_column = "pdf"                # a BLOB (or Base64 text) column of the master view, or
    pdf_path_column = "pdf_path"      # a column holding the PDF's file path
    pdf_dir = "/mnt/lis/pdf"          # where relative PDF paths are (default: the config's folder)
    void_column = "data_status"       # master view column marking a withdrawn report
    void_values = ["0"]
    batch_size = 200                  # reports per read
    start = "2024-01-01"              # where to begin when no watermark is stored yet
    time_as = "auto"                  # how to bind the watermark: text | datetime (auto: text for SQLite)

Column names are matched without regard to case and sent to the database in lower case, so the
unquoted names of every database match; view names are sent as written (MySQL on Linux tells their
case apart). ``batch_size`` is at most 1000 (the item query lists the batch's report numbers, and
Oracle takes at most 1000 in one IN list). The watermark is JSON: ``["<last_update_dtime>", org_code, report_form_no, patient_id,
event_type, event_no]`` of the last report read; a bare time (``2024-03-01`` or
``2024-03-01 08:00:00``, e.g. from ``gateway backfill --since``) means "from that time on, inclusive".
A report is re-read whenever the LIS moves its last_update_dtime forward; a row committed later with
an older last_update_dtime than the watermark is not seen — the views must stamp the commit time.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy import (
    ColumnClause,
    ColumnElement,
    Select,
    String,
    and_,
    cast,
    column,
    create_engine,
    literal_column,
    or_,
    select,
    table,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from huren.domain.fields import EXAM_SUBITEM, EXAMMASTER, LAB_KEY, LAB_SUBITEM, LABMASTER, Field
from huren.gateway.model import Record, os_reason
from huren.gateway.sources.base import (
    NODES,
    VOID_VALUES,
    Conf,
    ConfigError,
    SourceError,
    report_key,
    to_text,
    void_filter,
)

if TYPE_CHECKING:
    from huren.gateway.mapping import Mapper

log = logging.getLogger("huren.gateway.sources.db")

KEYS = (
    "url", "kind", "master_view", "item_view", "columns", "item_columns", "defaults", "pdf_column",
    "pdf_path_column", "pdf_dir", "void_column", "void_values", "batch_size", "start", "time_as",
)
SPECS: dict[str, tuple[tuple[Field, ...], tuple[Field, ...]]] = {
    "lab": (LABMASTER, LAB_SUBITEM),
    "exam": (EXAMMASTER, EXAM_SUBITEM),
}
TIME = "last_update_dtime"
#: Items belong to a report by these fields (seed 002: "约束引用 labmaster 节点的 …").
ITEM_LINK = ("org_code", "report_form_no", "event_no")


def readonly_engine(url: str, base_dir: Path | None = None, where: str = "url") -> Engine:
    """An engine that cannot write where the driver allows it (SQLite ``mode=ro``, PostgreSQL
    read-only sessions); elsewhere use a SELECT-only account. Relative SQLite paths are taken from
    ``base_dir``; errors name the key as ``where``."""
    try:
        return _engine(url, base_dir)
    except NoSuchModuleError as exc:  # the URL is never echoed: it may hold a password
        raise ConfigError(f"{where}：不支持的数据库类型或驱动“{make_url(url).drivername}”") from exc
    except ModuleNotFoundError as exc:
        raise ConfigError(f"{where}：本机未安装数据库驱动 {exc.name}") from exc
    except ArgumentError as exc:
        raise ConfigError(f"{where} 不是合法的数据库连接串（例如 postgresql://用户@主机/库名 或 sqlite:///his.db）") from exc
    except ConfigError as exc:
        raise ConfigError(f"{where}：{exc}") from exc


def _engine(url: str, base_dir: Path | None) -> Engine:
    u = make_url(url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        db = u.database or ""
        if not db or db == ":memory:" or db.startswith("file:"):
            return create_engine(u, poolclass=NullPool)
        path = Path(db).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise ConfigError(f"SQLite 数据库 {path} 不存在")
        uri = f"file:{quote(str(path.resolve()))}?mode=ro"
        return create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True), poolclass=NullPool)
    engine = create_engine(u, pool_size=1, max_overflow=1, pool_pre_ping=True, pool_recycle=1800)
    if backend == "postgresql":
        return engine.execution_options(postgresql_readonly=True)
    return engine


def view(name: str) -> Any:
    """A lightweight table clause for ``name`` or ``schema.name``."""
    schema, _, bare = name.rpartition(".")
    return table(bare, schema=schema or None)


def lowered(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in row.items()}


def pick(row: Mapping[str, Any], spec: Sequence[Field], columns: Mapping[str, str], defaults: Mapping[str, str]) -> dict[str, str]:
    """The seed fields of ``spec`` from a lower-cased row, through the column map and defaults."""
    out: dict[str, str] = {}
    for f in spec:
        if f.name == "pdf":
            continue
        value = to_text(row.get(columns.get(f.name, f.name).lower()), f.kind)
        out[f.name] = value or defaults.get(f.name, "")
    return out


class Watermark:
    """A position in (last_update_dtime, report key) order; ``key`` None means "from ``time`` on"."""

    def __init__(self, time: Any, key: tuple[str, ...] | None) -> None:
        self.time, self.key = time, key

    @classmethod
    def parse(cls, text: str) -> Watermark | None:
        text = text.strip()
        if not text:
            return None
        if text.startswith("["):
            parts = json.loads(text)
            return cls(str(parts[0]), tuple(str(p) for p in parts[1:]))
        return cls(text if len(text) > 10 else text + " 00:00:00", None)

    def dump(self) -> str:
        return json.dumps([self.time, *(self.key or ())], ensure_ascii=False)


def raw_time(value: Any) -> str:
    """A time column's value as the watermark keeps it: exact (fractions kept) so that binding it back
    compares equal to the row it came from."""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


class DbViewSource:
    """Reports from a master view and an item view (see the module docstring for the keys)."""

    def __init__(
        self,
        name: str,
        engine: Engine,
        kind: str,
        master_view: str,
        item_view: str,
        *,
        columns: Mapping[str, str] | None = None,
        item_columns: Mapping[str, str] | None = None,
        defaults: Mapping[str, str] | None = None,
        pdf_column: str = "",
        pdf_path_column: str = "",
        pdf_dir: Path | None = None,
        void_column: str = "data_status",
        void_values: Sequence[str] = VOID_VALUES,
        batch_size: int = 200,
        start: str = "",
        time_as: str = "auto",
        mapper: Mapper | None = None,
    ) -> None:
        if kind not in SPECS:
            raise ConfigError(f"sources[{name}].kind 应为 lab 或 exam")
        self.name, self.engine, self.kind = name, engine, kind
        self.master_spec, self.item_spec = SPECS[kind]
        self.master_view, self.item_view = master_view, item_view
        self.columns = {k: v.lower() for k, v in (columns or {}).items()}
        self.item_columns = {k: v.lower() for k, v in (item_columns or {}).items()}
        self.defaults = dict(defaults or {})
        self.pdf_column, self.pdf_path_column = pdf_column.lower(), pdf_path_column.lower()
        self.pdf_dir = pdf_dir
        self.void_column = self.columns.get(void_column, void_column).lower()
        self.void_values = {str(v) for v in void_values}
        self.batch_size = batch_size
        self.start = start
        if time_as == "auto":
            time_as = "text" if engine.dialect.name == "sqlite" else "datetime"
        if time_as not in ("text", "datetime"):
            raise ConfigError(f"sources[{name}].time_as 应为 auto、text 或 datetime")
        self.time_as = time_as
        self.mapper = mapper
        #: the key fields the view has (a key field given only as a default is a constant, not a column)
        self.tie = [f for f in LAB_KEY if f in self.columns or f not in self.defaults]

    # -- reading ------------------------------------------------------------------------------
    def _col(self, fieldname: str) -> str:
        return self.columns.get(fieldname, fieldname)

    def _bind_time(self, text: str) -> Any:
        return text if self.time_as == "text" else datetime.fromisoformat(text)

    def _after(self, wm: Watermark) -> ColumnElement[bool]:
        t: ColumnClause[Any] = column(self._col(TIME))
        at = self._bind_time(wm.time)
        if wm.key is None:
            start: ColumnElement[bool] = t >= at
            return start
        keys = [cast(column(self._col(f)), String(128)) for f in self.tie]
        # lexicographic (t, k1, …, k5) > (T, K1, …, K5), written out for every database
        tie: ColumnElement[bool] = keys[-1] > wm.key[-1]
        for k, v in zip(reversed(keys[:-1]), reversed(wm.key[:-1]), strict=True):
            tie = or_(k > v, and_(k == v, tie))
        return and_(t >= at, or_(t > at, and_(t == at, tie)))

    def _masters(self, wm: Watermark | None) -> list[dict[str, Any]]:
        order = [column(self._col(TIME)), *(cast(column(self._col(f)), String(128)) for f in self.tie)]
        q: Select[Any] = select(literal_column("*")).select_from(view(self.master_view))
        if wm is not None:
            q = q.where(self._after(wm))
        q = q.where(column(self._col(TIME)).is_not(None)).order_by(*order).limit(self.batch_size)
        with self.engine.connect() as conn:
            return [lowered(r) for r in conn.execute(q).mappings()]

    def _items(self, report_nos: list[str]) -> dict[str, list[dict[str, Any]]]:
        rfn = self.item_columns.get("report_form_no", "report_form_no")
        q: Select[Any] = select(literal_column("*")).select_from(view(self.item_view)).where(column(rfn).in_(report_nos))
        out: dict[str, list[dict[str, Any]]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(q).mappings():
                row = lowered(r)
                out.setdefault(to_text(row.get(rfn)), []).append(row)
        return out

    def _pdf(self, row: Mapping[str, Any], where: str) -> bytes | None:
        if self.pdf_column:
            value = row.get(self.pdf_column)
            if isinstance(value, (bytes, bytearray, memoryview)):
                return bytes(value) or None
            if isinstance(value, str) and value.strip():
                try:
                    return base64.b64decode(value)
                except (binascii.Error, ValueError):
                    log.warning("%s：%s：%s 不是合法的 Base64，报告将不带 PDF 上传", self.name, where, self.pdf_column)
        if self.pdf_path_column:
            text = to_text(row.get(self.pdf_path_column))
            if text:
                path = Path(text)
                if not path.is_absolute() and self.pdf_dir is not None:
                    path = self.pdf_dir / path
                try:
                    return path.read_bytes()
                except OSError as exc:
                    log.warning("%s：%s：无法读取 PDF 文件 %s（%s），报告将不带 PDF 上传", self.name, where, path, os_reason(exc))
        return None

    def _record(self, row: Mapping[str, Any], items: list[dict[str, Any]]) -> Record:
        master_node, item_node = NODES[self.kind]
        master = pick(row, self.master_spec, self.columns, self.defaults)
        wm = Watermark(raw_time(row.get(self._col(TIME))), tuple(to_text(row.get(self._col(f))) for f in self.tie))
        key = report_key(self.kind, master)
        if to_text(row.get(self.void_column)) in self.void_values:
            return Record(f"void_{self.kind}", key, void_filter(master), self.name, wm.dump())
        rows = [pick(i, self.item_spec, self.item_columns, self.defaults) for i in items]
        rows = [
            r for r in rows
            if all(not r[f] or not master[f] or r[f] == master[f] for f in ITEM_LINK)
        ]
        if self.kind == "lab":
            rows.sort(key=lambda r: (int(r["serial_no"]) if r["serial_no"].isdigit() else 0, r["serial_no"]))
        payload: dict[str, Any] = {master_node: master, item_node: rows}
        if self.mapper is not None:
            payload, missing = self.mapper.map_payload(self.kind, payload)
            if missing:
                log.info("%s: %s has unmapped codes %s", self.name, key, ", ".join(missing))
        pdf = self._pdf(row, key)
        return Record(self.kind, key, payload, self.name, wm.dump(), {"pdf": pdf} if pdf else {})

    def poll(self, watermark: str) -> Iterator[Record]:
        """Reports after ``watermark``, oldest first, ``batch_size`` per database read."""
        try:
            wm = Watermark.parse(watermark or self.start)
        except (ValueError, IndexError) as exc:
            raise SourceError(f"{self.name}：无法识别的水位“{watermark}”：{exc}") from exc
        if wm is not None and wm.key is not None and len(wm.key) != len(self.tie):
            raise SourceError(f"{self.name}：水位“{watermark}”与视图的键列 {'、'.join(self.tie)} 不相符")
        while True:
            try:
                masters = self._masters(wm)
                nos = sorted({to_text(m.get(self._col("report_form_no"))) for m in masters})
                items = self._items(nos) if nos else {}
            except SQLAlchemyError as exc:
                raise SourceError(f"{self.name}：读取视图 {self.master_view} / {self.item_view} 失败：{exc}") from exc
            for row in masters:
                rec = self._record(row, items.get(to_text(row.get(self._col("report_form_no"))), []))
                yield rec
                wm = Watermark.parse(rec.watermark)
            if len(masters) < self.batch_size:
                return


def build(raw: Mapping[str, Any], *, base_dir: Path | None = None, mapper: Mapper | None = None) -> DbViewSource:
    conf = Conf(raw, KEYS)
    kind = conf.text("kind")
    if kind not in SPECS:
        raise ConfigError(f"{conf.where('kind')} 应为 lab 或 exam")
    master_fields = [f.name for f in SPECS[kind][0]]
    item_fields = [f.name for f in SPECS[kind][1]]
    void_column = conf.text("void_column", "data_status")
    batch_size = conf.integer("batch_size", 200)
    if batch_size > 1000:
        raise ConfigError(f"{conf.where('batch_size')} 不能大于 1000")
    return DbViewSource(
        conf.name,
        readonly_engine(conf.text("url"), base_dir, conf.where("url")),
        kind,
        conf.text("master_view"),
        conf.text("item_view"),
        columns=conf.table("columns", master_fields),
        item_columns=conf.table("item_columns", item_fields),
        defaults=conf.table("defaults", sorted({*master_fields, *item_fields})),
        pdf_column=conf.text("pdf_column", ""),
        pdf_path_column=conf.text("pdf_path_column", ""),
        pdf_dir=conf.path("pdf_dir", base_dir) if "pdf_dir" in raw else base_dir,
        void_column=void_column,
        void_values=conf.strings("void_values", VOID_VALUES),
        batch_size=batch_size,
        start=conf.text("start", ""),
        time_as=conf.text("time_as", "auto"),
        mapper=mapper,
    )
