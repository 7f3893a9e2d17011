"""Which version of a report wins when its primary key is submitted again (seed 002 §1.2.2).

A report is identified by the seed's primary key (org_code, report_form_no, patient_id,
event_type, event_no) and dated by its ``last_update_dtime``, the time the hospital last changed
it. A resubmission replaces the stored version only when it is newer:

* newer ``last_update_dtime`` than the stored version: it replaces it (``replace``);
* older: refused (``stale``) — a replayed or late message may not undo a correction;
* the same time and the same content (fields, items, and the PDF if one is sent): an idempotent
  ``ok`` that changes nothing (``same``) — a retry after a lost answer;
* the same time and different content: refused (``conflict``) — two different reports under one
  version cannot both be right, and neither may silently win; a change needs a new time;
* after a void, the void is the stored version: a resubmission with the same or an older time is
  refused (``stale``), only a newer one registers the report again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from huren.errors import Problem

Verdict = Literal["replace", "same", "stale", "conflict"]

TIME_FIELD = "last_update_dtime"


def verdict(new_time: datetime, stored_time: datetime, *, stored_voided: bool, same_content: bool) -> Verdict:
    """What a resubmission dated ``new_time`` does to a stored version dated ``stored_time``."""
    if new_time > stored_time:
        return "replace"
    if new_time < stored_time or stored_voided:
        return "stale"
    return "same" if same_content else "conflict"


def _t(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def refusal(
    master_name: str,
    what: Verdict,
    new_time: datetime,
    stored_time: datetime,
    *,
    voided_at: datetime | None = None,
) -> Problem:
    """The problem naming the field, the rule and both times of a refused resubmission."""
    field = f"{master_name}.{TIME_FIELD}"
    if what == "conflict":
        return Problem(
            field,
            "version_conflict",
            f"报告最后修改时间（{TIME_FIELD}）{_t(new_time)} 与平台已保存版本的时间相同，但内容不同；"
            "修改报告须同时更新最后修改时间",
        )
    if voided_at is not None and new_time >= stored_time:
        return Problem(
            field,
            "stale_version",
            f"该报告已于 {_t(voided_at)} 作废（作废前版本的最后修改时间 {_t(stored_time)}）；"
            f"重新提交的最后修改时间（{TIME_FIELD}）{_t(new_time)} 须晚于 {_t(stored_time)}",
        )
    return Problem(
        field,
        "stale_version",
        f"报告最后修改时间（{TIME_FIELD}）{_t(new_time)} 早于平台已保存版本的最后修改时间 {_t(stored_time)}，"
        "旧版本不能覆盖新版本",
    )
