"""The domain's range, length and text rules (huren.domain.limits), as every channel applies them."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from huren.domain import limits
from huren.domain.fields import LAB_EXAM_REPORT
from huren.domain.recognition import Visit
from huren.domain.validation import check_record
from huren.errors import InvalidInput, Problem
from tests import samples


@pytest.mark.parametrize("ch", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\u202a", "\u202e", "\u2066", "\u2069", "\ud800"])
def test_control_bidi_and_surrogate_characters_are_named(ch: str) -> None:
    reason = limits.text_problem(f"ab{ch}c")
    assert reason is not None and f"U+{ord(ch):04X}" in reason and "第3个字符" in reason


@pytest.mark.parametrize("text", ["普通文本", "line\nbreak\ttab\r", "Ünïcödé ‐ — “引号”", ""])
def test_ordinary_text_passes(text: str) -> None:
    assert limits.text_problem(text) is None


def test_excerpt_caps_what_a_message_echoes() -> None:
    assert limits.excerpt("short") == "short"
    cut = limits.excerpt("x" * 10_000)
    assert len(cut) < 60 and cut.endswith("（共10000个字符）")


def test_days_and_integers_within_bounds() -> None:
    assert limits.check_day(date(2024, 1, 1), "day_to") == date(2024, 1, 1)
    for day in (date(1, 1, 1), date(9999, 12, 31), date(1899, 12, 31), date(2100, 1, 1)):
        with pytest.raises(InvalidInput) as err:
            limits.check_day(day, "day_to", "结束日期")
        assert err.value.problems[0].field == "day_to" and "结束日期" in err.value.message
    assert limits.check_int(limits.MAX_INT, "offset") == limits.MAX_INT
    for n in (-1, 2**63):
        with pytest.raises(InvalidInput) as err:
            limits.check_int(n, "offset")
        assert err.value.problems[0].rule == "range"


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("event_no", "x" * 129, "max_length"),
        ("doc_name", "张\u202e三", "text"),
        ("dept_code", "A\x00", "text"),
        ("doc_code", 9050, "type"),
    ],
)
def test_a_visit_is_checked_wherever_it_is_built(field: str, value: Any, rule: str) -> None:
    with pytest.raises(InvalidInput) as err:
        Visit(**{field: value})
    assert [(p.field, p.rule) for p in err.value.problems] == [(field, rule)]
    assert Visit(event_no="x" * 128).event_no == "x" * 128


def _daily(**changes: Any) -> list[Problem]:
    row = samples.daily()["lab_exam_report"][0] | changes
    problems: list[Problem] = []
    check_record(row, LAB_EXAM_REPORT, "r", problems)
    return problems


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"dept_name": 12}, "type"),  # a number is not text
        ({"dept_name": 1.5}, "type"),
        ({"dept_name": False}, "type"),  # nor a boolean
        ({"lab_num": True}, "type"),  # a boolean is not a number either
        ({"dept_code": "K\x00"}, "text"),
        ({"dept_name": "内科\u202d"}, "text"),
        ({"date_t": "0001-01-01"}, "date_range"),
        ({"last_update_dtime": "9999-12-31 23:59:59"}, "date_range"),
    ],
)
def test_seed_records_refuse_non_text_and_unclean_text(changes: dict[str, Any], rule: str) -> None:
    assert [p.rule for p in _daily(**changes)] == [rule]


def test_seed_records_take_json_numbers_for_number_fields_and_booleans_only_for_flags() -> None:
    assert _daily(lab_num=12, exam_num="3") == []
    problems: list[Problem] = []
    rec = check_record({"lab_num": True}, [f for f in LAB_EXAM_REPORT if f.name == "lab_num"], "r", problems, flags=("lab_num",))
    assert problems == [] and rec["lab_num"] == 1


def test_a_huge_value_is_echoed_as_an_excerpt() -> None:
    [p] = _daily(date_t="9" * 100_000)
    assert len(p.message) < 200


def test_day_ranges_and_lateness_are_bounded_once_for_every_channel() -> None:
    from datetime import date, timedelta

    from huren.domain.limits import MAX_LATE_HOURS, MAX_RANGE_DAYS, check_day_range, check_late_hours

    start = date(2026, 1, 1)
    check_day_range(start, start + timedelta(days=MAX_RANGE_DAYS - 1))  # a whole (leap) year
    with pytest.raises(InvalidInput) as err:
        check_day_range(start, start + timedelta(days=MAX_RANGE_DAYS))
    assert err.value.problems[0].field == "day_to" and str(MAX_RANGE_DAYS) in err.value.problems[0].message
    with pytest.raises(InvalidInput) as err:
        check_day_range(start, start - timedelta(days=1))
    assert err.value.problems[0].field == "day_from"
    assert check_late_hours(24) == 24 and check_late_hours(MAX_LATE_HOURS) == MAX_LATE_HOURS
    for bad in (0, -1, MAX_LATE_HOURS + 1, float("nan"), float("inf")):
        with pytest.raises(InvalidInput) as err:
            check_late_hours(bad)
        assert err.value.problems[0].field == "late_hours"
