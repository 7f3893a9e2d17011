"""Report kinds: one descriptor per kind, the one place that knows how a lab (检验) report differs
from an exam (检查) report — its seed 002 nodes and field tables, the field that carries an item's
standard code, its record type in the decision records (STD record type: 1 检查, 2 检验), its
Chinese name. Imaging studies and EMR documents will be more kinds here.

Code that branches on a kind asks its descriptor instead of comparing strings::

    k = kinds.get(kind)         # InvalidInput naming the field for an unknown kind
    k.item_code_field           # "class_code" (lab) / "exam_item_code" (exam)
"""

from __future__ import annotations

from dataclasses import dataclass

from huren.domain.fields import EXAM_SUBITEM, EXAMMASTER, LAB_SUBITEM, LABMASTER, Field
from huren.errors import InvalidInput, Problem


@dataclass(frozen=True, slots=True)
class Kind:
    name: str  # the kind's key in URLs, tables and code: "lab" | "exam"
    zh: str  # what a person reads: 检验 / 检查
    master_node: str  # the seed 002 XML / JSON node of the report's master row
    item_node: str  # ... and of its item rows
    master_fields: tuple[Field, ...]
    item_fields: tuple[Field, ...]
    item_code_field: str  # the item field holding the standard item code the catalog is keyed by
    item_name_field: str  # ... and its standard name
    item_key: str  # the item field that tells one item of a report from another (and orders them)
    record_type: str  # record_type / type in sehr_accept_record, sehr_quote_record, reminder_log
    order_key: str  # its list in an exists-for-order question and its "type" in the recent list
    report_table: str
    item_table: str

    @property
    def report_name(self) -> str:
        """检验报告 / 检查报告."""
        return f"{self.zh}报告"


LAB = Kind(
    name="lab",
    zh="检验",
    master_node="labmaster",
    item_node="lab_subitem",
    master_fields=LABMASTER,
    item_fields=LAB_SUBITEM,
    item_code_field="class_code",
    item_name_field="class_name",
    item_key="serial_no",
    record_type="2",
    order_key="lab",
    report_table="lab_report",
    item_table="lab_item",
)

EXAM = Kind(
    name="exam",
    zh="检查",
    master_node="exammaster",
    item_node="exam_subitem",
    master_fields=EXAMMASTER,
    item_fields=EXAM_SUBITEM,
    item_code_field="exam_item_code",
    item_name_field="exam_item_name",
    item_key="exam_item_code",
    record_type="1",
    order_key="check",
    report_table="exam_report",
    item_table="exam_item",
)

#: every report kind, in the order pages and answers list them (exam first, as the seeds do)
ALL: tuple[Kind, ...] = (EXAM, LAB)
BY_NAME: dict[str, Kind] = {k.name: k for k in ALL}
BY_RECORD_TYPE: dict[str, Kind] = {k.record_type: k for k in ALL}
BY_ZH: dict[str, Kind] = {k.zh: k for k in ALL}
BY_ORDER_KEY: dict[str, Kind] = {k.order_key: k for k in ALL}
NAMES: tuple[str, ...] = tuple(k.name for k in ALL)


def get(name: str, field: str = "kind") -> Kind:
    """The descriptor of a kind by its key (``lab`` / ``exam``) or Chinese name (检验 / 检查)."""
    k = BY_NAME.get(name) or BY_ZH.get(name)
    if k is None:
        message = "报告类型应为 lab（检验）或 exam（检查）"
        raise InvalidInput(message, [Problem(field, "dictionary", message)])
    return k


def of_record_type(record_type: str, field: str = "record_type") -> Kind:
    """The kind of a decision record's type (1 检查, 2 检验)."""
    k = BY_RECORD_TYPE.get(record_type)
    if k is None:
        message = "记录类型应为 1（检查）或 2（检验）"
        raise InvalidInput(message, [Problem(field, "dictionary", message)])
    return k


def zh(name: str) -> str:
    """检验 / 检查 for a kind key; the key itself when unknown (for display only)."""
    k = BY_NAME.get(name)
    return k.zh if k else name
