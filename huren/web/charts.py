"""Small SVG charts drawn on the server: horizontal bars, vertical (grouped or stacked) bars and
lines over days. Pure functions returning an ``<svg>`` string.

Every piece of text that ends up in the SVG (titles, labels, legends, tooltips) is escaped here
with ``xml.sax.saxutils``, so a template may insert the result with ``|safe``. Each chart has a
``<title>`` and ``role="img"`` with an ``aria-label`` for screen readers, and each bar or point a
``<title>`` that a browser shows as a tooltip.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

#: colours of the series, in order (blue, green, red, amber, grey, purple)
PALETTE = ("#1f5fa8", "#1e9e4a", "#c8372d", "#d98b00", "#9aa3ad", "#7b4fb0")
FONT = 'font-family="Noto Sans CJK SC, Microsoft YaHei, PingFang SC, sans-serif"'
EMPTY_TEXT = "暂无数据"

Number = float | int
Fmt = Callable[[float], str]


@dataclass(frozen=True, slots=True)
class Series:
    """One named series of values (``None``: no value, e.g. a rate without any decision)."""

    name: str
    values: Sequence[Number | None]
    color: str = ""


def number(v: float) -> str:
    """12 → "12", 3.456 → "3.46"."""
    if float(v).is_integer():
        return str(int(v))
    return f"{v:.2f}".rstrip("0").rstrip(".")


def percent(v: float) -> str:
    """0.8512 → "85.1%"."""
    return f"{v * 100:.1f}%"


def text_width(s: str, size: float = 12) -> float:
    """Rough rendered width: CJK and other wide characters count double."""
    return sum(size if ord(ch) > 0x2E7F else size * 0.6 for ch in s)


def shorten(s: str, width: float, size: float = 12) -> str:
    if text_width(s, size) <= width:
        return s
    out = ""
    for ch in s:
        if text_width(out + ch + "…", size) > width:
            break
        out += ch
    return out + "…"


def wrap(s: str, width: float, size: float = 12, max_lines: int = 4) -> list[str]:
    """``s`` broken into lines no wider than ``width`` (full text kept: a label is wrapped, not cut;
    only past ``max_lines`` lines is the last one shortened, and the full text is in the tooltip)."""
    lines: list[str] = []
    line = ""
    for ch in s:
        if line and text_width(line + ch, size) > width:
            lines.append(line)
            line = ""
        line += ch
    if line or not lines:
        lines.append(line)
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], shorten("".join(lines[max_lines - 1 :]), width, size)]
    return lines


def nice_max(v: float, ticks: int = 4) -> float:
    """A round top of the scale at or above ``v``: ``ticks`` steps of 1, 2 or 5 × 10ⁿ, at least 1
    per step (so that counts get whole-number ticks); ``v`` ≤ 0 gives ``ticks``."""
    raw = max(v, 0.0) / ticks
    if raw <= 1:
        return float(ticks)
    exp = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * exp >= raw - 1e-9:
            return float(m * exp * ticks)
    return float(10 * exp * ticks)  # pragma: no cover — the loop always returns


def _a(v: object) -> str:
    """An attribute value, quoted and escaped."""
    return quoteattr(str(v))


def _t(v: object) -> str:
    """Element text, escaped."""
    return escape(str(v))


def _fmt_num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _open(width: float, height: float, title: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="svgchart" role="img" aria-label={_a(title)} '
        f'width="{_fmt_num(width)}" height="{_fmt_num(height)}" viewBox="0 0 {_fmt_num(width)} {_fmt_num(height)}" {FONT}>',
        f"<title>{_t(title)}</title>",
        f'<text x="8" y="18" font-size="14" font-weight="600" fill="#222">{_t(title)}</text>',
    ]


def _empty(title: str, width: float = 640, height: float = 120, message: str = EMPTY_TEXT) -> str:
    parts = _open(width, height, title)
    parts.append(
        f'<text x="{_fmt_num(width / 2)}" y="{_fmt_num(height / 2 + 10)}" text-anchor="middle" font-size="13" '
        f'fill="#667" class="empty-chart">{_t(message)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _colors(series: Sequence[Series]) -> list[str]:
    return [s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]


def _legend(series: Sequence[Series], colors: Sequence[str], x: float, y: float, *, line: bool = False) -> list[str]:
    parts = ['<g class="legend">']
    for s, color in zip(series, colors, strict=True):
        if line:
            parts.append(f'<line x1="{_fmt_num(x)}" y1="{_fmt_num(y - 4)}" x2="{_fmt_num(x + 14)}" y2="{_fmt_num(y - 4)}" '
                         f'stroke={_a(color)} stroke-width="2.5"/>')
        else:
            parts.append(f'<rect x="{_fmt_num(x)}" y="{_fmt_num(y - 10)}" width="12" height="12" fill={_a(color)}/>')
        parts.append(f'<text x="{_fmt_num(x + 18)}" y="{_fmt_num(y)}" font-size="12" fill="#333">{_t(s.name)}</text>')
        x += 18 + text_width(s.name) + 18
    parts.append("</g>")
    return parts


def hbar_chart(
    items: Sequence[tuple[str, Number | None]],
    *,
    title: str,
    fmt: Fmt = number,
    max_value: float | None = None,
    width: float = 720,
    color: str = PALETTE[0],
    notes: Sequence[str] | None = None,
    empty: str = EMPTY_TEXT,
    x_label: str = "",
    label_width: float = 240,
) -> str:
    """Horizontal bars, one per (label, value); the value is written after the bar (``None``:
    "无数据"). ``notes`` adds a text per bar after its value (e.g. the counts behind a rate).
    Labels wider than ``label_width`` are wrapped onto more lines, not cut; ``x_label`` names the
    value axis's unit under its scale."""
    if not items:
        return _empty(title, width, message=empty)
    label_w = min(max(text_width(lbl) for lbl, _ in items) + 12, label_width)
    values = [float(v) for _, v in items if v is not None]
    top = max_value if max_value is not None else nice_max(max(values, default=0))
    top = top if top > 0 else 1.0
    line_h, bar_h, head = 15, 16, 32
    wrapped = [wrap(lbl, label_w - 8) for lbl, _ in items]
    heights = [max(24, line_h * len(w) + 9) for w in wrapped]
    x0 = label_w + 8
    plot_w = width - x0 - 170
    foot = 26 + (16 if x_label else 0)
    height = head + sum(heights) + foot
    parts = _open(width, height, title)
    axis_y = height - foot + 18
    # vertical grid lines at 0, 25, 50, 75, 100 % of the scale
    for i in range(5):
        gx = x0 + plot_w * i / 4
        parts.append(f'<line x1="{_fmt_num(gx)}" y1="{head - 4}" x2="{_fmt_num(gx)}" y2="{_fmt_num(height - foot + 4)}" stroke="#e6e9ee"/>')
        parts.append(f'<text x="{_fmt_num(gx)}" y="{_fmt_num(axis_y)}" font-size="10" fill="#667" text-anchor="middle">'
                     f"{_t(fmt(top * i / 4))}</text>")
    if x_label:
        parts.append(f'<text class="axis-label" x="{_fmt_num(x0 + plot_w / 2)}" y="{_fmt_num(axis_y + 15)}" font-size="10" '
                     f'fill="#667" text-anchor="middle">{_t(x_label)}</text>')
    y = float(head)
    for i, (label, value) in enumerate(items):
        rh = heights[i]
        shown = fmt(float(value)) if value is not None else "无数据"
        note = notes[i] if notes is not None and i < len(notes) else ""
        tip = f"{label}：{shown}" + (f"（{note}）" if note else "")
        parts.append(f'<g class="bar"><title>{_t(tip)}</title>')
        lines = wrapped[i]
        ty = y + (rh - line_h * len(lines)) / 2 + 11
        parts.append(f'<text x="{_fmt_num(label_w)}" y="{_fmt_num(ty)}" font-size="12" fill="#333" text-anchor="end">')
        if len(lines) == 1:
            parts.append(_t(lines[0]))
        else:  # wrapped: one tspan a line
            parts += [f'<tspan x="{_fmt_num(label_w)}" dy="{0 if j == 0 else line_h}">{_t(ln)}</tspan>' for j, ln in enumerate(lines)]
        parts.append("</text>")
        w = 0.0 if value is None else max(0.0, min(float(value), top)) / top * plot_w
        by = y + (rh - bar_h) / 2
        parts.append(f'<rect x="{_fmt_num(x0)}" y="{_fmt_num(by)}" width="{_fmt_num(w)}" height="{bar_h}" fill={_a(color)} rx="2"/>')
        text = shown + (f"  {note}" if note else "")
        parts.append(f'<text x="{_fmt_num(x0 + w + 6)}" y="{_fmt_num(by + 12)}" font-size="12" fill="#222">{_t(text)}</text></g>')
        y += rh
    parts.append("</svg>")
    return "".join(parts)


def _x_labels(categories: Sequence[str], plot_w: float) -> int:
    """Write every n-th category label so that they do not overlap."""
    widest = max((text_width(c, 10) for c in categories), default=0) + 8
    return max(1, math.ceil(len(categories) * widest / max(plot_w, 1)))


def _y_axis(parts: list[str], top: float, x0: float, y0: float, plot_w: float, plot_h: float, fmt: Fmt) -> None:
    for i in range(5):
        v = top * i / 4
        gy = y0 - plot_h * i / 4
        parts.append(f'<line x1="{_fmt_num(x0)}" y1="{_fmt_num(gy)}" x2="{_fmt_num(x0 + plot_w)}" y2="{_fmt_num(gy)}" '
                     f'stroke="{"#9aa3ad" if i == 0 else "#e6e9ee"}"/>')
        parts.append(f'<text x="{_fmt_num(x0 - 6)}" y="{_fmt_num(gy + 4)}" font-size="10" fill="#667" text-anchor="end">'
                     f"{_t(fmt(v))}</text>")


def bar_chart(
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    fmt: Fmt = number,
    stacked: bool = False,
    y_label: str = "",
    width: float = 720,
    height: float = 280,
    empty: str = EMPTY_TEXT,
    x_label: str = "",
) -> str:
    """Vertical bars per category (e.g. per day): one bar per series side by side, or stacked;
    ``y_label`` / ``x_label`` name the axes' units."""
    if not categories or not series:
        return _empty(title, width, message=empty)
    colors = _colors(series)
    n = len(categories)
    vals = [[(float(v) if v is not None else 0.0) for v in s.values] + [0.0] * (n - len(s.values)) for s in series]
    peak = max((sum(col) for col in zip(*vals, strict=True)), default=0) if stacked else max((max(v) for v in vals), default=0)
    top = nice_max(peak)
    x0, head, foot = 52.0, 62.0, 40.0
    plot_w, plot_h = width - x0 - 16, height - head - foot
    y0 = head + plot_h
    parts = _open(width, height, title)
    parts += _legend(series, colors, x0, 38)
    if y_label:
        parts.append(f'<text class="axis-label" x="8" y="{_fmt_num(head - 10)}" font-size="10" fill="#667">{_t(y_label)}</text>')
    if x_label:
        parts.append(f'<text class="axis-label" x="{_fmt_num(width - 8)}" y="{_fmt_num(height - 6)}" font-size="10" fill="#667" '
                     f'text-anchor="end">{_t(x_label)}</text>')
    _y_axis(parts, top, x0, y0, plot_w, plot_h, fmt)
    slot = plot_w / n
    group_w = slot * 0.8
    bar_w = group_w if stacked else group_w / len(series)
    every = _x_labels(categories, plot_w)
    for i, cat in enumerate(categories):
        gx = x0 + slot * i + slot * 0.1
        base = y0
        for j, s in enumerate(series):
            raw = s.values[i] if i < len(s.values) else None
            v = vals[j][i]
            h = v / top * plot_h
            bx = gx if stacked else gx + j * bar_w
            by = base - h if stacked else y0 - h
            tip = f"{cat} · {s.name}：{fmt(v) if raw is not None else '无数据'}"
            parts.append(f'<rect x="{_fmt_num(bx)}" y="{_fmt_num(by)}" width="{_fmt_num(max(bar_w - 1, 0.5))}" '
                         f'height="{_fmt_num(h)}" fill={_a(colors[j])}><title>{_t(tip)}</title></rect>')
            if stacked:
                base -= h
            elif n * len(series) <= 24 and raw is not None:
                parts.append(f'<text x="{_fmt_num(bx + bar_w / 2)}" y="{_fmt_num(by - 3)}" font-size="10" fill="#333" '
                             f'text-anchor="middle">{_t(fmt(v))}</text>')
        if stacked and n <= 24:
            total = sum(vals[j][i] for j in range(len(series)))
            parts.append(f'<text x="{_fmt_num(gx + group_w / 2)}" y="{_fmt_num(base - 3)}" font-size="10" fill="#333" '
                         f'text-anchor="middle">{_t(fmt(total))}</text>')
        if i % every == 0:
            parts.append(f'<text x="{_fmt_num(gx + group_w / 2)}" y="{_fmt_num(y0 + 14)}" font-size="10" fill="#444" '
                         f'text-anchor="middle">{_t(cat)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    fmt: Fmt = number,
    max_value: float | None = None,
    y_label: str = "",
    width: float = 720,
    height: float = 260,
    empty: str = EMPTY_TEXT,
    x_label: str = "",
    notes: Sequence[str | None] | None = None,
) -> str:
    """Lines over categories (e.g. days); a ``None`` value breaks the line. ``notes`` (one per
    category, e.g. ``n=12``: how many the point stands on) is written beside each point of the
    first series and in its tooltip; ``y_label`` / ``x_label`` name the axes' units."""
    if not categories or not series or all(v is None for s in series for v in s.values):
        return _empty(title, width, message=empty)
    colors = _colors(series)
    n = len(categories)
    peak = max((float(v) for s in series for v in s.values if v is not None), default=0.0)
    top = max_value if max_value is not None else nice_max(peak)
    top = top if top > 0 else 1.0
    x0, head, foot = 52.0, 62.0, 40.0
    plot_w, plot_h = width - x0 - 24, height - head - foot
    y0 = head + plot_h
    parts = _open(width, height, title)
    parts += _legend(series, colors, x0, 38, line=True)
    if y_label:
        parts.append(f'<text class="axis-label" x="8" y="{_fmt_num(head - 10)}" font-size="10" fill="#667">{_t(y_label)}</text>')
    if x_label:
        parts.append(f'<text class="axis-label" x="{_fmt_num(width - 8)}" y="{_fmt_num(height - 6)}" font-size="10" fill="#667" '
                     f'text-anchor="end">{_t(x_label)}</text>')
    _y_axis(parts, top, x0, y0, plot_w, plot_h, fmt)
    step = plot_w / max(n - 1, 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        x = x0 + (step * i if n > 1 else plot_w / 2)
        return x, y0 - max(0.0, min(v, top)) / top * plot_h

    every = _x_labels(categories, plot_w)
    for i, cat in enumerate(categories):
        if i % every == 0:
            x, _ = xy(i, 0)
            parts.append(f'<text x="{_fmt_num(x)}" y="{_fmt_num(y0 + 14)}" font-size="10" fill="#444" '
                         f'text-anchor="middle">{_t(cat)}</text>')
    for s, color in zip(series, colors, strict=True):
        parts.append(f'<g class="series" data-name={_a(s.name)}>')
        segment: list[str] = []
        runs: list[list[str]] = []
        for i in range(n):
            v = s.values[i] if i < len(s.values) else None
            if v is None:
                if segment:
                    runs.append(segment)
                segment = []
                continue
            x, y = xy(i, float(v))
            segment.append(f"{_fmt_num(x)},{_fmt_num(y)}")
        if segment:
            runs.append(segment)
        for run in runs:
            if len(run) > 1:
                parts.append(f'<polyline points="{" ".join(run)}" fill="none" stroke={_a(color)} stroke-width="2"/>')
        for i in range(n):
            v = s.values[i] if i < len(s.values) else None
            if v is None:
                continue
            x, y = xy(i, float(v))
            note = notes[i] if notes is not None and i < len(notes) and s is series[0] else None
            tip = f"{categories[i]} · {s.name}：{fmt(float(v))}" + (f"（{note}）" if note else "")
            parts.append(f'<circle cx="{_fmt_num(x)}" cy="{_fmt_num(y)}" r="3" fill={_a(color)}><title>{_t(tip)}</title></circle>')
            if note and n <= 31:
                parts.append(f'<text class="point-note" x="{_fmt_num(x)}" y="{_fmt_num(y - 7)}" font-size="9" fill="#556" '
                             f'text-anchor="middle">{_t(note)}</text>')
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)
