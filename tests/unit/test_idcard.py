"""GB 11643-1999 resident identity numbers: shape, birth date, ISO 7064 MOD 11-2 check character."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from huren.domain import idcard

# Published examples (GB 11643 / ISO 7064 worked examples), checked by hand below.
PUBLISHED = ("11010519491231002X", "440524188001010014")
ALPHABET = "0123456789X"


@pytest.mark.parametrize("number", PUBLISHED)
def test_published_examples_are_valid(number: str) -> None:
    assert idcard.problem(number) is None
    assert idcard.check_char(number[:17]) == number[17]


def test_make_builds_a_valid_number() -> None:
    number = idcard.make("650102", date(1967, 2, 1), 123)
    assert number[:17] == "65010219670201123"
    assert len(number) == 18
    assert idcard.problem(number) is None


def test_make_wraps_sequence_to_three_digits() -> None:
    assert idcard.make("110105", date(1949, 12, 31), 1002) == "11010519491231002X"
    assert idcard.make("110105", date(1949, 12, 31), 2) == "11010519491231002X"


@pytest.mark.parametrize(
    ("first17", "expected"),
    [
        # sum(d_i * w_i) by hand, then "10X98765432"[sum % 11]
        ("00000000000000000", "1"),  # 0 -> 1
        ("10000000000000000", "5"),  # 7 -> 5
        ("01000000000000000", "3"),  # 9 -> 3
        ("00000000000000001", "X"),  # 2 -> X
        ("00000000000000010", "8"),  # 4 -> 8
        ("11010519491231002", "X"),  # 167 % 11 = 2 -> X
        ("44052418800101001", "4"),  # 195 % 11 = 8 -> 4
    ],
)
def test_check_char_hand_computed(first17: str, expected: str) -> None:
    assert idcard.check_char(first17) == expected


def test_check_char_of_sample_number_by_hand() -> None:
    # 6 5 0 1 0 2 1 9 6 7 0 2 0 1 1 2 3 x weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2
    total = 42 + 45 + 0 + 5 + 0 + 8 + 2 + 9 + 36 + 21 + 0 + 18 + 0 + 5 + 8 + 8 + 6
    assert total == 213  # 213 % 11 = 4 -> "8"
    assert idcard.check_char("65010219670201123") == "8"
    assert idcard.make("650102", date(1967, 2, 1), 123) == "650102196702011238"


@pytest.mark.parametrize("bad", ["", "1" * 16, "1" * 18, "abcdefghijklmnopq", "1234567890123456X", "-1234567890123456"])
def test_check_char_needs_17_ascii_digits(bad: str) -> None:
    with pytest.raises(ValueError):
        idcard.check_char(bad)


def test_wrong_check_digit() -> None:
    reason = idcard.problem("110105194912310021")
    assert reason == "居民身份证号码校验位错误（GB 11643）"


def test_lowercase_x_is_accepted() -> None:
    assert idcard.problem("11010519491231002x") is None


@pytest.mark.parametrize(
    "first17",
    [
        "11010519491331002",  # month 13
        "11010519490001002",  # month 00
        "11010519490230002",  # 30 February
        "11010519490229002",  # 29 February of a non-leap year
        "11010519491200002",  # day 00
        "11010500001231002",  # year 0
    ],
)
def test_impossible_birth_date(first17: str) -> None:
    number = first17 + idcard.check_char(first17)  # the check character is right; the date is not
    assert idcard.problem(number) == "居民身份证号码中的出生日期无效"


def test_leap_day_is_a_valid_birth_date() -> None:
    first17 = "11010520000229002"
    assert idcard.problem(first17 + idcard.check_char(first17)) is None


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "11010519491231002",  # 17 characters
        "11010519491231002X0",  # 19 characters
        "110105491231002",  # old 15-digit number
        "1101051949123100XX",  # X before the last place
        "X1010519491231002X",
        "11010519491231002Y",
        "11010519491231002-",
        "A10105194912310021",
        "11010519491231002X ",
        "１１０１０５１９４９１２３１００２Ｘ",  # full-width digits
        "１１０１０５１９４９１２３１００２X",  # full-width digits, ASCII X (right sum, if read as digits)
        "١١٠١٠٥١٩٤٩١٢٣١٠٠٢X",  # Arabic-Indic digits
        "11010519491231002X\n",  # trailing newline
    ],
)
def test_wrong_length_or_letters(bad: str) -> None:
    assert idcard.problem(bad) == "居民身份证号码应为18位（前17位数字，末位数字或X）"


prefixes = st.builds(
    lambda region, born, seq: f"{region:06d}{born:%Y%m%d}{seq:03d}",
    st.integers(0, 999_999),
    st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31)),
    st.integers(0, 999),
)


@settings(database=None, max_examples=300)
@given(first17=prefixes, other=st.sampled_from(ALPHABET))
def test_property_only_the_check_char_completes_a_prefix(first17: str, other: str) -> None:
    check = idcard.check_char(first17)
    assert check in ALPHABET
    assert idcard.problem(first17 + check) is None
    assert idcard.problem(first17 + check.lower()) is None
    if other != check:
        assert idcard.problem(first17 + other) == "居民身份证号码校验位错误（GB 11643）"


def test_mask_keeps_four_and_two_and_finds_numbers_in_text() -> None:
    from huren.domain.idcard import mask, mask_in_text

    assert mask("65010219900307123X") == "6501************3X"
    assert mask("12345") == "*****"
    text = "记录 accept:H1|B1|3001|650102199003071234 与 110101800101123 重复；报告单号 B000000123 不变"
    assert mask_in_text(text) == "记录 accept:H1|B1|3001|6501************34 与 1101*********23 重复；报告单号 B000000123 不变"
    assert mask_in_text("65010219900307123x") == "6501************3x"
    assert mask_in_text("A650102199003071234") == "A650102199003071234"  # part of a longer code: not an ID number
