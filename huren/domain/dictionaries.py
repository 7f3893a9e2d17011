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


#: The six situations of the national rules (《医疗机构检查检验结果互认管理办法》, 2022, art. 19)
#: in which a doctor may repeat a test instead of recognizing an earlier result, in their order.
REPEAT_SITUATIONS = ("病情变化", "结果变化快", "重大诊疗措施前", "急诊急救", "司法鉴定等", "其他")

#: REJECT_REASON (seed 002 §3.13) → the situation it falls under. 1 / 4: the patient's condition
#: changed or no longer fits the old result (病情变化); 2: results closely tied to a fast-moving
#: disease (结果变化快); 3: before surgery, transfusion and other major measures (重大诊疗措施前);
#: 7: emergency and rescue (急诊急救); 9: forensic, disability, retirement assessments (司法鉴定等);
#: 5 (doubt about the old diagnosis), 6 (image quality not sufficient), 8 (the patient or family
#: asks for it), 10 (other) and a decision without a reason: 其他.
REASON_SITUATION = {
    "1": "病情变化",
    "2": "结果变化快",
    "3": "重大诊疗措施前",
    "4": "病情变化",
    "5": "其他",
    "6": "其他",
    "7": "急诊急救",
    "8": "其他",
    "9": "司法鉴定等",
    "10": "其他",
}


def repeat_situation(reason: str | None) -> str:
    """The national rules' situation a REJECT_REASON code falls under (unknown or none: 其他)."""
    return REASON_SITUATION.get((reason or "").strip(), "其他")
