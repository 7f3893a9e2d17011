"""Patient identity sealed at rest: which columns of which table, and the one way to seal, open,
convert and re-key them (issue 10 §1.8, ``huren.crypto.aead``).

Every sealed column holds ``enc1:…`` (an SM4-GCM envelope) bound to its table and column and to a
*context* taken from the row, so a value copied to another column or another row does not open:

=====================  ====================================  =========================================
table                  sealed columns                        context
=====================  ====================================  =========================================
patient                id_no, name, card_no, phone           ``org_code|patient_id``
access_log             id_no                                 (none: a log row has no stable owner key)
lab_report/exam_report id_no, name, card_no                  ``org_code``
accept/quote_record    id_no                                 ``org_code`` (the deciding institution)
reminder_log           id_no                                 ``org_code``
report_history         snapshot (the whole old version)      ``kind|report_id|version``
rejected_submission    problems (messages echo values)       ``org_code``
image_study            patient_name, patient_id,             ``org_code|study_uid``
                       patient_birth_date, patient_json
image_deletion         patient_name                          ``org_code``
=====================  ====================================  =========================================

Tables holding an ID number also hold ``id_no_bidx``, its keyed blind index in the one domain
``id_no`` shared by all of them: every lookup by ID number compares it (one HMAC per question). ``image_study`` keeps blind indexes of its own (:attr:`Spec.blind`):
``patient_id_bidx`` (domain ``dicom_patient_id``) and ``patient_name_bidx`` (``dicom_patient_name``),
for the exact PatientID / PatientName matches of QIDO-RS and C-FIND.
A value that does not open is :class:`huren.errors.NotConfigured`, never returned in part.

The store's functions find the cipher through the connection: :func:`bind` ties a
:class:`FieldCipher` to an engine (``huren.store.database.Database`` does, with the keyring's
data keys) and :func:`cipher` returns it for a connection of that engine.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Table, func, select, tuple_, update

from huren.crypto import b64url
from huren.crypto.aead import TEXT_PREFIX, FieldCipher, SealError, is_sealed_text
from huren.errors import NotConfigured
from huren.store import tables as t

ID_DOMAIN = "id_no"  # the blind-index domain of ID numbers, shared by every table that indexes one
BIDX = "id_no_bidx"
UNREADABLE = "{what}中的加密字段无法解密：数据密钥（keys/data.keys）与数据库不匹配，请从备份恢复数据密钥文件"
NO_CIPHER = "数据库未配置数据密钥：无法读写加密保存的患者身份信息（请通过平台启动流程打开数据库）"


def _org(row: Mapping[Any, Any]) -> str:
    return str(row["org_code"])


@dataclass(frozen=True, slots=True)
class Spec:
    """The sealed columns of one table."""

    table: Table
    columns: tuple[str, ...]
    context: Callable[[Mapping[Any, Any]], str]
    what: str  # the table in the operator's words (for UNREADABLE)
    context_columns: tuple[str, ...] = ("org_code",)  # the columns ``context`` reads
    indexed: bool = True  # holds id_no and its blind index id_no_bidx
    #: other blind indexes: (sealed column, its blind-index column, domain)
    blind: tuple[tuple[str, str, str], ...] = ()

    @property
    def name(self) -> str:
        return self.table.name


SPECS: dict[str, Spec] = {
    s.name: s
    for s in (
        Spec(
            t.patient, ("id_no", "name", "card_no", "phone"), lambda r: f"{r['org_code']}|{r['patient_id']}", "患者主数据",
            ("org_code", "patient_id"),
        ),
        Spec(t.access_log, ("id_no",), lambda r: "", "访问日志", ()),
        Spec(t.lab_report, ("id_no", "name", "card_no"), _org, "检验报告"),
        Spec(t.exam_report, ("id_no", "name", "card_no"), _org, "检查报告"),
        Spec(t.accept_record, ("id_no",), _org, "互认结果记录"),
        Spec(t.quote_record, ("id_no",), _org, "引用结果记录"),
        Spec(t.reminder_log, ("id_no",), _org, "提醒与调阅记录"),
        Spec(
            t.report_history, ("snapshot",), lambda r: f"{r['kind']}|{r['report_id']}|{r['version']}", "报告历史版本",
            ("kind", "report_id", "version"), indexed=False,
        ),
        Spec(t.rejected_submission, ("problems",), _org, "被拒提交记录", indexed=False),
        Spec(
            t.image_study, ("patient_name", "patient_id", "patient_birth_date", "patient_json"),
            lambda r: f"{r['org_code']}|{r['study_uid']}", "影像检查", ("org_code", "study_uid"), indexed=False,
            blind=(("patient_id", "patient_id_bidx", "dicom_patient_id"), ("patient_name", "patient_name_bidx", "dicom_patient_name")),
        ),
        Spec(t.image_deletion, ("patient_name",), _org, "影像删除通知", indexed=False),
    )
}

# -- the cipher of a connection ------------------------------------------------------------------

_BOUND: weakref.WeakKeyDictionary[Engine, FieldCipher] = weakref.WeakKeyDictionary()


def bind(engine: Engine, fields: FieldCipher) -> None:
    """Seal and open the rows written and read through ``engine`` with ``fields``."""
    _BOUND[engine] = fields


def cipher(conn: Connection) -> FieldCipher:
    """The field cipher bound to the connection's engine (NotConfigured when there is none)."""
    fields = _BOUND.get(conn.engine)
    if fields is None:
        raise NotConfigured(NO_CIPHER)
    return fields


# -- rows ------------------------------------------------------------------------------------------


_last = threading.local()  # per thread: the last (cipher, ID number, blind index) computed


def blind_id(fields: FieldCipher, id_no: str) -> str:
    """The blind index of an ID number. One question looks a patient up several times (prior
    items of each kind, the visit's decisions and reminders, the access-log row): the thread's
    last index is kept, so a question costs one HMAC."""
    last = getattr(_last, "v", None)
    if last is not None and last[0] is fields and last[1] == id_no:
        return str(last[2])
    bidx = fields.blind(id_no, ID_DOMAIN)
    _last.v = (fields, id_no, bidx)
    return bidx


def seal_row(fields: FieldCipher, table: str, row: Mapping[Any, Any]) -> dict[str, Any]:
    """A row as stored: its sealed columns (those it carries, not None) sealed and, for a table
    holding ID numbers, the blind index of the row's ``id_no`` added (None for no ID number)."""
    spec = SPECS[table]
    out = dict(row)
    ctx = spec.context(row)
    for c in spec.columns:
        v = out.get(c)
        if v is not None:
            out[c] = fields.seal_text(str(v), spec.name, c, ctx)
    if spec.indexed and "id_no" in row:
        out[BIDX] = None if row["id_no"] is None else blind_id(fields, str(row["id_no"]))
    for column, bidx, domain in spec.blind:
        if column in row:
            out[bidx] = None if row[column] in (None, "") else fields.blind(str(row[column]), domain)
    return out


def seal_rows(fields: FieldCipher, table: str, rows: Iterable[Mapping[Any, Any]]) -> list[dict[str, Any]]:
    """Rows as stored (:func:`seal_row`), the ID number sealed once per (context, number) within
    the batch: the rows of one question (a reminder per ordered item) name one patient, and the
    blind index already shows that they do, so one envelope for them gives nothing more away.
    Other columns get an envelope each."""
    spec = SPECS[table]
    if not (spec.indexed and "id_no" in spec.columns):
        return [seal_row(fields, table, r) for r in rows]
    memo: dict[tuple[str, str], str] = {}
    out = []
    for row in rows:
        v = row.get("id_no")
        if v is None:
            out.append(seal_row(fields, table, row))
            continue
        key = (spec.context(row), str(v))
        sealed = memo.get(key)
        if sealed is None:
            sealed = memo[key] = fields.seal_text(str(v), spec.name, "id_no", key[0])
        rest = seal_row(fields, table, {k: val for k, val in row.items() if k != "id_no"})
        rest["id_no"] = sealed
        rest[BIDX] = blind_id(fields, str(v))
        out.append(rest)
    return out


def open_row(fields: FieldCipher, table: str, row: Mapping[Any, Any]) -> dict[str, Any]:
    """A stored row (or any selection of its columns holding the context columns) with its sealed
    columns opened and the blind index left out; NotConfigured when a value does not open."""
    spec = SPECS[table]
    out = dict(row)
    ctx = spec.context(row)
    try:
        for c in spec.columns:
            v = out.get(c)
            if v:  # None, or a column default "" (nothing to open)
                out[c] = fields.open_text(v, spec.name, c, ctx)
    except SealError as exc:
        raise NotConfigured(UNREADABLE.format(what=spec.what)) from exc
    out.pop(BIDX, None)
    for _, bidx, _ in spec.blind:
        out.pop(bidx, None)
    return out


def open_value(fields: FieldCipher, table: str, column: str, value: str | None, context: str) -> str | None:
    """One sealed value (NotConfigured when it does not open)."""
    if not value:
        return value
    try:
        return fields.open_text(value, table, column, context)
    except SealError as exc:
        raise NotConfigured(UNREADABLE.format(what=SPECS[table].what)) from exc


# -- existing rows: conversion (migrations) and re-keying (huren keys rotate-data) -----------------


def _pages(conn: Connection, spec: Spec, batch: int, after: tuple[Any, ...] | None) -> Iterator[list[dict[str, Any]]]:
    """The table's rows (primary key, context and sealed columns) in primary-key order, a batch at a time."""
    pk = [c for c in spec.table.primary_key.columns]
    wanted = {c.name: c for c in pk}
    for name in (*spec.context_columns, *spec.columns):
        wanted.setdefault(name, spec.table.c[name])
    key = tuple_(*pk) if len(pk) > 1 else pk[0]
    while True:
        q = select(*wanted.values()).order_by(*pk).limit(batch)
        if after is not None:
            q = q.where(key > (tuple_(*after) if len(pk) > 1 else after[0]))
        found = [dict(r) for r in conn.execute(q).mappings()]
        if not found:
            return
        after = tuple(found[-1][c.name] for c in pk)
        yield found


def _write(conn: Connection, spec: Spec, row: Mapping[str, Any], values: Mapping[str, Any]) -> None:
    pk = list(spec.table.primary_key.columns)
    conn.execute(update(spec.table).where(*[c == row[c.name] for c in pk]).values(dict(values)))


def seal_existing(conn: Connection, fields: FieldCipher, table: str, *, batch: int = 1000) -> int:
    """Seal the rows of ``table`` stored before its columns were sealed (the 0006 / 0007
    migrations); returns how many rows were converted. Values already sealed are left alone."""
    spec = SPECS[table]
    done = 0
    for rows in _pages(conn, spec, batch, None):
        for r in rows:
            clear = {c: r[c] for c in spec.columns if r[c] is not None and not is_sealed_text(str(r[c]))}
            if not clear:
                continue
            sealed = seal_row(fields, table, r)
            values = {c: sealed[c] for c in clear}
            if spec.indexed and "id_no" in clear:
                values[BIDX] = sealed[BIDX]
            _write(conn, spec, r, values)
            done += 1
    return done


def key_id(token: str) -> int:
    """The data key id a sealed text value is under (without opening it)."""
    return FieldCipher.header(b64url.decode(token[len(TEXT_PREFIX) :]))[2]


@dataclass(slots=True)
class Resealed:
    rekeyed: int = 0  # rows re-encrypted under the active key
    sealed: int = 0  # rows that held a value in clear, sealed now
    current: int = 0  # rows already under the active key


def reseal(
    conn: Connection, fields: FieldCipher, table: str, *, batch: int = 1000, commit: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Resealed:
    """Re-encrypt every sealed value of ``table`` not under the active data key (and seal any
    left in clear), a batch at a time — committed after each batch with ``commit`` (so an
    interrupted run keeps what it did, and a rerun skips the rows already under the active key).
    ``progress`` is told how many rows each batch covered. A value that does not open is
    NotConfigured."""
    spec = SPECS[table]
    out = Resealed()
    for rows in _pages(conn, spec, batch, None):
        for r in rows:
            values: dict[str, Any] = {}
            rekey = False
            for c in spec.columns:
                v = r[c]
                if not v:
                    continue
                if is_sealed_text(str(v)):
                    try:
                        current = not fields.needs_rekey(b64url.decode(v[len(TEXT_PREFIX) :]))
                    except (SealError, ValueError) as exc:
                        raise NotConfigured(UNREADABLE.format(what=spec.what)) from exc
                    if current:
                        continue
                    clear = open_value(fields, table, c, v, spec.context(r))
                    rekey = True
                else:
                    clear = v
                values[c] = fields.seal_text(str(clear), spec.name, c, spec.context(r))
            if not values:
                out.current += 1
                continue
            if spec.indexed and "id_no" in values and not is_sealed_text(str(r["id_no"])):
                values[BIDX] = fields.blind(str(r["id_no"]), ID_DOMAIN)
            _write(conn, spec, r, values)
            if rekey:
                out.rekeyed += 1
            else:
                out.sealed += 1
        if commit:
            conn.commit()
        if progress is not None:
            progress(len(rows))
    return out


def count(conn: Connection, table: str) -> int:
    """How many rows ``table`` holds (the length of a progress bar)."""
    return int(conn.execute(select(func.count()).select_from(SPECS[table].table)).scalar_one())
