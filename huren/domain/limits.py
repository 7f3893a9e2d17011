"""Range, length and text rules shared by every channel (REST, SOAP, pages, imports).

The transports may mirror these for their own documentation (OpenAPI ``maximum``, ``maxLength``),
but the rule enforced is the one here, so a SOAP call or a page form is held to the same bounds as
a REST body. Every refusal names the field and says the rule in Chinese.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from huren.errors import InvalidInput, Problem

#: The largest identifier or offset a database integer column holds (signed 64 bits).
MAX_INT = 2**63 - 1
#: Dates outside these bounds are refused: day arithmetic (windows, validity) stays far from the
#: calendar's ends (0001-01-01, 9999-12-31), and no report, birth or statistic lies outside them.
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2099, 12, 31)
#: The longest piece of input any message echoes back.
EXCERPT = 40
#: The longest day range a report of counts or statistics covers (one year, a leap year included).
MAX_RANGE_DAYS = 366
#: The longest threshold of lateness the timeliness report takes, in hours (the same year).
MAX_LATE_HOURS = 24 * MAX_RANGE_DAYS

# C0 controls but TAB, LF and CR; DEL and the C1 controls; the bidirectional embeddings,
# overrides and isolates (U+202A–202E, U+2066–2069) that make text read differently from what is
# stored; lone surrogates (no valid text holds them, and the database cannot encode them).
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def excerpt(value: Any, limit: int = EXCERPT) -> str:
    """At most ``limit`` characters of ``value`` for a message, marked when cut."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…（共{len(text)}个字符）"


def text_problem(value: str) -> str | None:
    """Why ``value`` is not acceptable text (a control or bidi character), or None."""
    if value.isprintable():  # every forbidden character is a control, format or surrogate one
        return None
    m = _FORBIDDEN.search(value)
    if m is None:
        return None
    return f"含有不允许的字符 U+{ord(m.group()):04X}（第{m.start() + 1}个字符）：不能包含控制字符或文字方向控制字符"


def check_text(value: str, field: str, title: str, problems: list[Problem], max_length: int | None = None) -> None:
    """Append a problem when ``value`` holds a forbidden character or is over ``max_length``."""
    reason = text_problem(value)
    if reason:
        problems.append(Problem(field, "text", f"{title}（{field}）{reason}"))
    if max_length is not None and len(value) > max_length:
        problems.append(Problem(field, "max_length", f"{title}（{field}）长度不能超过{max_length}个字符，实际{len(value)}"))


def clean_text(value: str, field: str, title: str = "", max_length: int | None = None) -> str:
    """``value`` when acceptable, else InvalidInput naming ``field``."""
    problems: list[Problem] = []
    check_text(value, field, title or field, problems, max_length)
    if problems:
        raise InvalidInput(problems[0].message, problems)
    return value


def day_problem(value: date) -> str | None:
    day = value.date() if isinstance(value, datetime) else value
    if FIRST_DAY <= day <= LAST_DAY:
        return None
    return f"应在 {FIRST_DAY.isoformat()} 至 {LAST_DAY.isoformat()} 之间，收到“{day.isoformat()}”"


def check_day(value: date, field: str, title: str = "") -> date:
    """``value`` (a date or a time) when within the bounds, else InvalidInput naming ``field``."""
    reason = day_problem(value)
    if reason:
        message = f"{title or '日期'}（{field}）{reason}"
        raise InvalidInput(message, [Problem(field, "date_range", message)])
    return value


def check_int(value: int, field: str, title: str = "", *, minimum: int = 0, maximum: int = MAX_INT) -> int:
    """``value`` when ``minimum <= value <= maximum``, else InvalidInput naming ``field``."""
    if minimum <= value <= maximum:
        return value
    message = f"{title or '数值'}（{field}）应为 {minimum} 至 {maximum} 之间的整数，收到 {excerpt(str(value), 24)}"
    raise InvalidInput(message, [Problem(field, "range", message)])


def check_day_range(day_from: date, day_to: date) -> None:
    """A day range (both days included) of at most :data:`MAX_RANGE_DAYS`, not reversed."""
    if day_from > day_to:
        raise InvalidInput("日期范围无效", [Problem("day_from", "range", "开始日期不能晚于结束日期")])
    if (day_to - day_from).days >= MAX_RANGE_DAYS:
        message = f"日期范围不能超过 {MAX_RANGE_DAYS} 天"
        raise InvalidInput("日期范围无效", [Problem("day_to", "range", message)])


def check_late_hours(value: float) -> float:
    """A lateness threshold: more than 0 and at most :data:`MAX_LATE_HOURS` hours (never NaN)."""
    if not 0 < value <= MAX_LATE_HOURS:  # NaN fails both comparisons
        message = f"超时阈值应在 0 到 {MAX_LATE_HOURS} 小时之间"
        raise InvalidInput("超时阈值无效", [Problem("late_hours", "range", message)])
    return value
