"""HIS master data (HZ-1 patients, HZ-2 departments, HZ-3 staff) from views in the HIS database.

* **patients** — new registrations, found by ``registered_at`` after the watermark (ties broken by
  ``patient_id``, as the report views are); a patient's later edits are not followed.
* **departments** and **staff** — the whole (small) view is read each poll and every row hashed;
  only rows that are new or whose content changed since the last upload are sent. A row that
  disappears from the view is not sent (mark it ``active = 0`` in the view instead).

Records carry ``{"patient": [...]}``, ``{"dept": [...]}``, ``{"staff": [...]}`` — the bodies of
``POST …/directory/{patients,depts,staff}`` — in batches of ``batch_size`` rows, with the field
names of :mod:`huren.domain.masterdata`. All records of one kind share one key, so they are
uploaded in order. The watermark is JSON: ``{"patient": [registered_at, patient_id],
"dept": {dept_code: hash}, "staff": {staff_code: hash}}``; a bare day (``gateway backfill --since``)
means patients registered from that day on and every department and staff row again.

Keys of a ``type = "his"`` source (leave out a table to skip that kind)::

    name = "his"
    type = "his"
    url = "mssql+pyodbc://ro_user:…@his-db/HIS?driver=ODBC+Driver+18+for+SQL+Server"
    org_code = "457759922"            # filled in when the views have no org_code
    batch_size = 200
    patients = { view = "v_patient", columns = { patient_id = "BRID", registered_at = "JDSJ" } }
    depts = { view = "v_dept" }
    staff = { view = "v_staff", columns = { staff_code = "GH" } }
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnClause, Select, String, and_, cast, column, literal_column, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from huren.domain.masterdata import KINDS as MASTERDATA
from huren.domain.masterdata import Kind
from huren.gateway.model import Record
from huren.gateway.sources.base import DT, Conf, ConfigError, SourceError, parse_time, to_text
from huren.gateway.sources.dbview import lowered, raw_time, readonly_engine, view

if TYPE_CHECKING:
    from huren.gateway.mapping import Mapper

log = logging.getLogger("huren.gateway.sources.his")

KEYS = ("url", "org_code", "batch_size", "patients", "depts", "staff", "time_as")
TABLE_KEYS = ("view", "columns")
#: config table → masterdata node
TABLES = {"patients": "patient", "depts": "dept", "staff": "staff"}


def row_hash(row: Mapping[str, str]) -> str:
    text = json.dumps(row, sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


class HisSource:
    """Patients, departments and staff from HIS views (see the module docstring for the keys)."""

    def __init__(
        self,
        name: str,
        engine: Engine,
        tables: Mapping[str, tuple[str, Mapping[str, str]]],
        *,
        org_code: str = "",
        batch_size: int = 200,
        time_as: str = "auto",
    ) -> None:
        self.name, self.engine = name, engine
        self.tables = {TABLES[k]: (v, {f: c.lower() for f, c in cols.items()}) for k, (v, cols) in tables.items()}
        self.org_code = org_code
        self.batch_size = batch_size
        if time_as == "auto":
            time_as = "text" if engine.dialect.name == "sqlite" else "datetime"
        if time_as not in ("text", "datetime"):
            raise ConfigError(f"sources[{name}].time_as 应为 auto、text 或 datetime")
        self.time_as = time_as

    def _row(self, kind: Kind, raw: Mapping[str, Any], columns: Mapping[str, str]) -> dict[str, str]:
        out = {}
        for f in kind.spec:
            value = to_text(raw.get(columns.get(f.name, f.name).lower()), f.kind)
            if f.name == "org_code":
                value = value or self.org_code
            if value or f.required:
                out[f.name] = value
        return out

    def _read(self, q: Any) -> list[dict[str, Any]]:
        try:
            with self.engine.connect() as conn:
                return [lowered(r) for r in conn.execute(q).mappings()]
        except SQLAlchemyError as exc:
            raise SourceError(f"{self.name}：读取 HIS 失败：{exc}") from exc

    def _key(self, node: str) -> str:
        return f"{node}:{self.org_code}"

    def poll(self, watermark: str) -> Iterator[Record]:
        """New / changed departments, then staff, then newly registered patients."""
        text = watermark.strip()
        try:
            if text.startswith("{"):
                state: dict[str, Any] = json.loads(text)
            elif text:  # a backfill from a day: patients registered since, every department and staff row
                state = {"patient": [parse_time(text).strftime(DT), ""]}
            else:
                state = {}
        except ValueError as exc:
            raise SourceError(f"{self.name}：无法识别的水位“{text}”：{exc}") from exc
        for node in ("dept", "staff"):
            if node in self.tables:
                yield from self._snapshot(node, state)
        if "patient" in self.tables:
            yield from self._patients(state)

    def _snapshot(self, node: str, state: dict[str, Any]) -> Iterator[Record]:
        kind = MASTERDATA[node]
        name, columns = self.tables[node]
        seen: dict[str, str] = dict(state.get(node) or {})
        changed: list[tuple[str, str, dict[str, str]]] = []
        for raw in self._read(select(literal_column("*")).select_from(view(name))):
            row = self._row(kind, raw, columns)
            code, digest = row.get(kind.key[0], ""), row_hash(row)
            if code and seen.get(code) != digest:
                changed.append((code, digest, row))
        for i in range(0, len(changed), self.batch_size):
            batch = changed[i : i + self.batch_size]
            seen.update({code: digest for code, digest, _ in batch})
            state[node] = dict(seen)
            yield Record(node, self._key(node), {node: [r for _, _, r in batch]}, self.name, json.dumps(state, ensure_ascii=False))

    def _patients(self, state: dict[str, Any]) -> Iterator[Record]:
        kind = MASTERDATA["patient"]
        name, columns = self.tables["patient"]
        t: ColumnClause[Any] = column(columns.get("registered_at", "registered_at"))
        pid = cast(column(columns.get("patient_id", "patient_id")), String(128))
        while True:
            q: Select[Any] = select(literal_column("*")).select_from(view(name)).where(t.is_not(None))
            wm = state.get("patient")
            if wm:
                at: Any = wm[0] if self.time_as == "text" else datetime.fromisoformat(wm[0])
                q = q.where(and_(t >= at, or_(t > at, and_(t == at, pid > wm[1]))))
            rows = self._read(q.order_by(t, pid).limit(self.batch_size))
            if not rows:
                return
            last = rows[-1]
            state["patient"] = [
                raw_time(last.get(columns.get("registered_at", "registered_at"))),
                to_text(last.get(columns.get("patient_id", "patient_id"))),
            ]
            payload = {"patient": [self._row(kind, r, columns) for r in rows]}
            yield Record("patient", self._key("patient"), payload, self.name, json.dumps(state, ensure_ascii=False))
            if len(rows) < self.batch_size:
                return


def build(raw: Mapping[str, Any], *, base_dir: Path | None = None, mapper: Mapper | None = None) -> HisSource:
    conf = Conf(raw, KEYS)
    tables: dict[str, tuple[str, Mapping[str, str]]] = {}
    for key, node in TABLES.items():
        sub = conf.sub(key)
        if sub is None:
            continue
        inner = Conf({**sub, "name": f"{conf.name}.{key}"}, TABLE_KEYS)
        tables[key] = (inner.text("view"), inner.table("columns", [f.name for f in MASTERDATA[node].spec]))
    if not tables:
        raise ConfigError(f"sources[{conf.name}]：patients、depts、staff 至少应配置一项")
    return HisSource(
        conf.name,
        readonly_engine(conf.text("url"), base_dir, conf.where("url")),
        tables,
        org_code=conf.text("org_code", ""),
        batch_size=conf.integer("batch_size", 200),
        time_as=conf.text("time_as", "auto"),
    )
