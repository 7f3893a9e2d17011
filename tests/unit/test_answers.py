"""The exists-for-order answer (``huren.domain.answers``), one pure function used by the platform
(``huren.services.recognition``) and the gateway's preload cache; that both give the same answer
for the same question is checked end to end in
``tests/integration/test_gateway_preload.py::test_exists_is_answered_locally_as_the_platform_answers``."""

from __future__ import annotations

from typing import Any

import pytest

from huren.domain import answers
from huren.errors import InvalidInput

STANDARD = {("exam", "E1"), ("exam", "E2"), ("lab", "L1"), ("lab", "L2")}
CODE_MAP = {"lab": {"ALB": "L1", "X": "L2"}, "exam": {"CT": "E1"}}


def _std(kind: str, code: str) -> bool:
    return (kind, code) in STANDARD


def _report(rid: int, kind: str) -> dict[str, Any]:
    r: dict[str, Any] = {k: f"{k}-{rid}" for k in answers.REPORT_FIELDS} | {"report_id": rid}
    return r | {"class_name": f"panel-{rid}"} if kind == "lab" else r


def _hit(kind: str, rid: int, code: str) -> answers.Hit:
    names = answers.LAB_ITEM_FIELDS if kind == "lab" else answers.EXAM_ITEM_FIELDS
    return answers.Hit(kind, _report(rid, kind), code, f"name-{code}", {k: f"{k}-{code}" for k in names})


def test_ordered_codes_are_standard_mapped_or_unmapped() -> None:
    assert answers.local_codes("lab", ["L1", "ALB", "ALB", "NOPE"], _std) == ["ALB", "NOPE"]
    orders = answers.resolve_orders(["E1", "CT", "CT"], ["ALB", "L1", "NOPE"], _std, CODE_MAP)
    assert orders.resolved == {"exam": {"E1": "E1", "CT": "E1"}, "lab": {"ALB": "L1", "L1": "L1", "NOPE": ""}}
    assert orders.ordered == 5 and orders.unmapped == [{"kind": "lab", "code": "NOPE"}]
    assert orders.standard("exam") == ["E1"] and orders.standard("lab") == ["L1"]
    assert orders.ordered_as("lab") == {"L1": "L1"}  # the last code ordered as L1 names it


def test_the_answer_groups_labs_by_report_and_counts_distinct_items() -> None:
    orders = answers.resolve_orders(["CT"], ["ALB", "X", "NOPE"], _std, CODE_MAP)
    hits = [
        _hit("exam", 7, "E1"), _hit("exam", 5, "E1"), _hit("exam", 5, "E2"),  # E2 not ordered: left out
        _hit("lab", 9, "L1"), _hit("lab", 9, "L2"), _hit("lab", 3, "L1"),
    ]
    answer = answers.exists_answer(orders, hits)
    assert [(e["report_id"], e["item_code"], e["ordered_code"]) for e in answer["exammaster"]] == [(7, "E1", "CT"), (5, "E1", "CT")]
    assert [(m["report_id"], [(i["item_code"], i["ordered_code"]) for i in m["item"]]) for m in answer["labmaster"]] == [
        (9, [("L1", "ALB"), ("L2", "X")]), (3, [("L1", "ALB")]),
    ]
    assert (answer["ordered"], answer["recognizable"], answer["unmapped"]) == (4, 3, [{"kind": "lab", "code": "NOPE"}])
    # the answer's shape, in its order
    exam = answer["exammaster"][0]
    assert list(exam) == [*answers.REPORT_FIELDS, "item_code", "item_name", "ordered_code", *answers.EXAM_ITEM_FIELDS]
    lab = answer["labmaster"][0]
    assert list(lab) == [*answers.REPORT_FIELDS, "class_name", "item"]
    assert list(lab["item"][0]) == ["item_code", "item_name", "ordered_code", *answers.LAB_ITEM_FIELDS]
    assert lab["item"][0]["item_name"] == "name-L1" and lab["class_name"] == "panel-9"


def test_nothing_recognizable_and_bad_orders() -> None:
    empty = answers.exists_answer(answers.resolve_orders(["E1"], [], _std, {}), [])
    assert empty == {"labmaster": [], "exammaster": [], "unmapped": [], "ordered": 1, "recognizable": 0}
    with pytest.raises(InvalidInput) as nothing:
        answers.check_orders([], [])
    assert nothing.value.problems[0].field == "check"
    answers.check_orders(["E1"] * 100, ["L1"] * 100)
    with pytest.raises(InvalidInput) as many:
        answers.check_orders(["E1"] * 100, ["L1"] * 101)
    assert many.value.problems[0].rule == "max_items"
