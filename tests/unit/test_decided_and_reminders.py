"""Pure pieces of issue 10 §2.2 / §2.4: an exists answer marked with the visit's recorded
decisions (``huren.domain.decisions.mark_decided``), and reminders split by kind
(``huren.services.reminders``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from huren.context import Principal
from huren.domain.decisions import mark_decided
from huren.domain.recognition import Visit
from huren.services.reminders import _by_kind, reminder_rows, split_codes


def _answer() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    exams = [{"org_code": "A", "report_form_no": "E1", "item_code": "115"}]
    labs = [{"org_code": "A", "report_form_no": "L1", "item": [{"item_code": "ALB"}, {"item_code": "TP"}]},
            {"org_code": "B", "report_form_no": "L9", "item": [{"item_code": "ALB"}]}]
    return exams, labs


def _rec(type_: str, org: str, form: str, code: str, acc: str, at: str, reason: str = "") -> dict[str, Any]:
    return {"type": type_, "hr_org_code": org, "hr_report_form_no": form, "code": code, "is_accept": acc,
            "reason": reason, "record_time": datetime.fromisoformat(at)}


def test_nothing_recorded_leaves_every_item_pending() -> None:
    exams, labs = _answer()
    assert mark_decided(exams, labs, []) == {("exam", "115"), ("lab", "ALB"), ("lab", "TP")}
    assert "decision" not in exams[0] and all("decision" not in i for m in labs for i in m["item"])


def test_the_latest_decision_per_report_item_is_kept() -> None:
    exams, labs = _answer()
    pending = mark_decided(exams, labs, [
        _rec("2", "A", "L1", "ALB", "2", "2026-11-20 13:00:00", "4"),
        _rec("2", "A", "L1", "ALB", "1", "2026-11-20 13:05:00"),
        _rec("1", "A", "E1", "115", "2", "2026-11-20 13:06:00", "5"),
        _rec("1", "A", "L1", "TP", "1", "2026-11-20 13:07:00"),  # type 1 is exam: not the lab item TP
    ])
    assert exams[0]["decision"] == {"is_accept": "2", "reason": "5", "record_time": "2026-11-20 13:06:00"}
    assert labs[0]["item"][0]["decision"] == {"is_accept": "1", "reason": "", "record_time": "2026-11-20 13:05:00"}
    assert "decision" not in labs[0]["item"][1]
    assert "decision" not in labs[1]["item"][0]  # the same code in another report is still to decide
    assert pending == {("lab", "ALB"), ("lab", "TP")}


def test_reminder_rows_one_per_kind_shown() -> None:
    who = Principal("H1", "doc", "doctor")
    at = datetime(2026, 11, 20, 13, 0)
    rows = reminder_rows(at, who, Visit(event_no="V1"), "01", "X", {"exam": 2, "lab": 3}, {"exam": ["115"], "lab": ["TP", "ALB"]})
    assert [(r["kind"], r["ordered"], r["recognizable"], r["item_codes"]) for r in rows] == [
        ("exam", 2, 1, "exam:115"), ("lab", 3, 2, "lab:ALB,lab:TP"),
    ]
    assert reminder_rows(at, who, Visit(), "01", "X", {"exam": 1}, {"exam": [], "lab": []}) == []


def test_an_uploaded_reminder_takes_its_kind_from_its_codes() -> None:
    assert split_codes("exam:115, lab:ALB,lab:TP,,RAW") == {"exam": ["115"], "lab": ["ALB", "TP"], "": ["RAW"]}
    base = {"action": "reminder", "kind": "", "recognizable": 3, "item_codes": "exam:115,lab:ALB,lab:TP"}
    assert [(r["kind"], r["recognizable"], r["item_codes"]) for r in _by_kind(base)] == [
        ("exam", 1, "exam:115"), ("lab", 2, "lab:ALB,lab:TP"),
    ]
    assert _by_kind(base | {"item_codes": "lab:ALB"})[0]["kind"] == "lab"
    assert _by_kind(base | {"item_codes": "250301002"}) == [base | {"item_codes": "250301002"}]  # no kind named: kept as sent
    view = {"action": "view", "kind": "", "item_codes": "exam:1,lab:2"}
    assert _by_kind(view) == [view]
