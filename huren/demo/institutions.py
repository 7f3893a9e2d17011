"""The demo region's institutions: eight Urumqi hospitals and community health centres, and three
hospitals of 昌吉回族自治州 (a second virtual city platform on the same deployment, issue 13)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoOrg:
    code: str  # 9-char GB 11714 organisation code (8 digits + check character)
    name: str
    region_code: str  # 6-digit administrative division
    level: int  # 1, 2 or 3 (一级/二级/三级)
    grade: str  # "甲", "乙" or ""
    user: str
    password: str


def gb11714(body8: str) -> str:
    weights = (3, 7, 9, 10, 5, 8, 4, 2)
    check = 11 - sum(int(c) * w for c, w in zip(body8, weights, strict=True)) % 11
    return body8 + ("0" if check == 11 else "X" if check == 10 else str(check))


_ORGS: tuple[tuple[str, str, str, int, str], ...] = (
    ("45600218", "乌鲁木齐市第一人民医院", "650102", 3, "甲"),
    ("45600337", "乌鲁木齐市中医医院", "650103", 3, "甲"),
    ("45600442", "新市区人民医院", "650104", 2, "甲"),
    ("45600561", "水磨沟区人民医院", "650105", 2, "甲"),
    ("45600673", "沙依巴克区人民医院", "650103", 2, "乙"),
    ("45600896", "沙依巴克区长江路街道社区卫生服务中心", "650103", 1, ""),
    ("45600917", "天山区东门街道社区卫生服务中心", "650102", 1, ""),
    ("45601028", "水磨沟区七道湾街道社区卫生服务中心", "650105", 1, ""),
    # 昌吉回族自治州: 昌吉市
    ("45800118", "昌吉回族自治州人民医院", "652301", 3, "甲"),
    ("45800226", "昌吉市人民医院", "652301", 2, "甲"),
    ("45800334", "昌吉市中医医院", "652301", 2, "乙"),
)


def demo_orgs() -> list[DemoOrg]:
    """A fixed list of eleven institutions: eight in Urumqi (levels 1–3, four districts), three in
    Changji prefecture; the Urumqi ones first (the demo's first institutions are Urumqi's)."""
    orgs: list[DemoOrg] = []
    for body, name, region, level, grade in _ORGS:
        code = gb11714(body)
        orgs.append(DemoOrg(code, name, region, level, grade, "his", f"Demo#{code[-4:]}"))
    return orgs
