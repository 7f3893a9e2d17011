"""Directory master data uploaded by hospitals: departments, staff, patients, lab instruments,
lab QC records (HZ-1/2/3, XC-L1, XC-L4).

An institution uploads and reads only its own rows; a supervisor reads those of its region. An
upload is all or nothing: one bad row and nothing is written, the submission is kept as rejected
(kind = the body's node, e.g. ``dept``) with every problem. Reading patients is reading patient
data: each patient returned is written to the access log. A patient's ID number, name, card
number and phone are sealed at rest with the keyring's field cipher (``huren.store.masterdata``);
patients are found by ID number through its blind index (filter ``id_no``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any, NoReturn

import orjson

from huren.context import Clock, Principal
from huren.crypto.aead import FieldCipher
from huren.domain.masterdata import KINDS, Kind, check_org, validate_rows
from huren.domain.records import format_value
from huren.errors import Forbidden, HurenError, InvalidInput, NotFound, Problem
from huren.services import access
from huren.services.audit import AuditService
from huren.store import masterdata as store
from huren.store.database import Database

#: Keeps a rejected submission: (principal, kind, channel, problems, raw bytes, report key) → its ref.
RejectFn = Callable[[Principal, str, str, Sequence[Problem], bytes | None, str | None], str]

#: Equality filters each kind accepts when read.
FILTERS: dict[str, tuple[str, ...]] = {
    "dept": ("dept_code", "dept_std_code"),
    "staff": ("staff_code", "dept_code"),
    "patient": ("patient_id", "id_type_code", "id_no"),
    "device": ("dept_code",),
    "qc_record": ("device_code", "item_code", "in_control"),
}
MAX_LIMIT = 1000


class MasterDataService:
    def __init__(
        self, db: Database, clock: Clock, audit: AuditService, reject: RejectFn, *, fields: FieldCipher | None = None
    ) -> None:
        self._db = db
        self._clock = clock
        self._audit = audit
        self._reject = reject
        self._fields = fields if fields is not None else audit.fields

    @staticmethod
    def kind(node: str) -> Kind:
        k = KINDS.get(node)
        if k is None:
            raise NotFound(f"未知的主数据类型：{node}")
        return k

    # -- upload -------------------------------------------------------------------------------
    def upload(
        self, node: str, payload: Any, principal: Principal, *, channel: str = "rest", raw: bytes | None = None
    ) -> int:
        """Upsert one upload of ``{node: [row, …]}``; returns the number of rows stored.

        Raises InvalidInput (422: field problems, unknown instrument of a QC record) or Forbidden
        (403: a row names another institution); either way nothing is written and the submission
        is kept as rejected.
        """
        access.require(principal, "directory.write")
        kind = self.kind(node)
        rows, problems = validate_rows(kind, payload)
        if problems:
            self._rejected(principal, kind, channel, InvalidInput(f"{kind.title}数据未通过校验", problems), raw, payload)
        foreign = check_org(kind, rows, principal.org_code)
        if foreign:
            self._rejected(principal, kind, channel, Forbidden(f"只能上传本机构的{kind.title}数据", foreign), raw, payload)
        with self._db.write() as conn:
            if kind.node == "qc_record":
                known = store.known_devices(conn, principal.org_code, (r["device_code"] for r in rows))
                problems = [
                    Problem(
                        f"qc_record[{i}].device_code",
                        "reference",
                        f"仪器编码（device_code）“{r['device_code']}”不是本机构已登记的检验仪器，请先上传仪器目录（XC-L1）",
                    )
                    for i, r in enumerate(rows)
                    if r["device_code"] not in known
                ]
            if not problems:
                store.upsert(conn, kind.node, principal.org_code, kind.key, rows, now=self._clock.now(), fields=self._fields)
        if problems:
            self._rejected(principal, kind, channel, InvalidInput(f"{kind.title}数据未通过校验", problems), raw, payload)
        return len(rows)

    def _rejected(
        self, principal: Principal, kind: Kind, channel: str, error: HurenError, raw: bytes | None, payload: Any
    ) -> NoReturn:
        if raw is None:
            try:
                raw = orjson.dumps(payload)
            except TypeError:
                raw = repr(payload).encode()
        rid = self._reject(principal, kind.node, channel, error.problems, raw, None)
        error.kept(rid)
        raise error

    # -- read ---------------------------------------------------------------------------------
    def read(
        self,
        node: str,
        principal: Principal,
        *,
        org_code: str | None = None,
        filters: Mapping[str, Any] | None = None,
        day_from: date | None = None,
        day_to: date | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> dict[str, Any]:
        """One page of rows, as text in field order, plus ``total`` (rows matching in all).

        Institutions read their own rows; a supervisor those of an institution of its region
        (``org_code``) or, without it, of every institution of its region (``huren.domain.access``). ``filters`` are equality filters (see FILTERS); ``day_from`` /
        ``day_to`` (inclusive) select QC records by date.
        """
        access.require(principal, "directory.read")
        kind = self.kind(node)
        problems: list[Problem] = []
        equals: dict[str, Any] = {}
        for name, value in (filters or {}).items():
            if value is None or value == "":
                continue
            if name not in FILTERS[node]:
                problems.append(Problem(name, "filter", f"{kind.title}不支持按 {name} 筛选"))
            equals[name] = value
        if (day_from or day_to) and node != "qc_record":
            problems.append(Problem("day_from", "filter", "只有检验质控记录可按日期筛选"))
        if day_from and day_to and day_from > day_to:
            problems.append(Problem("day_from", "range", "开始日期不能晚于结束日期"))
        if not 1 <= limit <= MAX_LIMIT or offset < 0:
            problems.append(Problem("limit", "range", f"limit 应在 1–{MAX_LIMIT} 之间，offset 不能为负数"))
        if problems:
            raise InvalidInput("查询条件无效", problems)
        with self._db.read() as conn:
            scope = access.org_scope(conn, principal, "directory.read", org_code)
            found, total = store.rows(
                conn, node, kind.key, scope, equals=equals, day_from=day_from, day_to=day_to, limit=limit, offset=offset,
                fields=self._fields,
            )
        if kind.patient_data:
            self._audit.record_many(
                principal,
                "read_patient",
                [(r["id_type_code"], r["id_no"], f"patient:{r['org_code']}|{r['patient_id']}") for r in found],
            )
        names = ("org_code", *kind.columns, "updated_at")
        return {
            "total": total,
            "count": len(found),
            "limit": limit,
            "offset": offset,
            kind.node: [{n: format_value(r[n]) for n in names} for r in found],
        }

    # -- for other services ---------------------------------------------------------------------
    def dept_std(self, org_code: str, dept_code: str) -> tuple[str, str] | None:
        """An institution's department → its standard department (STD_DEPT code, name), if registered."""
        with self._db.read() as conn:
            return store.dept_std(conn, org_code, dept_code)
