"""The recognition rule (huren/domain/recognition.py): boundaries, each refusal, properties."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from huren.domain.recognition import REASONS, CatalogRule, PriorItem, judge, recognizable_codes
from huren.domain.regions import split_scope

T0 = datetime(2026, 11, 1, 9, 30, 0)
RULE = CatalogRule("lab", "250301002", "血清白蛋白测定", True, 30, 2, ("65",))
ITEM = PriorItem("lab", "250301002", 1, T0, False, 3, "650102")


def test_recognizable_within_validity() -> None:
    v = judge(ITEM, RULE, T0 + timedelta(days=1), "250301002")
    assert v.recognizable and v.reason is None
    assert v.expired_time == datetime(2026, 12, 1, 9, 30, 0)


def test_validity_boundary_one_second() -> None:
    expiry = T0 + timedelta(days=30)
    assert judge(ITEM, RULE, expiry - timedelta(seconds=1)).recognizable
    at = judge(ITEM, RULE, expiry)
    assert not at.recognizable and at.reason == "expired"
    after = judge(ITEM, RULE, expiry + timedelta(seconds=1))
    assert not after.recognizable and after.reason == "expired"


def test_each_refusal_names_its_reason() -> None:
    now = T0 + timedelta(days=1)
    cases = {
        "voided": (replace(ITEM, voided=True), RULE),
        "flag_not_recognizable": (replace(ITEM, recognition=0), RULE),
        "catalog_not_recognizable": (ITEM, replace(RULE, recognizable=False)),
        "level": (replace(ITEM, org_level=1), RULE),
        "region": (replace(ITEM, org_region="110105"), RULE),
        "not_in_catalog": (ITEM, None),
    }
    for reason, (item, rule) in cases.items():
        v = judge(item, rule, now)
        assert (v.recognizable, v.reason) == (False, reason), reason
        assert v.reason_text == REASONS[reason]


def test_order_must_match_code_and_kind() -> None:
    now = T0 + timedelta(days=1)
    assert judge(ITEM, RULE, now, "250301001").reason == "not_ordered"
    exam_rule = replace(RULE, kind="exam")
    assert judge(ITEM, exam_rule, now, "250301002").reason == "not_ordered"


def test_level_equal_to_minimum_is_enough() -> None:
    assert judge(replace(ITEM, org_level=2), RULE, T0).recognizable


def test_empty_scope_is_anywhere_and_prefixes_are_normalised() -> None:
    anywhere = replace(RULE, region_scope=())
    assert judge(replace(ITEM, org_region="110105"), anywhere, T0).recognizable
    city = replace(RULE, region_scope=split_scope("650100"))  # a city code covers its districts
    assert judge(replace(ITEM, org_region="650102"), city, T0).recognizable
    assert not judge(replace(ITEM, org_region="652301"), city, T0).recognizable
    assert split_scope("65, 650100;6523 ，652900；6501、6502") == ("65", "650100", "6523", "652900", "6501", "6502")


def test_partial_panel() -> None:
    """Lab recognition is per sub-item: in one panel some items pass and some do not."""
    rules = {
        ("lab", "250301002"): RULE,
        ("lab", "250301001"): replace(RULE, code="250301001", validity_days=3),
        ("lab", "250101015"): replace(RULE, code="250101015", recognizable=False),
    }
    panel = [
        ITEM,
        replace(ITEM, code="250301001"),  # 3-day item, expired at day 5
        replace(ITEM, code="250101015"),  # catalog says no
        replace(ITEM, code="LOCAL-AG", recognition=0),  # not in the catalog
    ]
    assert recognizable_codes(panel, rules, T0 + timedelta(days=5)) == {("lab", "250301002")}
    assert recognizable_codes(panel, rules, T0 + timedelta(days=1)) == {("lab", "250301002"), ("lab", "250301001")}


dates = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1))


@given(
    result_time=dates,
    offset=st.integers(min_value=-10_000_000, max_value=10_000_000),
    days=st.integers(min_value=1, max_value=400),
    flag=st.sampled_from([0, 1]),
    catalog_ok=st.booleans(),
    voided=st.booleans(),
    level=st.integers(min_value=0, max_value=3),
    min_level=st.integers(min_value=1, max_value=3),
    region=st.sampled_from(["650102", "652301", "110105"]),
    scope=st.sampled_from([(), ("65",), ("650100",), ("11", "6523")]),
)
def test_rule_is_the_conjunction_of_its_conditions(
    result_time: datetime, offset: int, days: int, flag: int, catalog_ok: bool, voided: bool, level: int,
    min_level: int, region: str, scope: tuple[str, ...],
) -> None:
    now = result_time + timedelta(seconds=offset)
    rule = CatalogRule("exam", "210300001", "CT", catalog_ok, days, min_level, scope)
    item = PriorItem("exam", "210300001", flag, result_time, voided, level, region)
    v = judge(item, rule, now, "210300001")
    expiry = result_time + timedelta(days=days)
    in_region = not scope or any(region.startswith(s[:4] if s.endswith("00") else s) for s in scope)
    expected = catalog_ok and flag == 1 and not voided and now < expiry and level >= min_level and in_region
    assert v.recognizable == expected
    assert v.expired_time == expiry
    assert (v.reason is None) == expected


@given(st.lists(st.sampled_from(["A", "B", "C"]), max_size=6), dates)
def test_recognizable_codes_is_a_subset_of_the_catalog(codes: list[str], now: datetime) -> None:
    rules = {("lab", "A"): replace(RULE, code="A", region_scope=()), ("lab", "B"): replace(RULE, code="B", recognizable=False)}
    items = [replace(ITEM, code=c, result_time=now - timedelta(days=1)) for c in codes]
    got = recognizable_codes(items, rules, now)
    assert got <= {("lab", "A")}
    assert got == ({("lab", "A")} if "A" in codes else set())
