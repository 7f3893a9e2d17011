"""The code dictionaries of seed 002 §3, loaded once from the package's TSV files."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources

#: Dictionary names shipped in ``huren/domain/data``.
NAMES = (
    "STD_EVENT_TYPE",
    "STD_SEX",
    "STD_ID_TYPE",
    "STD_PRIORITY",
    "STD_DEPT",
    "STD_SPECIMEN_DETERMINER",
    "STD_OBSERVATION_TYPE",
    "STD_OBSERVATION_INTERPRET",
    "STD_LAB_EXAM_RECOGNITION",
    "MODALITY",
    "REJECT_REASON",
    "EXAM_STATE",
    "CHECKED_STATUS",
    "IS_ABNORMAL",
    "IS_ACCEPT",
    "RECORD_TYPE",
    "LOG_ACTION",
)

#: Human titles (shown to operators) of each dictionary.
TITLES = {
    "STD_EVENT_TYPE": "事件类型",
    "STD_SEX": "性别代码",
    "STD_ID_TYPE": "身份证件类别代码",
    "STD_PRIORITY": "优先级代码",
    "STD_DEPT": "标准科室代码",
    "STD_SPECIMEN_DETERMINER": "标准采集部位代码",
    "STD_OBSERVATION_TYPE": "结果类型代码",
    "STD_OBSERVATION_INTERPRET": "结果解释代码",
    "STD_LAB_EXAM_RECOGNITION": "检查检验互认标识",
    "MODALITY": "设备类型",
    "REJECT_REASON": "不予互认理由",
    "EXAM_STATE": "检查状态",
    "CHECKED_STATUS": "是否审核",
    "IS_ABNORMAL": "是否异常",
    "IS_ACCEPT": "是否采纳",
    "RECORD_TYPE": "互认/引用记录类型",
    "LOG_ACTION": "提醒/调阅记录类型",
}


@cache
def load(name: str) -> Mapping[str, str]:
    """Code → name of one dictionary (read once per process)."""
    if name not in NAMES:
        raise KeyError(name)
    text = resources.files("huren.domain").joinpath("data", f"{name}.tsv").read_text("utf-8")
    rows = text.splitlines()[1:]
    return dict(tuple(row.split("\t", 1)) for row in rows if row)  # type: ignore[misc]


def all_dictionaries() -> dict[str, Mapping[str, str]]:
    return {name: load(name) for name in NAMES}
