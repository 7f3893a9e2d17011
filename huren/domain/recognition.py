"""The recognition rule: is a prior result recognizable for an order at time ``now``?

Pure and total: every input gives a verdict, and a refusal names its reason. A prior item is
recognizable when

* its standard code is the ordered one (same kind: lab sub-item or exam item),
* the item's own ``recognition`` flag is 1 and the catalog marks the code recognizable,
* its report is not voided,
* ``now`` < ``expired_time`` = result time + the catalog's validity days for the code,
* the reporting institution's level is at least the code's minimum level, and
* the reporting institution lies in the code's region scope (empty scope: anywhere).

Lab recognition is per sub-item, so a panel can be partly recognizable; exam recognition is per
exam item. Only the current version of a resubmitted report exists in the store, so the newest
version is the one judged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from huren.domain.limits import check_text
from huren.domain.regions import in_scope
from huren.errors import InvalidInput, Problem

#: Reasons a prior item is not recognizable (also shown to operators, so the text is Chinese).
REASONS = {
    "not_ordered": "与所开项目编码不一致",
    "not_in_catalog": "不在互认项目目录中",
    "catalog_not_recognizable": "目录规定该项目不予互认",
    "flag_not_recognizable": "报告中该项目的可互认标识为0",
    "voided": "报告已作废",
    "expired": "已超过互认有效期",
    "level": "报告机构等级低于该项目要求",
    "region": "报告机构不在该项目的互认区域内",
}
#: The same reasons in a few characters, for a narrow row (the full text of REASONS on hover).
SHORT_REASONS = {
    "not_ordered": "非所开项目",
    "not_in_catalog": "不在目录",
    "catalog_not_recognizable": "目录不互认",
    "flag_not_recognizable": "标为不互认",
    "voided": "已作废",
    "expired": "已过期",
    "level": "机构等级不足",
    "region": "区域外",
}


#: The longest value of a visit field (VARCHAR2(128) in sehr_accept_record, seed 002 §1.3.2.5).
VISIT_MAX = 128
VISIT_TITLES = {
    "event_no": "本次就诊事件号",
    "dept_code": "本次就诊科室编码",
    "dept_name": "本次就诊科室名称",
    "dept_std_code": "标准科室编码",
    "dept_std_name": "标准科室名称",
    "doc_code": "本次就诊医生编码",
    "doc_name": "本次就诊医生名称",
}


@dataclass(frozen=True, slots=True)
class Visit:
    """The doctor's side of a question: where and by whom the order is being written (kept in
    the reminder log, XC-P4, by the platform and by the gateway)."""

    event_no: str = ""
    dept_code: str = ""
    dept_name: str = ""
    dept_std_code: str = ""
    dept_std_name: str = ""
    doc_code: str = ""
    doc_name: str = ""

    def __post_init__(self) -> None:
        """Each field is text of at most VISIT_MAX characters without control or bidi characters
        (the sehr_accept_record columns, seed 002 §1.3.2.5), whichever channel built the visit."""
        problems: list[Problem] = []
        for name in self.__slots__:
            value = getattr(self, name)
            if not isinstance(value, str):
                problems.append(Problem(name, "type", f"{VISIT_TITLES[name]}（{name}）应为文本"))
                continue
            check_text(value, name, VISIT_TITLES[name], problems, VISIT_MAX)
        if problems:
            raise InvalidInput("就诊信息无效", problems)

    def as_dict(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(frozen=True, slots=True)
class CatalogRule:
    """What the catalog says of one standard code."""

    kind: str  # lab | exam
    code: str
    name: str
    recognizable: bool
    validity_days: int
    min_level: int = 2
    region_scope: tuple[str, ...] = ()  # administrative division prefixes; () = anywhere


@dataclass(frozen=True, slots=True)
class PriorItem:
    """One lab sub-item or exam item of a registered report, with what the rule needs."""

    kind: str
    code: str
    recognition: int  # the item's own flag (STD_LAB_EXAM_RECOGNITION)
    result_time: datetime  # the item's effective_dtime (= the report's authentication time)
    voided: bool
    org_level: int
    org_region: str


@dataclass(frozen=True, slots=True)
class Verdict:
    recognizable: bool
    reason: str | None  # a key of REASONS when not recognizable
    expired_time: datetime | None  # only when the catalog knows the code

    @property
    def reason_text(self) -> str:
        return REASONS[self.reason] if self.reason else ""


def expired_time(item: PriorItem, rule: CatalogRule) -> datetime:
    return item.result_time + timedelta(days=rule.validity_days)


def judge(item: PriorItem, rule: CatalogRule | None, now: datetime, ordered: str | None = None) -> Verdict:
    """The verdict on one prior item for an order of ``ordered`` (its standard code) at ``now``."""
    if ordered is not None and (ordered != item.code or (rule is not None and rule.kind != item.kind)):
        return Verdict(False, "not_ordered", None)
    if rule is None or rule.code != item.code or rule.kind != item.kind:
        return Verdict(False, "not_in_catalog", None)
    expiry = expired_time(item, rule)
    if not rule.recognizable:
        return Verdict(False, "catalog_not_recognizable", expiry)
    if item.recognition != 1:
        return Verdict(False, "flag_not_recognizable", expiry)
    if item.voided:
        return Verdict(False, "voided", expiry)
    if not now < expiry:
        return Verdict(False, "expired", expiry)
    if item.org_level < rule.min_level:
        return Verdict(False, "level", expiry)
    if not in_scope(item.org_region, rule.region_scope):
        return Verdict(False, "region", expiry)
    return Verdict(True, None, expiry)


def recognizable_codes(
    items: Iterable[PriorItem], rules: dict[tuple[str, str], CatalogRule], now: datetime
) -> set[tuple[str, str]]:
    """The (kind, code) pairs among ``items`` that are recognizable at ``now``."""
    return {(i.kind, i.code) for i in items if judge(i, rules.get((i.kind, i.code)), now).recognizable}
