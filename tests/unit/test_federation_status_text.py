"""``huren federation status`` reads in Chinese for the operator (``--json`` for a monitor)."""

from __future__ import annotations

from huren.cli.federation import status_text


def test_both_sides_reachable() -> None:
    text = status_text({
        "platform": "XJ-6501", "checked_at": "2026-12-01 19:50:00", "source_last_seq": 120, "backlog": 20,
        "target": {"applied_seq": 100, "applied_total": 100, "applied_at": "2026-12-01 19:49:58", "gaps": 1,
                   "last_error": "变更序号不连续：应从 101 开始，收到 105"},
    })
    assert "下级平台订阅的最后序号：120" in text and "上级平台已应用到：100" in text and "积压：20 条" in text
    assert "序号缺口：1 次" in text and "应从 101 开始" in text


def test_an_unreachable_side_is_named() -> None:
    text = status_text({"platform": "XJ-6501", "checked_at": "2026-12-01 19:50:00", "source_error": "互认平台无法连接",
                        "target_error": "HTTP 503"})
    assert "下级平台无法读取：互认平台无法连接" in text and "上级平台无法读取：HTTP 503" in text and "积压" not in text
