"""Directory master data uploaded by hospitals: field specs and validation of each record kind.

Five kinds, each uploaded as ``{node: [row, …]}`` and upserted by its key within the institution:

==========  ============  ==========================================================  =======
node        REST path     key (besides org_code)                                      IDs
==========  ============  ==========================================================  =======
dept        depts         dept_code                                                   HZ-2
staff       staff         staff_code                                                  HZ-3
patient     patients      patient_id                                                  HZ-1
device      devices       device_code                                                 XC-L1
qc_record   qc-records    device_code, item_code, qc_date, qc_level                   XC-L4
==========  ============  ==========================================================  =======

Rows are checked with :func:`huren.domain.validation.check_record` (every problem at once, fields
named ``dept[3].dept_std_code``). A row may carry ``org_code``; when it does the service checks it
is the caller's. Values come back normalised for the store: optional texts as ``""`` (the columns
are NOT NULL with default ``""``), flags (``active``, ``in_control``) as ``bool``, dates as ``date``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from huren.domain import dictionaries
from huren.domain.fields import Field
from huren.domain.validation import canonical_id, check_identity, check_record
from huren.errors import Problem


def _f(name: str, title: str, kind: str, size: int = 0, req: bool = True, dic: str | None = None) -> Field:
    return Field(name, title, kind, size, req, dic)


_S = 128
_ORG = _f("org_code", "机构编码", "str", _S, False)  # optional in a row; when present it must be the caller's

DEPT: tuple[Field, ...] = (
    _ORG,
    _f("dept_code", "科室编码", "str", _S),
    _f("dept_name", "科室名称", "str", _S),
    _f("dept_std_code", "标准科室编码", "str", _S, dic="STD_DEPT"),
    # optional: taken from STD_DEPT when not sent
    _f("dept_std_name", "标准科室名称", "str", _S, False),
    _f("campus", "院区", "str", _S, False),
    _f("active", "是否启用", "num", 1, False),
)

STAFF: tuple[Field, ...] = (
    _ORG,
    _f("staff_code", "人员编码", "str", _S),
    _f("name", "姓名", "str", _S),
    _f("dept_code", "所属科室编码", "str", _S, False),
    _f("title", "职称", "str", 64, False),
    _f("licence_no", "执业证书编码", "str", 64, False),
    _f("active", "是否在职", "num", 1, False),
)

PATIENT: tuple[Field, ...] = (
    _ORG,
    _f("patient_id", "病人ID", "str", _S),
    _f("id_type_code", "身份证件类别代码", "str", 2, dic="STD_ID_TYPE"),
    _f("id_no", "身份证件号码", "str", _S),
    _f("name", "病人的姓名", "str", _S),
    _f("sex_code", "病人性别编码", "str", 8, dic="STD_SEX"),
    _f("birth_date", "出生日期", "date", req=False),
    _f("card_no", "卡号", "str", _S, False),
    _f("phone", "联系电话", "str", 32, False),
    _f("registered_at", "建档时间", "dt", req=False),
)

DEVICE: tuple[Field, ...] = (
    _ORG,
    _f("device_code", "仪器编码", "str", _S),
    _f("name", "仪器名称", "str", _S),
    _f("model", "型号", "str", _S, False),
    _f("manufacturer", "生产厂家", "str", _S, False),
    _f("dept_code", "所属科室编码", "str", _S, False),
    _f("active", "是否启用", "num", 1, False),
)

QC_RECORD: tuple[Field, ...] = (
    _ORG,
    _f("device_code", "仪器编码", "str", _S),
    _f("item_code", "质控项目编码", "str", _S),
    _f("item_name", "质控项目名称", "str", _S, False),
    _f("qc_date", "质控日期", "date"),
    _f("qc_level", "质控水平", "str", 32, False),
    _f("target_value", "靶值", "str", 64, False),
    _f("measured_value", "测定值", "str", 64),
    _f("in_control", "是否在控", "num", 1),
)


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of master data: its body node, REST path, fields, key and interface IDs."""

    node: str  # the body's node and the rejected submission's kind
    path: str  # /api/v1/directory/{path}
    title: str  # Chinese name, for messages
    spec: tuple[Field, ...]
    key: tuple[str, ...]  # unique within an institution
    ids: tuple[str, ...]  # interface IDs
    patient_data: bool = False  # reading it is reading patient data (access log)

    @property
    def columns(self) -> tuple[str, ...]:
        """The stored fields (org_code is the caller's, set by the service)."""
        return tuple(f.name for f in self.spec if f.name != "org_code")


KINDS: dict[str, Kind] = {
    k.node: k
    for k in (
        Kind("dept", "depts", "科室", DEPT, ("dept_code",), ("HZ-2",)),
        Kind("staff", "staff", "医护人员", STAFF, ("staff_code",), ("HZ-3",)),
        Kind("patient", "patients", "患者", PATIENT, ("patient_id",), ("HZ-1",), patient_data=True),
        Kind("device", "devices", "检验仪器", DEVICE, ("device_code",), ("XC-L1",)),
        Kind("qc_record", "qc-records", "检验质控记录", QC_RECORD, ("device_code", "item_code", "qc_date", "qc_level"), ("XC-L4",)),
    )
}
BY_PATH: dict[str, Kind] = {k.path: k for k in KINDS.values()}

#: Flags: 1 = yes, 0 = no; ``active`` defaults to 1 when not sent.
FLAGS = ("active", "in_control")


def _flag(rec: dict[str, Any], name: str, title: str, where: str, problems: list[Problem]) -> None:
    value = rec[name]
    if value is None:
        rec[name] = True  # only optional flags get here (a required one was reported)
        return
    if value not in (0, 1):
        problems.append(Problem(f"{where}.{name}", "boolean", f"{title}（{name}）应为 1（是）或 0（否），收到“{value}”"))
    rec[name] = value == 1


def _birth_in_id(id_no: str) -> date | None:
    try:
        return date(int(id_no[6:10]), int(id_no[10:12]), int(id_no[12:14]))
    except ValueError:
        return None


def check_row(kind: Kind, raw: Mapping[str, Any], where: str, problems: list[Problem]) -> dict[str, Any]:
    """Validate one row of ``kind``; append its problems; return it normalised for the store."""
    rec = check_record(raw, kind.spec, where, problems, flags=FLAGS)
    titles = {f.name: f.title for f in kind.spec}
    for name in FLAGS:
        if name in titles:
            _flag(rec, name, titles[name], where, problems)
    if kind.node == "dept" and rec["dept_std_name"] is None and rec["dept_std_code"] is not None:
        rec["dept_std_name"] = dictionaries.load("STD_DEPT").get(rec["dept_std_code"])
    if kind.node == "patient":
        before = len(problems)
        check_identity(rec["id_type_code"], rec["id_no"], f"{where}.id_no", problems)
        rec["id_no"] = canonical_id(rec["id_type_code"], rec["id_no"])
        id_ok = len(problems) == before
        if id_ok and rec["id_type_code"] == "01" and rec["id_no"] and rec["birth_date"] is not None:
            born = _birth_in_id(rec["id_no"])
            if born is not None and born != rec["birth_date"]:
                problems.append(
                    Problem(
                        f"{where}.birth_date",
                        "consistency",
                        f"出生日期（birth_date）“{rec['birth_date'].isoformat()}”与居民身份证号码中的出生日期“{born.isoformat()}”不一致",
                    )
                )
    for f in kind.spec:
        if f.kind == "str" and not f.required and rec[f.name] is None and f.name != "org_code":
            rec[f.name] = ""
    return rec


def validate_rows(kind: Kind, payload: Any) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Validate a ``{node: [row, …]}`` upload. Rows (with ``org_code`` as sent, or None) when
    there is no problem at all; otherwise no rows and every problem."""
    node = kind.node
    raw_rows = None
    if isinstance(payload, Mapping):
        raw_rows = payload.get(node)
        if raw_rows is None:  # node names are case-insensitive, like field names
            raw_rows = next((v for k, v in payload.items() if isinstance(k, str) and k.lower() == node), None)
    if isinstance(raw_rows, Mapping):  # a single row sent as an object
        raw_rows = [raw_rows]
    if not isinstance(raw_rows, list) or not raw_rows:
        return [], [Problem(node, "node", f"缺少 {node} 节点（应为{kind.title}记录的数组），或其中没有任何记录")]
    problems: list[Problem] = []
    out: list[dict[str, Any]] = []
    seen: dict[tuple[Any, ...], int] = {}
    for i, raw in enumerate(raw_rows):
        where = f"{node}[{i}]"
        if not isinstance(raw, Mapping):
            problems.append(Problem(where, "node", "记录应为一个对象"))
            continue
        rec = check_row(kind, raw, where, problems)
        key = tuple(rec[k] for k in kind.key)
        if all(k is not None for k in key):
            if key in seen:
                problems.append(
                    Problem(
                        f"{where}.{kind.key[0]}",
                        "duplicate",
                        f"同一次上传中{kind.title}（{', '.join(kind.key)}）“{' / '.join(str(k) for k in key)}”与 {node}[{seen[key]}] 重复",
                    )
                )
            else:
                seen[key] = i
        out.append(rec)
    return (out if not problems else []), problems


def check_org(kind: Kind, rows: Sequence[Mapping[str, Any]], org_code: str) -> list[Problem]:
    """``ownership`` problems for rows naming another institution than ``org_code``."""
    return [
        Problem(f"{kind.node}[{i}].org_code", "ownership", f"机构编码“{r['org_code']}”不是当前登录机构“{org_code}”")
        for i, r in enumerate(rows)
        if r.get("org_code") not in (None, org_code)
    ]

