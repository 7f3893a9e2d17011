"""One-page A4 report sheets (检验报告单 / 检查报告单) for demo payloads.

Drawn directly on a reportlab canvas with the built-in CID font STSong-Light
(nothing is embedded, so files stay small: a few kB).  Output is byte-for-byte
deterministic (``invariant=1``: no creation date or random document ID).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import date
from functools import cache

from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas

from huren.domain import idcard

__all__ = ["FONT", "render_exam_pdf", "render_lab_pdf"]

FONT = "STSong-Light"
_PAGE_W, _PAGE_H = float(A4[0]), float(A4[1])
_LEFT, _RIGHT = 36.0, _PAGE_W - 36.0

_EVENT_TYPES = {"1": "门急诊", "2": "住院", "3": "体检", "4": "妇幼保健", "5": "社区医疗", "9": "其他"}
_SPECIMENS = {"BLD": "全血", "SER": "血清", "PLAS": "血浆", "UR": "尿液", "STL": "粪便"}
_FLAGS = {"H": "↑", "L": "↓", "P": "阳", "WP": "弱阳"}
_EXAM_TITLES = {
    "DR": "DR检查报告单",
    "CR": "X线检查报告单",
    "CT": "CT检查报告单",
    "MR": "磁共振检查报告单",
    "US": "超声检查报告单",
    "ECG": "心电图检查报告单",
}
_RED = (0.75, 0.05, 0.05)
_DEMO_NOTE = "【演示数据】本报告由 huren 演示数据生成器生成，非真实病历。"


@cache
def _font() -> str:
    pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    return FONT


def _printable(text: str) -> str:
    # U+00B7 (the dot in transliterated names such as 阿依古丽·买买提) maps to a proportional
    # Adobe-GB1 glyph that common CJK substitute fonts lack; U+30FB shows the same full-width dot.
    return text.replace("\u00b7", "\u30fb")


@cache
def _char_width(char: str) -> float:
    return float(pdfmetrics.stringWidth(char, _font(), 1000)) / 1000


def _width(text: str, size: float) -> float:
    return sum(_char_width(c) for c in text) * size


def _fit(text: str, width: float, size: float) -> str:
    """``text`` shortened with an ellipsis so that it fits ``width``."""
    if _width(text, size) <= width:
        return text
    budget = width - _width("…", size)
    out = ""
    for char in text:
        if _width(out + char, size) > budget:
            break
        out += char
    return out + "…"


_NO_LINE_START = frozenset("，。、；：！？）》」』”’%…·・")


def _wrap(text: str, width: float, size: float) -> list[str]:
    """Character-wise line breaking; closing punctuation never starts a line (it may overhang)."""
    lines: list[str] = []
    current, used = "", 0.0
    for char in text:
        w = _char_width(char) * size
        if current and used + w > width and char not in _NO_LINE_START:
            lines.append(current)
            current, used = "", 0.0
        current += char
        used += w
    if current:
        lines.append(current)
    return lines


class _Sheet:
    def __init__(self, title: str, author: str) -> None:
        self.buffer = io.BytesIO()
        self.canvas = Canvas(self.buffer, pagesize=A4, invariant=1, pageCompression=1)
        self.canvas.setTitle(title)
        self.canvas.setAuthor(author)
        self.canvas.setCreator("huren demo")
        self.canvas.setLineWidth(0.6)

    def text(self, x: float, y: float, text: str, size: float = 9.5, *, width: float = 0.0) -> None:
        self.canvas.setFont(_font(), size)
        text = _printable(text)
        self.canvas.drawString(x, y, _fit(text, width, size) if width else text)

    def centred(self, y: float, text: str, size: float) -> None:
        self.canvas.setFont(_font(), size)
        self.canvas.drawCentredString(_PAGE_W / 2, y, _printable(text))

    def right(self, y: float, text: str, size: float = 9.5) -> None:
        self.canvas.setFont(_font(), size)
        self.canvas.drawRightString(_RIGHT, y, _printable(text))

    def rule(self, y: float, width: float = 0.6) -> None:
        self.canvas.setLineWidth(width)
        self.canvas.line(_LEFT, y, _RIGHT, y)

    def colour(self, rgb: tuple[float, float, float] | None) -> None:
        r, g, b = rgb if rgb is not None else (0.0, 0.0, 0.0)
        self.canvas.setFillColorRGB(r, g, b)

    def grid(self, y: float, rows: Sequence[Sequence[tuple[str, str]]], leading: float = 15.0) -> float:
        """Label/value pairs in three columns; returns the y below the grid."""
        columns = (_LEFT, _LEFT + 180.0, _LEFT + 350.0)
        widths = (175.0, 165.0, _RIGHT - columns[2])
        for row in rows:
            for (label, value), x, w in zip(row, columns, widths, strict=False):
                self.text(x, y, f"{label}：{value}", width=w)
            y -= leading
        return y

    def finish(self) -> bytes:
        self.canvas.showPage()
        self.canvas.save()
        return self.buffer.getvalue()


def _age_text(born: date | None, on: str) -> str:
    if born is None:
        return ""
    try:
        day = date.fromisoformat(on[:10])
    except ValueError:
        return ""
    years = day.year - born.year - ((day.month, day.day) < (born.month, born.day))
    return f"{years}岁" if years >= 1 else f"{max((day - born).days // 30, 0)}月"


def _born_from_id(master: Mapping[str, str]) -> date | None:
    id_no = master.get("id_no", "")
    if master.get("id_type_code") == "01" and idcard.problem(id_no) is None:
        return date(int(id_no[6:10]), int(id_no[10:12]), int(id_no[12:14]))
    return None


def _masked(id_no: str) -> str:
    if len(id_no) <= 6:
        return id_no
    keep = 6 if len(id_no) == 18 else 2
    return id_no[:keep] + "*" * (len(id_no) - keep - 4) + id_no[-4:]


def _header(sheet: _Sheet, org_name: str, title: str, number: str) -> float:
    sheet.centred(804, org_name, 17)
    sheet.centred(782, title, 13)
    sheet.text(_LEFT, 764, f"报告单号：{number}", 9)
    return 758.0


def _patient_rows(master: Mapping[str, str], born: date | None) -> list[tuple[str, str]]:
    return [
        ("姓名", master.get("name", "")),
        ("性别", master.get("sex_name", "")),
        ("年龄", _age_text(born, master.get("authenticator_dtime", ""))),
    ]


def _visit_rows(master: Mapping[str, str]) -> list[tuple[str, str]]:
    return [
        ("病人ID", master.get("patient_id", "")),
        ("就诊类型", _EVENT_TYPES.get(master.get("event_type", ""), "")),
        ("就诊号", master.get("event_no", "")),
    ]


def _org_name(master: Mapping[str, str], org_name: str) -> str:
    return org_name or master.get("org_name", "") or f"医疗机构（{master.get('org_code', '')}）"


def _range_text(item: Mapping[str, str]) -> str:
    low, high = item.get("norm_lower_limit", ""), item.get("norm_upper_limit", "")
    if low and high:
        return f"{low}-{high}"
    if high:
        return f"<{high}"
    if low:
        return f">{low}"
    return item.get("norm_value_notes", "")


def render_lab_pdf(master: Mapping[str, str], items: Sequence[Mapping[str, str]], *, org_name: str = "") -> bytes:
    """A 检验报告单 for a ``labmaster`` row and its ``lab_subitem`` rows."""
    hospital = _org_name(master, org_name)
    title = master.get("report_title", "") or master.get("class_local_name", "")
    sheet = _Sheet(f"{title}检验报告单", hospital)
    y = _header(sheet, hospital, f"{title} 检验报告单", master.get("report_form_no", ""))
    sheet.right(764, f"标本号：{master.get('specimen_id', '')}", 9)
    sheet.rule(y)
    specimen = master.get("specimen_class_code", "")
    y = sheet.grid(
        y - 14,
        [
            _patient_rows(master, _born_from_id(master)),
            _visit_rows(master),
            [
                ("申请科室", master.get("participant_dept_name", "")),
                ("申请医生", master.get("participant_name", "")),
                ("标本类型", _SPECIMENS.get(specimen, specimen)),
            ],
            [
                ("证件号", _masked(master.get("id_no", ""))),
                ("采集部位", master.get("specimen_determiner_name", "") or "—"),
                ("优先级", master.get("order_priority_name", "") or "常规"),
            ],
        ],
    )
    sheet.rule(y + 8)

    columns = (
        ("序号", _LEFT),
        ("项目名称", 64.0),
        ("结果", 246.0),
        ("提示", 306.0),
        ("单位", 334.0),
        ("参考区间", 398.0),
        ("检验方法", 478.0),
    )
    y -= 6
    for label, x in columns:
        sheet.text(x, y, label, 9.5)
    sheet.rule(y - 5, 0.4)
    y -= 19
    bottom = 150.0
    row_height = 15.0
    capacity = int((y - bottom) // row_height) + 1
    shown = items if len(items) <= capacity else items[: capacity - 1]
    for item in shown:
        interp = item.get("result_interpre", "N")
        recognised = item.get("recognition") == "1"
        name = ("*" if recognised else "") + (item.get("class_local_name") or item.get("class_name", ""))
        sheet.text(_LEFT, y, item.get("serial_no", ""), 9)
        sheet.text(64, y, name, 9, width=178)
        sheet.colour(_RED if interp in _FLAGS else None)
        sheet.text(246, y, item.get("result_value", ""), 9, width=58)
        sheet.text(306, y, _FLAGS.get(interp, ""), 9)
        sheet.colour(None)
        sheet.text(334, y, item.get("result_unit", ""), 8.5, width=62)
        sheet.text(398, y, _range_text(item), 8.5, width=78)
        sheet.text(478, y, item.get("examine_way", ""), 8, width=_RIGHT - 478)
        y -= row_height
    if len(shown) < len(items):
        sheet.text(64, y, f"（另有 {len(items) - len(shown)} 项结果未能在本页显示）", 9)
        y -= row_height
    sheet.rule(y + 9, 0.4)

    sheet.rule(128)
    sheet.grid(
        114,
        [
            [
                ("申请时间", master.get("participant_dtime", "")),
                ("检验时间", master.get("performer_dtime", "")),
                ("报告时间", master.get("authenticator_dtime", "")),
            ],
            [
                ("检验者", master.get("author_name", "")),
                ("审核者", master.get("authenticator_name", "")),
                ("检验仪器", master.get("playing_device", "")),
            ],
        ],
    )
    sheet.text(_LEFT, 72, "注：项目名称前标“*”者为检查检验结果互认项目；↑ 偏高，↓ 偏低。本报告仅对所检标本负责。", 8)
    sheet.text(
        _LEFT, 58, f"执行科室：{master.get('performer_dept_name', '')}    机构编码：{master.get('org_code', '')}", 8
    )
    sheet.text(_LEFT, 40, _DEMO_NOTE, 7.5)
    return sheet.finish()


def render_exam_pdf(master: Mapping[str, str], items: Sequence[Mapping[str, str]], *, org_name: str = "") -> bytes:
    """A 检查报告单 for an ``exammaster`` row and its ``exam_subitem`` rows."""
    hospital = _org_name(master, org_name)
    modality = master.get("class_code", "")
    title = _EXAM_TITLES.get(modality, f"{master.get('class_name', '')}检查报告单")
    sheet = _Sheet(f"{master.get('report_title', '')} {title}", hospital)
    y = _header(sheet, hospital, title, master.get("report_form_no", ""))
    sheet.right(764, f"检查号：{master.get('pacs_id', '')}", 9)
    sheet.rule(y)
    born: date | None
    try:
        born = date.fromisoformat(master.get("birth_date", "")[:10])
    except ValueError:
        born = None
    parts = "、".join(dict.fromkeys(i.get("body_part_name", "") for i in items if i.get("body_part_name")))
    y = sheet.grid(
        y - 14,
        [
            _patient_rows(master, born),
            _visit_rows(master),
            [
                ("申请科室", master.get("participant_dept_name", "")),
                ("申请医生", master.get("participant_name", "")),
                ("检查设备", master.get("playing_device", "")),
            ],
            [
                ("检查项目", master.get("report_title", "")),
                ("检查部位", parts),
                ("到检时间", master.get("arrive_dtime", "")),
            ],
        ],
    )
    sheet.text(_LEFT, y, f"临床诊断：{master.get('outpat_diag_name', '')}", width=_RIGHT - _LEFT)
    y -= 15
    sheet.text(_LEFT, y, f"病情描述：{master.get('patient_condition_desc', '')}", width=_RIGHT - _LEFT)
    y -= 15
    purpose = master.get("exam_purpose", "")
    if purpose:
        sheet.text(_LEFT, y, f"检查目的：{purpose}", width=_RIGHT - _LEFT)
        y -= 15
    sheet.rule(y + 8)

    body_width = _RIGHT - _LEFT - 24
    y -= 12
    sheet.text(_LEFT, y, "检查所见：", 11.5)
    y -= 20
    for line in _wrap(master.get("image_descr", ""), body_width, 10.5)[:22]:
        sheet.text(_LEFT + 24, y, line, 10.5)
        y -= 17
    y -= 10
    abnormal = master.get("is_abnormal") == "0"  # seed: 1 = 正常, 0 = 异常
    sheet.text(_LEFT, y, "诊断意见：", 11.5)
    sheet.colour(_RED if abnormal else None)
    sheet.text(_RIGHT - 60, y, "【异常】" if abnormal else "【正常】", 10)
    y -= 20
    for line in _wrap(master.get("conclusion", ""), body_width, 10.5)[:8]:
        sheet.text(_LEFT + 24, y, line, 10.5)
        y -= 17
    sheet.colour(None)

    sheet.rule(128)
    sheet.grid(
        114,
        [
            [
                ("检查时间", master.get("performer_dtime", "")),
                ("报告时间", master.get("author_dtime", "")),
                ("审核时间", master.get("authenticator_dtime", "")),
            ],
            [
                ("检查技师", master.get("performer_doctor", "")),
                ("报告医生", master.get("author_name", "")),
                ("审核医生", master.get("authenticator_name", "")),
            ],
        ],
    )
    url = master.get("pacs_url", "")
    if url:
        sheet.text(_LEFT, 72, f"影像调阅：{url}", 7.5, width=_RIGHT - _LEFT)
    sheet.text(
        _LEFT, 58, f"注：本报告仅供临床参考，影像资料以原始图像为准。    机构编码：{master.get('org_code', '')}", 8
    )
    sheet.text(_LEFT, 40, _DEMO_NOTE, 7.5)
    return sheet.finish()
