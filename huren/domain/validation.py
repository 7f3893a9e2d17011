"""Validation of submitted records against the seed 002 field tables.

Every problem is returned at once, each naming the field (``labmaster.id_no``,
``lab_subitem[3].result_interpre``), the rule broken, and a message in Chinese.
Values are normalised on the way: times to ``datetime``, dates to ``date``, numbers to ``int``,
empty optional strings to ``None``.
"""

from __future__ import annotations

import binascii
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pybase64

from huren.domain import dictionaries, idcard, kinds
from huren.domain.fields import (
    ALIASES,
    LAB_EXAM_REPORT,
    VOID_FILTER,
    Field,
)
from huren.domain.limits import check_text, day_problem, excerpt, text_problem
from huren.domain.pdf import check as pdf_structure
from huren.errors import InvalidInput, Problem

PDF_MAGIC = b"%PDF-"


@dataclass(slots=True)
class Report:
    """A validated lab or exam report: master row, item rows, optional PDF bytes."""

    kind: str  # "lab" | "exam"
    master: dict[str, Any]
    items: list[dict[str, Any]]
    pdf: bytes | None

    @property
    def key(self) -> tuple[str, str, str, int, str]:
        m = self.master
        return (m["org_code"], m["report_form_no"], m["patient_id"], m["event_type"], m["event_no"])




def _parse_dt(text: str) -> datetime | None:
    if len(text) != 19 or text[4] != "-" or text[7] != "-" or text[10] != " " or text[13] != ":" or text[16] != ":":
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _parse_date(text: str) -> date | None:
    if len(text) == 19:  # a full time where a date is asked: keep the date (seed sample does this)
        dt = _parse_dt(text)
        return dt.date() if dt else None
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return str(value)
    raise TypeError


_TYPE_WANTED = {"str": "应为文本", "b64": "应为文本", "num": "应为整数或数字文本", "dt": "应为时间文本", "date": "应为日期文本"}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "布尔值"
    if isinstance(value, int | float):
        return "数字"
    if isinstance(value, Mapping):
        return "对象"
    if isinstance(value, list):
        return "数组"
    return type(value).__name__


def _canon_keys(raw: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in raw.items():
        key = k.lower() if isinstance(k, str) else str(k)
        out[ALIASES.get(key, key)] = v
    return out


# Per spec, the checks as flat tuples (name, kind, size, required, dictionary codes, dictionary
# name, title), built once: validation runs for every field of every report.
_Compiled = tuple[tuple[str, str, int, bool, "frozenset[str] | None", "str | None", str], ...]
_COMPILED: dict[int, tuple[_Compiled, frozenset[str]]] = {}


def _compile(spec: Sequence[Field]) -> tuple[_Compiled, frozenset[str]]:
    got = _COMPILED.get(id(spec))
    if got is None:
        rows = tuple(
            (
                f.name,
                f.kind,
                f.size,
                f.required,
                frozenset(dictionaries.load(f.dictionary)) if f.dictionary else None,
                f.dictionary,
                f.title,
            )
            for f in spec
        )
        got = (rows, frozenset(f.name for f in spec) | {"pdf"})
        _COMPILED[id(spec)] = got
    return got


def check_record(
    raw: Mapping[str, Any], spec: Sequence[Field], where: str, problems: list[Problem], *, flags: Collection[str] = ()
) -> dict[str, Any]:
    """Validate one node's fields; append problems; return the normalised record.

    Text fields take text only, NUMBER fields text or a JSON number, and ``flags`` (yes / no
    fields) also a JSON boolean, as 1 / 0; no value may hold a control or bidi character."""
    rows, names = _compile(spec)
    # Fast path: keys already spelled as the table spells them (the usual case).
    src = raw if names.issuperset(raw.keys()) else _canon_keys(raw)
    rec: dict[str, Any] = {}
    for name, kind, size, required, codes, dic, title in rows:
        value: Any = src.get(name)
        if value.__class__ is str:
            text = value.strip()
        elif value is None:
            text = ""
        elif kind == "num" and value.__class__ in (int, float):  # a JSON number where the seed has NUMBER
            text = str(value)
        elif value.__class__ is bool and name in flags:
            text = "1" if value else "0"
        else:  # no number or boolean silently turned into text: the sender's value was not text
            problems.append(Problem(f"{where}.{name}", "type", f"{title}（{name}）{_TYPE_WANTED[kind]}，收到{_json_type(value)}"))
            rec[name] = None
            continue
        if not text.isprintable() and (reason := text_problem(text)):  # printable: nothing to refuse (fast)
            problems.append(Problem(f"{where}.{name}", "text", f"{title}（{name}）{reason}"))
            rec[name] = None
            continue
        if not text:
            if required:
                problems.append(Problem(f"{where}.{name}", "required", f"{title}（{name}）为必填项，不能为空"))
            rec[name] = None
            continue
        if kind == "str":
            value = text
            if len(text) > size:
                problems.append(
                    Problem(f"{where}.{name}", "max_length", f"{title}（{name}）长度不能超过{size}个字符，实际{len(text)}")
                )
        elif kind == "dt":
            value = _parse_dt(text)
            if value is None:
                problems.append(
                    Problem(
                        f"{where}.{name}", "datetime_format", f"{title}（{name}）格式应为 YYYY-MM-DD hh24:mi:ss，收到“{excerpt(text)}”"
                    )
                )
            elif reason := day_problem(value):
                problems.append(Problem(f"{where}.{name}", "date_range", f"{title}（{name}）{reason}"))
        elif kind == "date":
            value = _parse_date(text)
            if value is None:
                problems.append(Problem(f"{where}.{name}", "date_format", f"{title}（{name}）格式应为 YYYY-MM-DD，收到“{excerpt(text)}”"))
            elif reason := day_problem(value):
                problems.append(Problem(f"{where}.{name}", "date_range", f"{title}（{name}）{reason}"))
        elif kind == "num":
            digits = text  # the seed's NUMBER fields are codes, counts and sequence numbers: never negative
            if not (digits.isascii() and digits.isdigit()):
                problems.append(Problem(f"{where}.{name}", "integer", f"{title}（{name}）应为非负整数，收到“{excerpt(text)}”"))
                value = None
            else:
                value = int(text)
                if len(digits) > size:
                    problems.append(Problem(f"{where}.{name}", "max_digits", f"{title}（{name}）不能超过{size}位数字"))
        else:
            value = text
        if codes is not None and value is not None and text not in codes:
            problems.append(
                Problem(
                    f"{where}.{name}",
                    "dictionary",
                    f"{title}（{name}）的值“{excerpt(text)}”不在字典 {dic}（{dictionaries.TITLES[dic or '']}）中",
                )
            )
        rec[name] = value
    return rec


def canonical_id(id_type: str | None, id_no: str | None) -> str | None:
    """Resident ID numbers are stored and looked up with an upper-case check character X."""
    return id_no.upper() if id_type == "01" and id_no else id_no


def check_patient(id_type: str, id_no: str) -> str:
    """A patient named in a question (any channel): the canonical ID number, or InvalidInput naming
    the field. The lengths are the seed's (id_no VARCHAR2(128), id_type_code CHAR(2))."""
    problems: list[Problem] = []
    if not id_no:
        problems.append(Problem("id_no", "required", "身份证件号码不能为空"))
    check_text(id_no, "id_no", "身份证件号码", problems, 128)
    check_text(id_type, "id_type_code", "身份证件类别代码", problems, 2)
    if not problems:
        check_identity(id_type, id_no, "id_no", problems)
    if problems:
        raise InvalidInput("患者身份证件无效", problems)
    return canonical_id(id_type, id_no) or id_no


def check_identity(id_type: str | None, id_no: str | None, path: str, problems: list[Problem]) -> None:
    if id_type == "01" and id_no:
        reason = idcard.problem(id_no)
        if reason:
            problems.append(Problem(path, "id_checksum", reason))


def decode_pdf(text: Any, path: str, max_bytes: int, problems: list[Problem]) -> bytes | None:
    """Base64 text → PDF bytes, checked for the PDF signature and the size limit."""
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        problems.append(Problem(path, "base64", "报告单据PDF（pdf）应为Base64编码的文本"))
        return None
    if len(text) > (max_bytes * 4) // 3 + 8:
        problems.append(Problem(path, "pdf_size", f"报告单据PDF（pdf）超过大小上限 {max_bytes} 字节"))
        return None
    try:
        try:  # the usual case: one unbroken line (pybase64: SIMD, far faster than binascii on a PDF)
            data = pybase64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            data = pybase64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        problems.append(Problem(path, "base64", "报告单据PDF（pdf）不是有效的Base64编码"))
        return None
    check_pdf(data, path, max_bytes, problems)
    return data


def check_pdf(data: bytes, path: str, max_bytes: int, problems: list[Problem]) -> bool:
    if len(data) > max_bytes:
        problems.append(Problem(path, "pdf_size", f"报告单据PDF超过大小上限 {max_bytes} 字节（实际 {len(data)} 字节）"))
        return False
    findings = pdf_structure(data)  # header, %%EOF, startxref / xref, an object, no markup or script
    problems.extend(Problem(path, rule, message) for rule, message in findings)
    return not findings


def _node(payload: Mapping[str, Any], name: str, problems: list[Problem]) -> Mapping[str, Any] | None:
    node = payload.get(name)
    if isinstance(node, list) and len(node) == 1:
        node = node[0]
    if not isinstance(node, Mapping):
        problems.append(Problem(name, "node", f"缺少 {name} 节点（应为一个对象）"))
        return None
    return node


def validate_report(kind: str, payload: Any, *, max_pdf_bytes: int) -> tuple[Report | None, list[Problem]]:
    """Validate a ``{"labmaster": {...}, "lab_subitem": [...]}`` (or exam) payload."""
    desc = kinds.BY_NAME[kind]
    master_name, item_name, master_spec, item_spec = desc.master_node, desc.item_node, desc.master_fields, desc.item_fields
    problems: list[Problem] = []
    if not isinstance(payload, Mapping):
        return None, [Problem("", "node", f"请求体应为包含 {master_name} 与 {item_name} 的对象")]
    raw_master = _node(payload, master_name, problems)
    raw_items = payload.get(item_name)
    if not isinstance(raw_items, list) or not raw_items:
        problems.append(Problem(item_name, "node", f"缺少 {item_name} 节点，或其中没有任何项目"))
        raw_items = []
    if raw_master is None:
        return None, problems
    master = check_record(raw_master, master_spec, master_name, problems)
    check_identity(master["id_type_code"], master["id_no"], f"{master_name}.id_no", problems)
    master["id_no"] = canonical_id(master["id_type_code"], master["id_no"])
    raw_pdf = raw_master.get("pdf")
    if raw_pdf is None:  # keys are case-insensitive: the seed's table spells it "Pdf"
        raw_pdf = next((v for k, v in raw_master.items() if isinstance(k, str) and k.lower() == "pdf"), None)
    pdf = decode_pdf(raw_pdf, f"{master_name}.pdf", max_pdf_bytes, problems)
    items: list[dict[str, Any]] = []
    seen: set[Any] = set()
    item_key = desc.item_key
    for i, raw in enumerate(raw_items):
        where = f"{item_name}[{i}]"
        if not isinstance(raw, Mapping):
            problems.append(Problem(where, "node", "项目应为一个对象"))
            continue
        item = check_record(raw, item_spec, where, problems)
        for ref in ("org_code", "event_no", "report_form_no"):
            if item[ref] is not None and master[ref] is not None and item[ref] != master[ref]:
                problems.append(
                    Problem(f"{where}.{ref}", "consistency", f"子项的 {ref}“{excerpt(item[ref])}”与主节点“{excerpt(master[ref])}”不一致")
                )
        k = item[item_key]
        if k is not None:
            if k in seen:
                problems.append(Problem(f"{where}.{item_key}", "duplicate", f"同一报告中 {item_key}“{excerpt(str(k))}”重复"))
            seen.add(k)
        items.append(item)
    if problems:
        return None, problems
    return Report(kind, master, items, pdf), problems


def raw_key(kind: str, payload: Any) -> tuple[str, ...] | None:
    """The primary key as sent, even when the report failed validation (to match a later fix)."""
    master_name = kinds.BY_NAME[kind].master_node
    node = payload.get(master_name) if isinstance(payload, Mapping) else None
    if isinstance(node, list) and len(node) == 1:
        node = node[0]
    if not isinstance(node, Mapping):
        return None
    src = _canon_keys(node)
    try:
        key = tuple(_text(src.get(k)) for k in ("org_code", "report_form_no", "patient_id", "event_type", "event_no"))
    except TypeError:
        return None
    return key if all(key) else None


def validate_daily(payload: Any) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Validate a ``{"lab_exam_report": [...]}`` payload of daily counts."""
    problems: list[Problem] = []
    rows = payload.get("lab_exam_report") if isinstance(payload, Mapping) else None
    if not isinstance(rows, list) or not rows:
        return [], [Problem("lab_exam_report", "node", "缺少 lab_exam_report 节点，或其中没有任何记录")]
    out: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for i, raw in enumerate(rows):
        where = f"lab_exam_report[{i}]"
        if not isinstance(raw, Mapping):
            problems.append(Problem(where, "node", "记录应为一个对象"))
            continue
        rec = check_record(raw, LAB_EXAM_REPORT, where, problems)
        key = (rec["org_code"], rec["date_t"], rec["dept_code"])
        if key in seen:
            problems.append(Problem(f"{where}.dept_code", "duplicate", f"同一日期科室“{excerpt(rec['dept_code'])}”重复上报"))
        seen.add(key)
        out.append(rec)
    return (out if not problems else []), problems


def validate_void(payload: Any) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Validate a void filter (org_code, report_form_no, patient_id, event_type, event_no, id_no, id_type)."""
    if not isinstance(payload, Mapping):
        return None, [Problem("", "node", "作废条件应为一个对象")]
    problems: list[Problem] = []
    rec = check_record(payload, VOID_FILTER, "filter", problems)
    return (rec if not problems else None), problems
