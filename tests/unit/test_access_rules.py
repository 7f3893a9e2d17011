"""The access table itself (huren.domain.access) and the regions it leans on (huren.domain.regions)."""

from __future__ import annotations

import pytest

from huren.context import ROLES, Principal
from huren.domain import access, regions
from huren.domain.access import ALL, OWN, REGION
from huren.errors import Forbidden, InvalidInput

DOCTOR = Principal("457759922", "doc", "doctor")
SUP = Principal("650100000", "admin", "supervisor")


def test_every_action_names_known_roles_and_a_chinese_title() -> None:
    for a in access.ACTIONS.values():
        assert set(a.grants) <= set(ROLES), a.name
        assert a.title and not a.title.isascii(), a.name
    assert set(access.SUBMISSION_ACTION.values()) <= set(access.ACTIONS)


def test_the_table_of_the_issue() -> None:
    """doctor: reads, decisions, quotes, reminders; admin / hospital: own writes and reads;
    supervisor: reads and statistics within its region, no clinical writes."""
    clinical_writes = ("report.write", "directory.write", "decision.write")
    assert all("supervisor" not in access.roles_for(n) for n in clinical_writes)
    assert access.roles_for("directory.write") == ("hospital", "admin")
    # a platform's system account (issue 13) applies a child platform's reports and decisions
    assert access.roles_for("report.write") == ("hospital", "admin", "platform")
    assert set(access.roles_for("decision.write")) == {"doctor", "hospital", "admin", "platform"}
    assert access.scope(SUP, "report.read") is REGION and access.scope(SUP, "statistics.read") is REGION
    assert access.scope(DOCTOR, "report.read") is ALL and access.scope(DOCTOR, "history.read") is OWN
    assert access.scope(DOCTOR, "quality.read") is None and access.scope(DOCTOR, "statistics.read") is None


def test_a_refusal_names_the_role_and_who_may() -> None:
    with pytest.raises(Forbidden) as exc:
        access.require(DOCTOR, "report.write")
    assert exc.value.message == "当前账号（医生）无权注册、重新提交、作废检查检验报告或上传报告PDF、日报"
    [p] = exc.value.problems
    assert (p.field, p.rule) == ("role", "access") and "机构接入账号、医院管理员" in p.message


def test_reach() -> None:
    P = access.Place
    assert access.in_reach(SUP, REGION, "457759933", P("650103"), P("650100"))
    assert not access.in_reach(SUP, REGION, "652301001", P("652301"), P("650100"))
    assert not access.in_reach(DOCTOR, OWN, "457759933", P("650103"), P("650102"))
    assert access.in_reach(DOCTOR, OWN, DOCTOR.org_code, None, None)
    assert access.in_reach(DOCTOR, ALL, "x", None, None)
    assert not access.in_reach(SUP, REGION, "x", P(), P())  # an institution with neither division nor platform
    assert access.refuse(SUP, REGION, "quality.read", "652301001").problems[0].rule == "region"
    assert access.refuse(DOCTOR, OWN, "report.write", "x").message == "只能提交或修改本机构的数据"


def test_reach_by_the_platform_tree() -> None:
    """REGION is the subtree of the caller's platform, intersected with its division (issue 13):
    the regional supervisor sees every city, a city's its own, two virtual cities never each other."""
    from huren.domain.platforms import Platform, PlatformTree

    tree = PlatformTree([
        Platform("XJ", "新疆区域平台", "region", division="650000", local=True),
        Platform("XJ-6501", "乌鲁木齐市平台", "city", parent="XJ", division="650100", local=False),
        Platform("XJ-6502", "克拉玛依市虚拟平台", "city", parent="XJ", division="650200", virtual=True, local=True),
        Platform("XJ-6523", "昌吉州虚拟平台", "city", parent="XJ", division="652300", virtual=True, local=True),
    ])
    P = access.Place
    region, karamay, changji = P("650000", "XJ"), P("650200", "XJ-6502"), P("652300", "XJ-6523")
    assert access.in_reach(SUP, REGION, "h1", P("650203", "XJ-6502"), region, tree)
    assert access.in_reach(SUP, REGION, "h1", P("650203", "XJ-6502"), karamay, tree)
    assert not access.in_reach(SUP, REGION, "h1", P("650203", "XJ-6502"), changji, tree)
    assert not access.in_reach(SUP, REGION, "h2", P("652301", "XJ-6523"), karamay, tree)
    # the platform decides even inside the division: a city institution not (yet) in the city's platform
    assert not access.in_reach(SUP, REGION, "h3", P("650203", ""), karamay, tree)
    # and the division inside the platform: a district supervisor of Karamay sees only its district
    assert not access.in_reach(SUP, REGION, "h1", P("650203", "XJ-6502"), P("650202", "XJ-6502"), tree)
    assert access.platform_in_reach(SUP, REGION, "XJ-6502", region, tree)
    assert access.platform_in_reach(SUP, REGION, "XJ-6502", karamay, tree)
    assert not access.platform_in_reach(SUP, REGION, "XJ", karamay, tree)
    assert not access.platform_in_reach(SUP, REGION, "XJ-6523", karamay, tree)
    assert tree.feeds("XJ-6502") == ["XJ-6502", "XJ"] and tree.feeds("XJ-6501") == ["XJ"]
    assert tree.for_division("650203") == "XJ-6502" and tree.for_division("650102") == "XJ"


def test_regions_in_one_room() -> None:
    assert regions.division_prefix("650100") == "6501" and regions.division_prefix("650000") == "65"
    assert regions.division_prefix("650102003") == "650102003"
    assert regions.in_division("650102", "650100") and not regions.in_division("652301", "650100")
    assert regions.parse_level("三级甲等") == (3, "甲") and regions.parse_level("2") == (2, "")
    with pytest.raises(InvalidInput):
        regions.parse_level("四级")
    assert regions.parse_min_level("") == regions.DEFAULT_MIN_LEVEL
    assert regions.parse_min_level("2级及以上") == 2 and regions.parse_min_level("甲") is None
    assert regions.parse_scope("65, 650100;x1 65") == (["65", "650100"], ["x1"])
    assert regions.split_scope("65，6501、6502\n6523") == ("65", "6501", "6502", "6523")
    assert regions.in_scope("650102", ()) and regions.in_scope("650102", ("650100",))
    assert not regions.in_scope("652301", ("650100", "6502"))
    assert regions.level_name(3, "甲") == "三级甲等" and regions.level_name(9) == "未定级"
    assert regions.is_org_region("650102") and not regions.is_org_region("6501")


def test_the_imaging_actions() -> None:
    """Issue 12: institutions push and delete their own images; doctors read anyone's images
    and ask for keys; supervisors read their region's; the viewed side verifies its own keys."""
    his = Principal("457759922", "pacs", "hospital")
    assert access.roles_for("image.write") == ("hospital", "admin") and access.scope(his, "image.write") is OWN
    assert access.scope(DOCTOR, "image.read") is ALL and access.scope(SUP, "image.read") is REGION
    assert access.scope(DOCTOR, "image_key.issue") is ALL and access.scope(SUP, "image_key.issue") is REGION
    assert access.scope(his, "image_key.verify") is OWN and access.scope(DOCTOR, "image_key.verify") is None
    assert access.scope(SUP, "dicom_node.write") is REGION and access.scope(his, "dicom_node.write") is None
    assert access.action("image.write").write and not access.action("image.read").write
