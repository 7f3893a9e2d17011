"""The SVG charts: well-formed, every text escaped, empty data and zero values handled."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from huren.web import charts
from huren.web.charts import Series

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img" and root.get("aria-label")
    assert root.find(f"{SVG}title") is not None
    return root


def _texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def _titles(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}title")]


def test_hbar_chart_draws_labels_values_and_notes() -> None:
    svg = charts.hbar_chart(
        [("第一人民医院", 0.75), ("中医医院", 0.5), ("没有决定", None)],
        title="各机构互认率", fmt=charts.percent, max_value=1.0, notes=["接受 3 / 决定 4", "接受 1 / 决定 2", ""],
    )
    root = _parse(svg)
    texts = _texts(root)
    assert "各机构互认率" in texts and "第一人民医院" in texts
    assert "75.0%  接受 3 / 决定 4" in texts and "无数据" in texts
    widths = [float(r.get("width", "0")) for r in root.iter(f"{SVG}rect")]
    assert widths[0] == pytest.approx(widths[1] * 1.5) and widths[2] == 0
    assert "第一人民医院：75.0%（接受 3 / 决定 4）" in _titles(root)


def test_labels_are_escaped() -> None:
    evil = '<script>alert("x")</script> & "引号"'
    for svg in (
        charts.hbar_chart([(evil, 1)], title=evil),
        charts.bar_chart([evil], [Series(evil, [2])], title=evil),
        charts.line_chart([evil, "b"], [Series(evil, [1, 2])], title=evil),
        charts.hbar_chart([], title=evil, empty=evil),
    ):
        assert "<script>" not in svg
        root = _parse(svg)  # still well-formed, and the text comes back unchanged
        assert root.get("aria-label") == evil
        assert evil in _texts(root) or evil in _titles(root)
        assert all(el.tag.startswith(SVG) for el in root.iter())


@pytest.mark.parametrize(
    "svg",
    [
        charts.hbar_chart([], title="空"),
        charts.bar_chart([], [Series("a", [])], title="空"),
        charts.bar_chart(["1"], [], title="空"),
        charts.line_chart([], [Series("a", [])], title="空"),
        charts.line_chart(["1", "2"], [Series("a", [None, None])], title="空"),
    ],
)
def test_empty_data_says_so(svg: str) -> None:
    root = _parse(svg)
    assert "暂无数据" in _texts(root)
    assert root.find(f"{SVG}rect") is None and root.find(f"{SVG}polyline") is None


def test_zero_values_do_not_divide_by_zero() -> None:
    root = _parse(charts.hbar_chart([("a", 0), ("b", 0)], title="零"))
    assert [float(r.get("width", "-1")) for r in root.iter(f"{SVG}rect")] == [0, 0]
    root = _parse(charts.bar_chart(["11-01", "11-02"], [Series("申报", [0, 0]), Series("实收", [0, 0])], title="零"))
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert len(bars) == 4 and all(float(r.get("height", "-1")) == 0 for r in bars)
    root = _parse(charts.line_chart(["11-01", "11-02"], [Series("率", [0, 0])], title="零", fmt=charts.percent))
    assert len(list(root.iter(f"{SVG}circle"))) == 2


def test_grouped_and_stacked_bars() -> None:
    cats = ["11-01", "11-02", "11-03"]
    series = [Series("接受", [3, 0, 5]), Series("不予互认", [1, 2, None])]
    grouped = _parse(charts.bar_chart(cats, series, title="分组"))
    stacked = _parse(charts.bar_chart(cats, series, title="堆叠", stacked=True))
    for root in (grouped, stacked):
        rects = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
        assert len(rects) == 6
        assert {"接受", "不予互认"} <= set(_texts(root))  # the legend
        assert "11-03 · 不予互认：无数据" in _titles(root)
    # stacked: the day's total is written above its bars; the scale covers it (3+1, 0+2, 5)
    assert "4" in _texts(stacked) and "5" in _texts(stacked)
    heights = {r.find(f"{SVG}title").text: float(r.get("height", "0")) for r in stacked.iter(f"{SVG}rect")  # type: ignore[union-attr]
               if r.find(f"{SVG}title") is not None}
    assert heights["11-01 · 接受：3"] == pytest.approx(3 * heights["11-01 · 不予互认：1"], abs=0.3)  # 1 decimal in the SVG


def test_line_chart_breaks_at_missing_values() -> None:
    root = _parse(charts.line_chart(
        ["1", "2", "3", "4", "5"], [Series("互认率", [0.5, 1.0, None, 0.25, 0.75])],
        title="趋势", fmt=charts.percent, max_value=1.0,
    ))
    lines = list(root.iter(f"{SVG}polyline"))
    assert [len((p.get("points") or "").split()) for p in lines] == [2, 2]
    assert len(list(root.iter(f"{SVG}circle"))) == 4
    assert "100.0%" in _texts(root) and "2 · 互认率：100.0%" in _titles(root)


def test_many_days_thin_out_the_axis_labels() -> None:
    days = [f"d{i:02d}" for i in range(60)]
    root = _parse(charts.line_chart(days, [Series("x", list(range(60)))], title="60天"))
    shown = [t for t in _texts(root) if t.startswith("d")]
    assert 5 < len(shown) < 60 and shown[0] == "d00"


def test_number_formats_and_scale() -> None:
    assert charts.number(12.0) == "12" and charts.number(3.456) == "3.46" and charts.number(0.5) == "0.5"
    assert charts.percent(0.8512) == "85.1%"
    assert [charts.nice_max(v) for v in (0, 3, 5, 37, 101)] == [4, 4, 8, 40, 200]
    assert charts.shorten("一二三四五六七八九十", 60) == "一二三四…"
