"""The pure parts of 平台与同步 and of the 「按平台」 grouping (issue 13): when a backlog counts as
growing, how the last error and durations read, which row an institution's platform counts under."""

from __future__ import annotations

from huren.domain.platforms import Platform, PlatformTree
from huren.services.platform_groups import NONE, describe, group_of, ordered
from huren.services.platform_view import alerts_for, error_text, growing, minutes

TREE = PlatformTree([
    Platform("CN", "京津冀区域平台", "cross"),
    Platform("XJ", "新疆维吾尔自治区平台", "region", parent="CN", division="650000", local=True),
    Platform("XJ-6501", "乌鲁木齐市平台", "city", parent="XJ", division="650100"),
    Platform("XJ-6523", "昌吉州虚拟平台", "city", parent="XJ", division="652300", virtual=True, local=True),
])


def test_a_backlog_grows_when_the_last_three_readings_do_not_fall_and_end_higher() -> None:
    assert growing([(0.0, 5), (60.0, 7)]) is None  # two readings say nothing yet
    assert growing([(0.0, 5), (60.0, 7), (120.0, 9)]) == (5, 9, 120.0)
    assert growing([(0.0, 5), (60.0, 5), (120.0, 6)]) == (5, 6, 120.0)
    assert growing([(0.0, 5), (60.0, 5), (120.0, 5)]) is None  # flat
    assert growing([(0.0, 9), (60.0, 5), (120.0, 7)]) is None  # fell in between
    assert growing([(0.0, 1), (10.0, 9), (20.0, 8), (30.0, 9), (40.0, 12)]) == (8, 12, 20.0)  # only the last three


def test_errors_and_durations_read_in_chinese() -> None:
    # as FederationService.apply stores them
    assert error_text("变更序号不连续：应从 5 开始，收到 10") == "变更序号不连续：应从 5 开始，收到 10（已要求从 5 重新读取）"
    assert error_text("3 条变更被拒收（已作为被拒提交保存）") == "最近一批中有 3 条变更被本平台拒收（见整改进度）"
    assert error_text(None) == "" and error_text("something else") == "something else"
    assert [minutes(s) for s in (5, 119, 120, 2700, 7200, 3 * 86400)] == ["5 秒", "119 秒", "2 分钟", "45 分钟", "2.0 小时", "3.0 天"]


def _peer(**kw: object) -> dict[str, object]:
    return {"platform": "XJ-6501", "backlog": 0, "gaps": 0, "last_error": None, "applied_at": "2026-12-01 08:00:00",
            "idle_seconds": 60.0} | kw


def test_the_alerts_of_one_child() -> None:
    assert alerts_for(_peer(), "乌鲁木齐市平台", 30, None) == []
    silent = alerts_for(_peer(idle_seconds=3600.0, backlog=12), "乌鲁木齐市平台", 30, None)
    assert [(a.kind, a.level) for a in silent] == [("silent", "bad")]
    assert silent[0].message == "乌鲁木齐市平台：已 60 分钟没有应用新的变更（超过 30 分钟），积压 12 条"
    never = alerts_for(_peer(applied_at=None, idle_seconds=None, backlog=3), "乌鲁木齐市平台", 30, None)
    assert [a.kind for a in never] == ["never"] and "积压 3 条" in never[0].message
    both = alerts_for(_peer(gaps=2, last_error="变更序号不连续：应从 5 开始，收到 9"), "乌鲁木齐市平台", 30, (4, 9, 600.0))
    assert [a.kind for a in both] == ["backlog", "gap"]  # the gap's error is not repeated as an error
    assert "10 分钟内由 4 条增至 9 条" in both[0].message and "2 次变更序号缺口" in both[1].message
    assert [a.kind for a in alerts_for(_peer(last_error="2 条变更被拒收（已作为被拒提交保存）"), "乌鲁木齐市平台", 30, None)] == ["refused"]


def test_an_institution_counts_under_its_city() -> None:
    assert group_of(TREE, "XJ-6523") == "XJ-6523"
    assert group_of(TREE, "XJ") == "XJ" and describe(TREE, "XJ").direct
    assert describe(TREE, "XJ").name == "新疆维吾尔自治区平台（直属机构）"
    assert group_of(TREE, "CN") == "CN"
    assert group_of(TREE, "") == NONE and group_of(TREE, "unknown") == NONE and describe(TREE, NONE).name == "未归属平台"
    described = {k: describe(TREE, k) for k in ("XJ", "XJ-6523", "XJ-6501", NONE, "CN")}
    assert ordered(described, described) == ["XJ-6501", "XJ-6523", "CN", "XJ", NONE]
