"""The one mapping of developer identifiers to the Chinese a user reads (issue 11): field paths
(``exammaster.performer_dept_std_code``, ``lab_subitem[3].result``, ``dept[2].dept_std_code``),
rule codes (``dictionary``, ``required``, …) and the field names the validation messages echo in
parentheses. Every page that shows a problem (the rectification page, upload results on the
catalog page, error boxes) goes through :func:`problem` so no record key, field path or rule code
reaches a user.

Field titles come from the seed field tables (:mod:`huren.domain.fields`,
:mod:`huren.domain.masterdata`), which already carry the seed's Chinese names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from huren.domain import dictionaries, fields, masterdata

#: Record nodes → their Chinese names.
NODE_NAMES: Mapping[str, str] = {
    "labmaster": "检验报告",
    "lab_subitem": "检验子项",
    "exammaster": "检查报告",
    "exam_subitem": "检查子项",
    "lab_exam_report": "检查检验日报",
    "sehr_accept_record": "互认记录",
    "sehr_quote_record": "引用记录",
    "reminder_log": "提醒日志",
    "header": "表头",
    "void": "作废条件",
    "pdf": "报告PDF",
    **{k.node: f"{k.title}信息" for k in masterdata.KINDS.values()},
    "catalog": "互认项目目录",
    "mapping": "项目对照",
    "body": "提交内容",
}

#: Rule codes (``Problem.rule``) → what was broken, in words.
RULE_NAMES: Mapping[str, str] = {
    "required": "必填",
    "dictionary": "须为字典中的代码",
    "range": "超出允许范围",
    "node": "结构不正确",
    "ownership": "须为本机构的数据",
    "max_size": "超过大小上限",
    "max_length": "超过长度上限",
    "min_length": "短于最小长度",
    "max_digits": "超过位数上限",
    "max_rows": "超过行数上限",
    "max_items": "超过项目数上限",
    "xml": "XML 格式不正确",
    "json": "JSON 格式不正确",
    "gzip": "压缩格式不正确",
    "type": "类型不正确",
    "text": "文字内容不合规",
    "duplicate": "重复",
    "not_found": "不存在",
    "format": "格式不正确",
    "date_format": "日期格式不正确",
    "date_range": "日期超出合理范围",
    "integer": "须为整数",
    "number": "须为数字",
    "boolean": "须为是（1）或否（0）",
    "unknown_item": "目录中没有该项目",
    "unknown_column": "无法识别的列",
    "consistency": "与主记录不一致",
    "pdf_size": "PDF 过大",
    "id_checksum": "身份证号校验位不正确",
    "match": "不匹配",
    "conflict": "与已有数据冲突",
    "region": "不在所属辖区",
    "media_type": "内容类型不支持",
    "doctype": "XML 不允许文档类型声明",
    "soap": "WebService 报文不正确",
    "signature_required": "缺少签名",
    "encryption_required": "缺少加密",
    "transport_policy": "不符合传输要求",
    "token": "令牌无效",
    "csrf": "页面已过期，请刷新后重试",
    "throttle": "请求过于频繁",
    "read_rate": "调阅过于频繁",
    "filter": "查询条件不正确",
    "window": "超出时间窗口",
    "unavailable": "暂不可用",
    "unreachable": "无法连接",
    "access": "无权访问",
    "read": "无法读取",
    "more": "数据过多",
    "host": "主机地址不正确",
}

#: FastAPI's own validation types (a page's parameter of the wrong type: ``?page=x``)
PARAM_RULES: Mapping[str, str] = {
    "int_parsing": "须为整数",
    "int_type": "须为整数",
    "float_parsing": "须为数字",
    "bool_parsing": "须为是（1）或否（0）",
    "missing": "必填",
    "greater_than_equal": "超出允许范围",
    "less_than_equal": "超出允许范围",
    "greater_than": "超出允许范围",
    "less_than": "超出允许范围",
    "string_too_long": "超过长度上限",
}

OTHER_RULE = "不符合规则"
OTHER_FIELD = "字段"

#: The catalog's own columns (huren.domain.catalog), for its upload and edit results.
CATALOG_FIELDS: Mapping[str, str] = {
    "code": "项目标准编码",
    "name": "项目名称",
    "kind": "检查/检验",
    "validity_days": "有效天数",
    "recognizable": "是否可互认",
    "min_level": "最低机构等级",
    "region_code": "适用区域",
    "unit": "单位",
    "fee": "收费标准",
    "local_code": "本地编码",
    "local_name": "本地名称",
    "std_code": "标准编码",
}


#: The pages' own parameters (filters, thresholds, sorting, export), for their error boxes.
PAGE_PARAMS: Mapping[str, str] = {
    "silent_hours": "静默阈值（小时）",
    "late_hours": "超时阈值（小时）",
    "day_from": "开始日期",
    "day_to": "结束日期",
    "org_code": "机构",
    "kind": "类型",
    "format": "文件格式",
    "by": "分组方式",
    "page": "页码",
    "only_open": "只看未整改",
    "q": "编码或名称",
    "edit": "修改的项目",
    "sort": "排序",
    "dir": "排序方向",
    "exc": "只看异常",
    "export": "导出的表格",
    "file": "文件",
    "csrf_token": "表单令牌",
    "token": "页面令牌",
}


@cache
def field_titles() -> Mapping[str, str]:
    """Field name → its Chinese title, over every seed table (the first table naming it wins)."""
    out: dict[str, str] = {}
    tables: list[tuple[fields.Field, ...]] = [
        fields.LABMASTER, fields.LAB_SUBITEM, fields.EXAMMASTER, fields.EXAM_SUBITEM, fields.LAB_EXAM_REPORT,
        fields.VOID_FILTER, fields.SEHR_ACCEPT_RECORD, fields.REMINDER_LOG, (fields.PDF,),
    ]
    tables += [k.spec for k in masterdata.KINDS.values()]
    for table in tables:
        for f in table:
            out.setdefault(f.name, f.title)
    for name, title in CATALOG_FIELDS.items():
        out.setdefault(name, title)
    for name, title in PAGE_PARAMS.items():
        out.setdefault(name, title)
    return out


@cache
def node_titles() -> Mapping[str, Mapping[str, str]]:
    """Node → its own table's field titles (``exammaster.performer_dept_std_code`` is the exam's)."""
    tables = {
        "labmaster": fields.LABMASTER, "lab_subitem": fields.LAB_SUBITEM, "exammaster": fields.EXAMMASTER,
        "exam_subitem": fields.EXAM_SUBITEM, "lab_exam_report": fields.LAB_EXAM_REPORT,
        "sehr_accept_record": fields.SEHR_ACCEPT_RECORD, "sehr_quote_record": fields.SEHR_QUOTE_RECORD,
        "reminder_log": fields.REMINDER_LOG, **{k.node: k.spec for k in masterdata.KINDS.values()},
    }
    return {node: {f.name: f.title for f in spec} for node, spec in tables.items()}


_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?")


def field(path: str) -> str:
    """``exammaster.performer_dept_std_code`` → ``检查报告 · 检验执行标准科室编码``;
    ``lab_subitem[2].result`` → ``检验子项第3项 · …``. A part it cannot name is left out (never
    shown as a code); nothing known at all gives 字段."""
    titles = field_titles()
    parts: list[str] = []
    table: Mapping[str, str] = {}
    for seg in (path or "").split("."):
        m = _SEGMENT.fullmatch(seg.strip())
        if m is None:
            continue
        name, index = m.group(1), m.group(2)
        if name == "row" and index is not None:  # a file's row (huren.domain.rows): N is the row number
            parts.append(f"第{int(index)}行")
            continue
        title = NODE_NAMES.get(name) or table.get(name) or titles.get(name) or titles.get(fields.ALIASES.get(name, ""))
        if title is None:
            continue
        table = node_titles().get(name, table)
        parts.append(f"{title}第{int(index) + 1}项" if index is not None else title)
    return " · ".join(parts) or OTHER_FIELD


def rule(code: str) -> str:
    return RULE_NAMES.get(code) or PARAM_RULES.get(code, OTHER_RULE)


_DICT_NAME = re.compile(r"\b(" + "|".join(sorted(dictionaries.NAMES, key=len, reverse=True)) + r")\b(?:（[^）]*）)?")
_PAREN_NAME = re.compile(r"（[A-Za-z_][A-Za-z0-9_.\[\]]*）")
_QUOTED = re.compile(r"(“[^”]*”)")
_IDENT = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b|\b(?:labmaster|exammaster)\b")


def message(text: str) -> str:
    """A validation message without the developer names it echoes: ``审核者审核时间（authenticator_dtime）``
    loses the parenthesis; a dictionary's name (``STD_DEPT（标准科室代码）``) becomes its title; a bare
    field name outside “quotes” (the value sent) becomes its title."""
    titles = field_titles()
    out = []
    for i, part in enumerate(_QUOTED.split(text or "")):
        if i % 2 == 1:  # a quoted value sent: as it was
            out.append(part)
            continue
        part = _DICT_NAME.sub(lambda m: f"“{dictionaries.TITLES.get(m.group(1), '代码')}”", part)
        part = _PAREN_NAME.sub("", part)
        part = _IDENT.sub(lambda m: NODE_NAMES.get(m.group(0)) or titles.get(m.group(0), m.group(0)), part)
        out.append(part)
    return "".join(out)


def problem(p: Mapping[str, Any]) -> dict[str, str]:
    """A problem (``{field, rule, message}``) as a user reads it: ``field`` and ``rule`` in Chinese,
    the message without echoed names."""
    return {
        "field": field(str(p.get("field") or "")),
        "rule": rule(str(p.get("rule") or "")),
        "message": message(str(p.get("message") or "")),
    }


#: English words a catalog's unit column carries → Chinese (symbols such as g/L, mmol/L, U/L
#: stay: Chinese reports print them so). Longest first.
UNIT_WORDS: tuple[tuple[str, str], ...] = (
    ("qualitative+sediment", "定性+沉渣"),
    ("dipstick items", "干化学试带项目"),
    ("qualitative", "定性"),
    ("sediment", "沉渣"),
    ("panel:", "组合："),
    ("titer", "滴度"),
    ("type", "分型"),
    ("unit", "单位"),
    (" or ", " 或 "),
    (" & ", " 及 "),
)
_SECONDS = re.compile(r"(?<![A-Za-z])s(?![A-Za-z/])")


def unit(text: str) -> str:
    """A catalog unit as a Chinese reader reads it: ``qualitative`` → 定性, ``s (+INR)`` →
    秒（含INR）, ``titer`` → 滴度; SI symbols (g/L, mmol/L, 10^9/L) unchanged."""
    out = (text or "").strip()
    for en, zh in UNIT_WORDS:
        out = out.replace(en, zh)
    out = out.replace("(+", "（含").replace("(", "（").replace(")", "）")
    out = _SECONDS.sub("秒", out)
    return out.replace(" （", "（")
