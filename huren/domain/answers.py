"""The exists-for-order answer (XJ-1.4.2.2 ExistsReCureInfo, HZ-15): which of the ordered exam
items (``check``) and lab sub-items (``lab``) have a recognizable recent result, by report.

One answer, built here, by the platform (``huren.services.recognition``, from its store) and by
the hospital's gateway (``huren.gateway.preload_cache``, from the recognizable detail it holds) —
so the two cannot drift apart. Pure: each side resolves what it has (the catalog, the code map),
judges its prior items with ``huren.domain.recognition`` and hands the recognizable ones here as
``Hit``s, in its order (newest first).

Ordered codes: a code of the standard catalog is itself; another is looked up in the
institution's code map; unmapped codes are listed (``unmapped``), never guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from huren.domain.limits import check_text
from huren.errors import InvalidInput, Problem

#: the most ordered items one exists-for-order question may carry (a prescription, not a catalog)
MAX_ORDERED = 200
#: the longest ordered code (the catalog's code column, the accept record's ``code`` VARCHAR2(256))
MAX_CODE = 256
#: a report's attributes in an answer, in their order (``report_id``: the platform's opaque ref
#: of the report, a string; huren.services.refs)
REPORT_FIELDS = (
    "report_id", "org_code", "org_name", "report_form_no", "event_no", "id_no", "id_type_code",
    "event_type", "report_title", "dtime", "url",
)
#: an item's answer fields after item_code / item_name / ordered_code, in their order
EXAM_ITEM_FIELDS = ("expired_time", "pacs_url", "conclusion")
LAB_ITEM_FIELDS = ("result_value", "lower_value", "upper_value", "result_unit", "result_interpre", "expired_time")


def check_orders(check: Sequence[str], lab: Sequence[str]) -> None:
    """InvalidInput when nothing is ordered, more than ``MAX_ORDERED`` items are, or a code is
    longer than ``MAX_CODE`` or holds a control or bidi character (every channel: REST, SOAP, the
    gateway)."""
    if not check and not lab:
        raise InvalidInput("没有所开项目", [Problem("check", "required", "检查项目（check）与检验子项（lab）不能同时为空")])
    if len(check) + len(lab) > MAX_ORDERED:
        raise InvalidInput(
            "所开项目过多", [Problem("check", "max_items", f"一次最多查询 {MAX_ORDERED} 个项目（检查项目与检验子项合计）")]
        )
    problems: list[Problem] = []
    for name, title, codes in (("check", "检查项目编码", check), ("lab", "检验子项编码", lab)):
        for i, code in enumerate(codes):
            check_text(code, f"{name}[{i}]", title, problems, MAX_CODE)
    if problems:
        raise InvalidInput("所开项目编码无效", problems)


@dataclass(frozen=True, slots=True)
class Orders:
    """The ordered codes resolved: kind → {ordered code: standard code, "" when unmapped}."""

    resolved: Mapping[str, Mapping[str, str]]

    @property
    def ordered(self) -> int:
        return sum(len(codes) for codes in self.resolved.values())

    @property
    def unmapped(self) -> list[dict[str, str]]:
        return [{"kind": kind, "code": c} for kind in ("exam", "lab") for c, s in self.resolved.get(kind, {}).items() if not s]

    def standard(self, kind: str) -> list[str]:
        """The standard codes ordered of ``kind`` (sorted, once each)."""
        return sorted({s for s in self.resolved.get(kind, {}).values() if s})

    def ordered_as(self, kind: str) -> dict[str, str]:
        """standard code → the code it was ordered as."""
        return {s: c for c, s in self.resolved.get(kind, {}).items() if s}


def local_codes(kind: str, codes: Sequence[str], is_standard: Callable[[str, str], bool]) -> list[str]:
    """The ordered codes of ``kind`` that are not standard (to look up in the code map), once each."""
    return [c for c in dict.fromkeys(codes) if not is_standard(kind, c)]


def resolve_orders(
    check: Sequence[str], lab: Sequence[str], is_standard: Callable[[str, str], bool], mapped: Mapping[str, Mapping[str, str]]
) -> Orders:
    """Resolve ordered codes: standard ones are themselves, others what the code map ``mapped``
    (kind → {local: standard}) says, or unmapped."""
    resolved: dict[str, dict[str, str]] = {}
    for kind, codes in (("exam", check), ("lab", lab)):
        table = mapped.get(kind, {})
        resolved[kind] = {c: (c if is_standard(kind, c) else table.get(c, "")) for c in dict.fromkeys(codes)}
    return Orders(resolved)


@dataclass(frozen=True, slots=True)
class Hit:
    """One recognizable prior item (the rule has said yes at the asker's now): its report's
    attributes (``REPORT_FIELDS``, and ``class_name`` for a lab report), its standard code and
    name, and its other answer fields (``EXAM_ITEM_FIELDS`` / ``LAB_ITEM_FIELDS``)."""

    kind: str
    report: Mapping[str, Any]
    code: str
    name: str
    fields: Mapping[str, Any]


def exists_answer(orders: Orders, hits: Iterable[Hit]) -> dict[str, Any]:
    """The answer: ``exammaster`` (one entry per recognizable exam item), ``labmaster`` (per
    report, its recognizable ordered sub-items), ``unmapped``, ``ordered`` (codes asked) and
    ``recognizable`` (distinct ordered items with a recognizable result). Hits of codes not
    ordered are left out."""
    ordered_as = {kind: orders.ordered_as(kind) for kind in ("exam", "lab")}
    found: set[tuple[str, str]] = set()
    exams: list[dict[str, Any]] = []
    labs: dict[Any, dict[str, Any]] = {}
    for h in hits:
        ordered = ordered_as.get(h.kind, {}).get(h.code)
        if not ordered:
            continue
        found.add((h.kind, h.code))
        item = {"item_code": h.code, "item_name": h.name, "ordered_code": ordered} | dict(h.fields)
        if h.kind == "exam":
            exams.append(dict(h.report) | item)
        else:
            entry = labs.get(h.report["report_id"])
            if entry is None:
                entry = labs[h.report["report_id"]] = dict(h.report) | {"item": []}
            entry["item"].append(item)
    return {
        "labmaster": list(labs.values()), "exammaster": exams, "unmapped": orders.unmapped,
        "ordered": orders.ordered, "recognizable": len(found),
    }
