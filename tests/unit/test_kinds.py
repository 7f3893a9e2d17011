"""The report-kind descriptors agree with the seed's field tables, dictionaries and the store."""

from __future__ import annotations

import pytest

from huren.domain import dictionaries, kinds
from huren.errors import InvalidInput
from huren.store import tables


@pytest.mark.parametrize("kind", kinds.ALL, ids=lambda k: k.name)
def test_descriptor_matches_fields_and_tables(kind: kinds.Kind) -> None:
    item_fields = {f.name for f in kind.item_fields}
    assert kind.item_code_field in item_fields
    assert kind.item_name_field in item_fields
    assert kind.item_key in item_fields
    assert kind.master_node.endswith("master") and kind.item_node.endswith("_subitem")
    assert kind.report_table in tables.metadata.tables
    assert kind.item_table in tables.metadata.tables
    # the record type is the seed's RECORD_TYPE code whose name is the kind's Chinese name
    assert dictionaries.load("RECORD_TYPE")[kind.record_type] == kind.zh


def test_order_keys_are_the_exists_question_s_lists() -> None:
    """ExistsReCureInfo asks with ``check`` (exam items) and ``lab`` (lab sub-items)."""
    assert {k.order_key: k.name for k in kinds.ALL} == {"check": "exam", "lab": "lab"}
    assert all(kinds.BY_ORDER_KEY[k.order_key] is k for k in kinds.ALL)
    assert len({k.order_key for k in kinds.ALL}) == len({k.record_type for k in kinds.ALL}) == len(kinds.ALL)


def test_lookups() -> None:
    assert kinds.get("lab") is kinds.LAB and kinds.get("检查") is kinds.EXAM
    assert kinds.of_record_type("1") is kinds.EXAM and kinds.of_record_type("2") is kinds.LAB
    assert kinds.zh("lab") == "检验" and kinds.LAB.report_name == "检验报告"
    with pytest.raises(InvalidInput) as err:
        kinds.get("xray", "report_kind")
    assert err.value.problems[0].field == "report_kind"
    with pytest.raises(InvalidInput):
        kinds.of_record_type("3")
