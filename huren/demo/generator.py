"""Deterministic demo data for the report-sync interfaces of seed 002 §1.2.2.

Everything here is pure: the only source of randomness is the ``random.Random``
passed in (plus fixed, hash-derived per-institution rosters and per-visit
details, so the same patient seen at the same institution on the same day gets
the same visit number, department and ordering doctor).  The only I/O is
reading the packaged item catalog (``huren/demo/data/catalog-demo.csv``).

Payload values are strings exactly as they would appear as XML attributes:
times ``YYYY-MM-DD HH:MM:SS``, dates ``YYYY-MM-DD``.  Field names are those of
the seed's tables (``labmaster``, ``lab_subitem``, ``exammaster``,
``exam_subitem``, ``lab_exam_report``).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from huren.demo import pdf
from huren.domain import idcard

__all__ = [
    "CatalogItem",
    "DemoOrg",
    "DemoPatient",
    "demo_orgs",
    "load_catalog",
    "make_daily_counts",
    "make_exam_report",
    "make_lab_report",
    "make_patients",
]

_DT = "%Y-%m-%d %H:%M:%S"


def _ts(moment: datetime) -> str:
    return moment.strftime(_DT)


# ---------------------------------------------------------------------------
# catalog


@dataclass(frozen=True)
class CatalogItem:
    """One row of the packaged standard-item catalog."""

    kind: str  # "lab" or "exam"
    code: str
    name: str
    unit: str
    validity_days: int


@cache
def load_catalog() -> Mapping[str, CatalogItem]:
    """The packaged catalog keyed by code (read-only)."""
    text = (
        resources.files("huren.demo")
        .joinpath("data/catalog-demo.csv")
        .read_text(encoding="utf-8")
    )
    items: dict[str, CatalogItem] = {}
    for row in csv.DictReader(io.StringIO(text)):
        items[row["code"]] = CatalogItem(
            kind=row["kind"],
            code=row["code"],
            name=row["name"],
            unit=row["unit"],
            validity_days=int(row["validity_days"]),
        )
    return MappingProxyType(items)


def _recognition(kind: str, code: str) -> str:
    item = load_catalog().get(code)
    return "1" if item is not None and item.kind == kind else "0"


# ---------------------------------------------------------------------------
# institutions


@dataclass(frozen=True)
class DemoOrg:
    code: str  # 9-char GB 11714 organisation code (8 digits + check character)
    name: str
    region_code: str  # 6-digit administrative division
    level: int  # 1, 2 or 3 (一级/二级/三级)
    grade: str  # "甲", "乙" or ""
    user: str
    password: str


def _gb11714(body8: str) -> str:
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
)


def demo_orgs() -> list[DemoOrg]:
    """A fixed list of eight Urumqi institutions (levels 1–3, four districts)."""
    orgs: list[DemoOrg] = []
    for body, name, region, level, grade in _ORGS:
        code = _gb11714(body)
        orgs.append(DemoOrg(code, name, region, level, grade, "his", f"Demo#{code[-4:]}"))
    return orgs


# ---------------------------------------------------------------------------
# names and patients


@dataclass(frozen=True)
class DemoPatient:
    id_type_code: str  # "01" resident ID card, "03" passport
    id_no: str
    name: str
    sex_code: str  # "1" or "2"
    sex_name: str  # "男性"/"女性"
    birth_date: date
    card_no: str


_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚"
)
_HUI_SURNAMES = "马杨白丁韩金沙"
_GIVEN_MALE = "伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波宇浩凯健俊帆帅旭宁龙林阳建志国文博新海峰"
_GIVEN_FEMALE = "芳娜敏静丽艳娟霞秀玲桂英萍红梅琳雪婷倩颖慧莉燕洁欣怡佳琪月晶蕾薇丹璐瑶兰"
_UY_MALE = (
    "艾力", "买买提", "阿不都", "艾尔肯", "吐尔洪", "亚森", "热合曼", "努尔", "伊力哈木", "阿迪力",
    "麦麦提", "吾斯曼", "肉孜", "库尔班", "艾合买提", "帕尔哈提", "迪里夏提", "玉素甫", "依明", "艾克拜尔",
)
_UY_FEMALE = (
    "阿依古丽", "古丽米拉", "迪丽娜尔", "热依拉", "帕提古丽", "努尔古丽", "古再丽努尔", "米热古丽",
    "再努尔", "阿依努尔", "祖丽菲亚", "热孜宛古丽", "海丽其汗", "布维", "阿依夏姆", "加米拉",
)
_UY_FATHER = (
    "买买提", "吐尔逊", "艾买提", "阿不都拉", "司马义", "肉孜", "卡德尔", "吾甫尔", "依明",
    "托合提", "玉素甫", "艾山", "吾买尔", "尼亚孜", "阿不力米提", "克里木",
)
_KZ_MALE = ("叶尔兰", "努尔兰", "阿斯哈尔", "别克", "哈力木拉提", "叶尔江", "达吾列提")
_KZ_FEMALE = ("古丽娜尔", "阿依达娜", "玛丽亚", "阿依达尔", "娜孜古丽", "哈丽黛")
_KZ_FATHER = ("阿合买提", "努尔旦", "吐尔逊拜", "哈斯木", "别克", "加尔肯")

_URUMQI = ("650102", "650103", "650104", "650105", "650106", "650109", "650121")
_XJ_OTHER = ("652301", "650202", "652801", "654002", "650502")
_XJ_SOUTH = ("653101", "653201", "652901", "650402", "652801")
_KZ_REGIONS = ("654002", "654201", "652301", "650109", "654301")
_INLAND = ("410105", "510107", "620102", "320106", "370202", "610113", "130102")

_REF_DAY = date(2023, 1, 1)  # birth dates lie before this, so reports from 2023 on are sane


def _han_name(rng: random.Random, male: bool, surnames: str = _SURNAMES) -> str:
    pool = _GIVEN_MALE if male else _GIVEN_FEMALE
    given = rng.choice(pool) if rng.random() < 0.3 else rng.choice(pool) + rng.choice(pool)
    return rng.choice(surnames) + given


def _person_name(rng: random.Random, male: bool) -> tuple[str, str]:
    """(name, ethnicity) with ethnicity in han/hui/uyghur/kazakh."""
    r = rng.random()
    if r < 0.62:
        return _han_name(rng, male), "han"
    if r < 0.70:
        return _han_name(rng, male, _HUI_SURNAMES), "hui"
    if r < 0.94:
        given = rng.choice(_UY_MALE if male else _UY_FEMALE)
        return f"{given}·{rng.choice(_UY_FATHER)}", "uyghur"
    given = rng.choice(_KZ_MALE if male else _KZ_FEMALE)
    return f"{given}·{rng.choice(_KZ_FATHER)}", "kazakh"


def _birth_date(rng: random.Random) -> date:
    bucket = rng.choices(((1, 14), (15, 44), (45, 64), (65, 90)), weights=(12, 35, 30, 23))[0]
    age_days = rng.randrange(bucket[0] * 365, (bucket[1] + 1) * 365)
    return _REF_DAY - timedelta(days=age_days)


def _region(rng: random.Random, ethnicity: str) -> str:
    r = rng.random()
    if ethnicity == "uyghur":
        return rng.choice(_URUMQI if r < 0.5 else _XJ_SOUTH)
    if ethnicity == "kazakh":
        return rng.choice(_KZ_REGIONS)
    if r < 0.6:
        return rng.choice(_URUMQI)
    return rng.choice(_XJ_OTHER if r < 0.75 else _INLAND)


def _one_patient(rng: random.Random) -> DemoPatient:
    male = rng.random() < 0.5
    name, ethnicity = _person_name(rng, male)
    born = _birth_date(rng)
    if rng.random() < 0.04:
        prefix = "N" if ethnicity == "kazakh" else "E"
        id_type, id_no = "03", f"{prefix}{rng.randrange(10**8):08d}"
        card_no = "" if rng.random() < 0.5 else f"K{rng.randrange(10**8):08d}"
    else:
        parity = rng.choice((1, 3, 5, 7, 9) if male else (0, 2, 4, 6, 8))
        sequence = rng.randrange(100) * 10 + parity
        id_type, id_no = "01", idcard.make(_region(rng, ethnicity), born, sequence)
        card_no = f"K{rng.randrange(10**8):08d}"
    return DemoPatient(
        id_type_code=id_type,
        id_no=id_no,
        name=name,
        sex_code="1" if male else "2",
        sex_name="男性" if male else "女性",
        birth_date=born,
        card_no=card_no,
    )


def make_patients(rng: random.Random, n: int) -> list[DemoPatient]:
    """``n`` patients with distinct ID numbers (about 4 % carry a passport, type "03")."""
    if n < 0:
        raise ValueError("n must be >= 0")
    patients: list[DemoPatient] = []
    seen: set[str] = set()
    while len(patients) < n:
        patient = _one_patient(rng)
        key = patient.id_type_code + patient.id_no
        if key not in seen:
            seen.add(key)
            patients.append(patient)
    return patients


def _age(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


# ---------------------------------------------------------------------------
# departments, staff, devices (fixed per institution)


@dataclass(frozen=True)
class _Dept:
    code: str
    name: str
    std_code: str  # STD_DEPT
    std_name: str
    event_type: str = ""  # "1" clinic, "2" ward, "" medical-technical department
    sex: str = ""  # "2": female patients only
    min_age: int = 0
    max_age: int = 200


@dataclass(frozen=True)
class _Person:
    id: str
    name: str


_CLINICS_HOSPITAL = (
    _Dept("1101", "内科门诊", "A03", "内科", "1", min_age=14),
    _Dept("1102", "呼吸内科门诊", "A03.01", "呼吸内科专业", "1", min_age=14),
    _Dept("1103", "消化内科门诊", "A03.02", "消化内科专业", "1", min_age=14),
    _Dept("1104", "心血管内科门诊", "A03.04", "心血管内科专业", "1", min_age=14),
    _Dept("1105", "内分泌科门诊", "A03.07", "内分泌专业", "1", min_age=14),
    _Dept("1106", "神经内科门诊", "A03.03", "神经内科专业", "1", min_age=14),
    _Dept("1201", "普外科门诊", "A04.01", "普通外科专业", "1", min_age=14),
    _Dept("1203", "骨科门诊", "A04.03", "骨科专业", "1"),
    _Dept("1301", "妇科门诊", "A05.01", "妇科专业", "1", sex="2", min_age=14),
    _Dept("1401", "儿科门诊", "A07", "儿科", "1", max_age=13),
    _Dept("1411", "耳鼻喉门诊", "A11", "耳鼻咽喉科", "1"),
    _Dept("1501", "急诊科", "A20", "急诊医学科", "1"),
    _Dept("1511", "体检中心", "A01", "预防保健科", "1", min_age=14),
)
_WARDS_HOSPITAL = (
    _Dept("2102", "呼吸内科病区", "A03.01", "呼吸内科专业", "2", min_age=14),
    _Dept("2104", "心血管内科病区", "A03.04", "心血管内科专业", "2", min_age=14),
    _Dept("2105", "内分泌科病区", "A03.07", "内分泌专业", "2", min_age=14),
    _Dept("2201", "普外科病区", "A04.01", "普通外科专业", "2", min_age=14),
    _Dept("2203", "骨科病区", "A04.03", "骨科专业", "2"),
    _Dept("2302", "产科病区", "A05.02", "产科专业", "2", sex="2", min_age=18, max_age=50),
    _Dept("2401", "儿科病区", "A07", "儿科", "2", max_age=13),
)
_ICU = _Dept("2801", "重症医学科", "A28", "重症医学科", "2")
_TCM = _Dept("1601", "中医科门诊", "A50", "中医科", "1")
_CLINICS_COMMUNITY = (
    _Dept("1001", "全科门诊", "A02", "全科医疗科", "1"),
    _Dept("1002", "预防保健科", "A01", "预防保健科", "1"),
    _Dept("1003", "中医科", "A50", "中医科", "1"),
    _Dept("1004", "维吾尔医科", "A51.01", "维吾尔医学", "1", min_age=14),
    _Dept("1005", "妇女保健科", "A06", "妇女保健科", "1", sex="2", min_age=14),
)

_LAB = "LAB"
_MODALITY_DEPT: dict[str, tuple[str, str, str, str]] = {
    # key -> (local code, local name, STD_DEPT code, STD_DEPT name)
    _LAB: ("4300", "检验科", "A30", "医学检验科"),
    "DR": ("3221", "放射科", "A32.01", "X线诊断专业"),
    "CT": ("3222", "CT室", "A32.02", "CT诊断专业"),
    "MR": ("3223", "磁共振室", "A32.03", "磁共振成像诊断专业"),
    "US": ("3230", "超声医学科", "A32.05", "超声诊断专业"),
    "ECG": ("3240", "心电图室", "A32.06", "心电诊断专业"),
}
_COMMUNITY_TECH_NAMES = {_LAB: "检验室", "DR": "放射室", "US": "B超室"}

_DEVICES: dict[str, tuple[str, ...]] = {
    "HEM/BC": ("Sysmex XN-1000", "迈瑞BC-6800", "Sysmex XN-550"),
    "CHEM": ("迈瑞BS-2000M", "Beckman Coulter AU5800", "Roche cobas c701"),
    "COAG": ("Sysmex CS-5100", "Stago STA-R Max", "沃文特C3510"),
    "UA": ("爱威AVE-766B", "Sysmex UF-5000"),
    "SERO": ("Abbott Architect i2000SR", "迈瑞CL-6000i", "Roche cobas e601"),
    "DR": ("Siemens Ysio Max", "Philips DigitalDiagnost C90", "联影uDR 780i"),
    "CT": ("Siemens SOMATOM Force", "GE Revolution CT", "联影uCT 760"),
    "MR": ("Siemens MAGNETOM Skyra 3.0T", "Philips Ingenia 3.0T", "联影uMR 770"),
    "US": ("GE LOGIQ E20", "迈瑞Resona 7", "Philips EPIQ 7"),
    "ECG": ("GE MAC 2000", "光电ECG-1250C"),
}


@dataclass(frozen=True)
class _Profile:
    clinical: tuple[_Dept, ...]
    tech: Mapping[str, _Dept]  # _LAB / modality -> performing department
    doctors: Mapping[str, tuple[_Person, ...]]  # dept code -> clinicians
    performers: Mapping[str, tuple[_Person, ...]]  # _LAB / modality -> technicians
    authors: Mapping[str, tuple[_Person, ...]]
    auditors: Mapping[str, tuple[_Person, ...]]
    devices: Mapping[str, str]  # panel class / modality -> device name
    modalities: tuple[str, ...]


def _org_modalities(level: int) -> tuple[str, ...]:
    return {1: ("DR", "US", "ECG"), 2: ("DR", "CT", "US", "ECG")}.get(
        level, ("DR", "CT", "MR", "US", "ECG")
    )


@cache
def _profile(org: DemoOrg) -> _Profile:
    prng = random.Random(f"huren-demo-staff|{org.code}")
    if org.level == 1:
        clinical: tuple[_Dept, ...] = _CLINICS_COMMUNITY
    elif org.level == 2:
        clinical = (*_CLINICS_HOSPITAL, *_WARDS_HOSPITAL)
    else:
        clinical = (*_CLINICS_HOSPITAL, _TCM, *_WARDS_HOSPITAL, _ICU)
    modalities = _org_modalities(org.level)
    tech: dict[str, _Dept] = {}
    for key in (_LAB, *modalities):
        code, name, std_code, std_name = _MODALITY_DEPT[key]
        if org.level == 1:
            name = _COMMUNITY_TECH_NAMES.get(key, name)
        tech[key] = _Dept(code, name, std_code, std_name)

    ids = iter(prng.sample(range(1000, 10000), 400))

    def staff(n: int) -> tuple[_Person, ...]:
        return tuple(_Person(str(next(ids)), _person_name(prng, prng.random() < 0.5)[0]) for _ in range(n))

    doctors = {d.code: staff(3) for d in clinical}
    performers = {key: staff(3) for key in tech}
    authors = {key: staff(3) for key in tech}
    auditors = {key: staff(2) for key in tech}
    devices = {key: prng.choice(names) for key, names in _DEVICES.items()}
    return _Profile(
        clinical=clinical,
        tech=MappingProxyType(tech),
        doctors=MappingProxyType(doctors),
        performers=MappingProxyType(performers),
        authors=MappingProxyType(authors),
        auditors=MappingProxyType(auditors),
        devices=MappingProxyType(devices),
        modalities=modalities,
    )


def _digest(*parts: str) -> int:
    raw = hashlib.blake2b("|".join(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(raw, "big")


@dataclass(frozen=True)
class _Visit:
    event_type: str
    event_no: str
    patient_id: str
    dept: _Dept
    doctor: _Person


def _visit(org: DemoOrg, patient: DemoPatient, day: date) -> _Visit:
    """Per (institution, patient, day): the same visit for every report of that day."""
    vr = random.Random(_digest("visit", org.code, patient.id_type_code, patient.id_no, day.isoformat()))
    profile = _profile(org)
    age = _age(patient.birth_date, day)

    def fits(d: _Dept) -> bool:
        return (not d.sex or d.sex == patient.sex_code) and d.min_age <= age <= d.max_age

    inpatient_share = {1: 0.0, 2: 0.25}.get(org.level, 0.35)
    event_type = "2" if vr.random() < inpatient_share else "1"
    candidates = [d for d in profile.clinical if d.event_type == event_type and fits(d)]
    if not candidates:
        event_type = "1"
        candidates = [d for d in profile.clinical if d.event_type == "1" and fits(d)]
    if not candidates:  # pragma: no cover - every profile has an unrestricted clinic
        candidates = [d for d in profile.clinical if d.event_type == "1"]
    dept = vr.choice(candidates)
    if event_type == "1":
        event_no = f"{day:%Y%m%d}{vr.randrange(10**5):05d}"
    else:
        event_no = f"ZY{day:%Y}{vr.randrange(10**6):06d}"
    patient_id = f"{_digest('pid', org.code, patient.id_type_code, patient.id_no) % 10**10:010d}"
    return _Visit(event_type, event_no, patient_id, dept, vr.choice(profile.doctors[dept.code]))


_PRIORITY_NAMES = {"A": "尽快", "P": "术前", "R": "常规", "S": "急诊", "9": "时间安排至关重要"}


def _priority(rng: random.Random, visit: _Visit, *, preop: bool = False) -> tuple[str, str]:
    if visit.dept.std_code == "A20":
        code = "S"
    elif preop and visit.event_type == "2":
        code = "P"
    elif visit.event_type == "2":
        code = rng.choices(("R", "S", "A"), weights=(70, 20, 10))[0]
    else:
        code = rng.choices(("", "R", "S", "A"), weights=(40, 55, 3, 2))[0]
    return code, _PRIORITY_NAMES.get(code, "")


# ---------------------------------------------------------------------------
# lab panels


@dataclass(frozen=True)
class _Analyte:
    """A quantitative (PQ) item.  ``low``/``high`` None means an open-ended range."""

    key: str
    code: str
    std_name: str
    local_name: str
    unit: str
    low: float | None
    high: float | None
    decimals: int
    method: str = ""
    female: tuple[float | None, float | None] | None = None
    step: float = 0.0  # quantise drawn values (e.g. dipstick pH)
    p_abnormal: float = 0.07

    def limits(self, sex_code: str) -> tuple[float | None, float | None]:
        if sex_code == "2" and self.female is not None:
            return self.female
        return self.low, self.high


@dataclass(frozen=True)
class _Qual:
    """A qualitative (CD) item; ``outcomes`` are (value, STD_OBSERVATION_INTERPRET, weight)."""

    key: str
    code: str
    std_name: str
    local_name: str
    outcomes: tuple[tuple[str, str, float], ...]
    method: str = ""
    notes: str = "阴性"


_Item = _Analyte | _Qual


@dataclass(frozen=True)
class _Panel:
    title: str  # report_title
    loinc_class: str  # labmaster.class_code (LOINC CLASS of the report)
    class_name: str
    class_local_name: str
    specimen: str  # HL7 table 0487 specimen type code
    device: str  # key into _DEVICES
    items: tuple[_Item, ...]
    weight: float
    min_level: int = 1
    derive: Callable[[dict[str, float]], None] | None = None
    patterns: tuple[tuple[frozenset[str], float], ...] = ()  # qualitative: positive keys
    preop: bool = False


_NEG = (("阴性", "N", 1.0),)


def _derive_cbc(v: dict[str, float]) -> None:
    # RBC, MCV and MCHC are drawn; the rest follows (HCT = RBC×MCV, HGB = RBC×MCH, MCHC = HGB/HCT).
    v["MCH"] = v["MCV"] * v["MCHC"] / 1000
    v["HCT"] = v["RBC"] * v["MCV"] / 10
    v["HGB"] = v["RBC"] * v["MCH"]
    others = v["LYMPH%"] + v["MONO%"] + v["EO%"] + v["BASO%"]
    if others > 92:
        scale = 92 / others
        for key in ("LYMPH%", "MONO%", "EO%", "BASO%"):
            v[key] *= scale
        others = 92
    v["NEUT%"] = 100 - others
    for cell in ("NEUT", "LYMPH", "MONO", "EO", "BASO"):
        v[f"{cell}#"] = v["WBC"] * v[f"{cell}%"] / 100


def _derive_liver(v: dict[str, float]) -> None:
    v["DBIL"] = min(v["DBIL"], v["TBIL"] * 0.6)
    v["IBIL"] = v["TBIL"] - v["DBIL"]
    v["TP"] = v["ALB"] + v["GLB"]
    v["A/G"] = v["ALB"] / v["GLB"]


def _derive_lytes(v: dict[str, float]) -> None:
    v["Cl"] = v["Na"] - v["AG"] - v["HCO3"]


def _derive_coag(v: dict[str, float]) -> None:
    v["INR"] = v["PT"] / 12.0


_CBC = _Panel(
    "血常规", "HEM/BC", "血液学与细胞计数", "临检", "BLD", "HEM/BC",
    (
        _Analyte("WBC", "250101015", "白细胞计数(WBC)", "白细胞", "10^9/L", 3.5, 9.5, 2, "电阻抗法", p_abnormal=0.04),
        _Analyte("NEUT%", "250101015", "中性粒细胞百分比(NEUT%)", "中性粒细胞百分比", "%", 40, 75, 1, "流式细胞术"),
        _Analyte("LYMPH%", "250101015", "淋巴细胞百分比(LYMPH%)", "淋巴细胞百分比", "%", 20, 50, 1, "流式细胞术"),
        _Analyte("MONO%", "250101015", "单核细胞百分比(MONO%)", "单核细胞百分比", "%", 3, 10, 1, "流式细胞术"),
        _Analyte("EO%", "250101015", "嗜酸性粒细胞百分比(EO%)", "嗜酸性粒细胞百分比", "%", 0.4, 8.0, 1, "流式细胞术"),
        _Analyte("BASO%", "250101015", "嗜碱性粒细胞百分比(BASO%)", "嗜碱性粒细胞百分比", "%", 0, 1, 1, "流式细胞术"),
        _Analyte("NEUT#", "250101015", "中性粒细胞绝对值(NEUT#)", "中性粒细胞数", "10^9/L", 1.8, 6.3, 2, "计算法"),
        _Analyte("LYMPH#", "250101015", "淋巴细胞绝对值(LYMPH#)", "淋巴细胞数", "10^9/L", 1.1, 3.2, 2, "计算法"),
        _Analyte("MONO#", "250101015", "单核细胞绝对值(MONO#)", "单核细胞数", "10^9/L", 0.1, 0.6, 2, "计算法"),
        _Analyte("EO#", "250101015", "嗜酸性粒细胞绝对值(EO#)", "嗜酸性粒细胞数", "10^9/L", 0.02, 0.52, 2, "计算法"),
        _Analyte("BASO#", "250101015", "嗜碱性粒细胞绝对值(BASO#)", "嗜碱性粒细胞数", "10^9/L", 0, 0.06, 2, "计算法"),
        _Analyte("RBC", "250101015", "红细胞计数(RBC)", "红细胞", "10^12/L", 4.3, 5.8, 2, "电阻抗法", female=(3.8, 5.1), p_abnormal=0.04),
        _Analyte("HGB", "250101015", "血红蛋白(HGB)", "血红蛋白", "g/L", 130, 175, 0, "SLS血红蛋白法", female=(115, 150)),
        _Analyte("HCT", "250101015", "红细胞压积(HCT)", "红细胞压积", "%", 40, 50, 1, "计算法", female=(35, 45)),
        _Analyte("MCV", "250101015", "平均红细胞体积(MCV)", "平均红细胞体积", "fL", 82, 100, 1, "电阻抗法", p_abnormal=0.04),
        _Analyte("MCH", "250101015", "平均红细胞血红蛋白含量(MCH)", "平均血红蛋白量", "pg", 27, 34, 1, "计算法"),
        _Analyte("MCHC", "250101015", "平均红细胞血红蛋白浓度(MCHC)", "平均血红蛋白浓度", "g/L", 316, 354, 0, "计算法", p_abnormal=0.04),
        _Analyte("RDW-CV", "250101015", "红细胞分布宽度(RDW-CV)", "红细胞分布宽度", "%", 11.5, 14.5, 1, "计算法"),
        _Analyte("PLT", "250101015", "血小板计数(PLT)", "血小板", "10^9/L", 125, 350, 0, "电阻抗法"),
    ),
    weight=30, derive=_derive_cbc,
)

_LIVER = _Panel(
    "肝功能", "CHEM", "临床化学", "生化", "SER", "CHEM",
    (
        _Analyte("ALT", "250305007", "丙氨酸氨基转移酶(ALT)", "丙氨酸氨基转移酶", "U/L", 9, 50, 0, "速率法", female=(7, 40)),
        _Analyte("AST", "AST", "天门冬氨酸氨基转移酶(AST)", "天门冬氨酸氨基转移酶", "U/L", 15, 40, 0, "速率法", female=(13, 35)),
        _Analyte("ALP", "ALP", "碱性磷酸酶(ALP)", "碱性磷酸酶", "U/L", 45, 125, 0, "速率法", female=(50, 135)),
        _Analyte("GGT", "GGT", "γ-谷氨酰转移酶(GGT)", "γ-谷氨酰转移酶", "U/L", 10, 60, 0, "速率法", female=(7, 45)),
        _Analyte("TP", "250301001", "总蛋白(TP)", "总蛋白(双缩脲法)", "g/L", 65, 85, 1, "双缩脲法"),
        _Analyte("ALB", "250301002", "白蛋白(ALB)", "白蛋白(溴甲酚绿法)", "g/L", 40, 55, 1, "溴甲酚绿法", p_abnormal=0.04),
        _Analyte("GLB", "GLB", "球蛋白(GLB)", "球蛋白", "g/L", 20, 40, 1, "计算法", p_abnormal=0.04),
        _Analyte("A/G", "A/G", "白球比(A/G)", "白球比", "", 1.2, 2.4, 2, "计算法"),
        _Analyte("TBIL", "250305001", "总胆红素(TBIL)", "总胆红素", "μmol/L", 0, 21.0, 1, "钒酸盐氧化法"),
        _Analyte("DBIL", "250305002", "直接胆红素(DBIL)", "直接胆红素", "μmol/L", 0, 6.8, 1, "钒酸盐氧化法"),
        _Analyte("IBIL", "250305003", "间接胆红素(IBIL)", "间接胆红素", "μmol/L", 0, 17.0, 1, "计算法"),
        _Analyte("TBA", "250305005", "总胆汁酸(TBA)", "总胆汁酸", "μmol/L", 0, 10.0, 1, "酶循环法"),
        _Analyte("LDH", "250306005", "乳酸脱氢酶(LDH)", "乳酸脱氢酶", "U/L", 120, 250, 0, "速率法"),
    ),
    weight=12, derive=_derive_liver,
)

_RENAL = _Panel(
    "肾功能", "CHEM", "临床化学", "生化", "SER", "CHEM",
    (
        _Analyte("UREA", "250307001", "尿素(Urea)", "尿素", "mmol/L", 3.1, 8.0, 2, "脲酶-谷氨酸脱氢酶法", female=(2.6, 7.5)),
        _Analyte("CREA", "250307002", "肌酐(Cr)", "肌酐(酶法)", "μmol/L", 57, 111, 0, "酶法", female=(41, 81)),
        _Analyte("UA", "250307005", "尿酸(UA)", "尿酸", "μmol/L", 208, 428, 0, "尿酸酶法", female=(155, 357)),
        _Analyte("CysC", "250307028", "胱抑素C(CysC)", "胱抑素C", "mg/L", 0.59, 1.03, 2, "颗粒增强免疫比浊法"),
    ),
    weight=12,
)

_LIPID = _Panel(
    "血脂", "CHEM", "临床化学", "生化", "SER", "CHEM",
    (
        _Analyte("TC", "250303001", "总胆固醇(TC)", "总胆固醇", "mmol/L", None, 5.20, 2, "酶法"),
        _Analyte("TG", "250303002", "甘油三酯(TG)", "甘油三酯", "mmol/L", None, 1.70, 2, "酶法", p_abnormal=0.15),
        _Analyte("HDL", "250303004", "高密度脂蛋白胆固醇(HDL-C)", "高密度脂蛋白胆固醇", "mmol/L", 1.04, None, 2, "直接法"),
        _Analyte("LDL", "250303005", "低密度脂蛋白胆固醇(LDL-C)", "低密度脂蛋白胆固醇", "mmol/L", None, 3.40, 2, "直接法", p_abnormal=0.12),
        _Analyte("APOA1", "250303007", "载脂蛋白A1(ApoA1)", "载脂蛋白A1", "g/L", 1.00, 1.60, 2, "免疫比浊法"),
        _Analyte("APOB", "250303009", "载脂蛋白B(ApoB)", "载脂蛋白B", "g/L", 0.60, 1.10, 2, "免疫比浊法"),
        _Analyte("LPA", "250303013", "脂蛋白(a)[Lp(a)]", "脂蛋白(a)", "mg/L", None, 300, 0, "免疫比浊法"),
    ),
    weight=10,
)

_LYTES = _Panel(
    "电解质", "CHEM", "临床化学", "生化", "SER", "CHEM",
    (
        _Analyte("K", "250304001", "钾(K)", "钾", "mmol/L", 3.5, 5.3, 2, "离子选择电极法"),
        _Analyte("Na", "250304002", "钠(Na)", "钠", "mmol/L", 137, 147, 1, "离子选择电极法", p_abnormal=0.03),
        _Analyte("Cl", "250304003", "氯(Cl)", "氯", "mmol/L", 99, 110, 1, "离子选择电极法"),
        _Analyte("Ca", "250304004", "钙(Ca)", "钙", "mmol/L", 2.11, 2.52, 2, "偶氮胂Ⅲ法"),
        _Analyte("P", "250304005", "无机磷(P)", "无机磷", "mmol/L", 0.85, 1.51, 2, "磷钼酸盐法"),
        _Analyte("HCO3", "250304010", "碳酸氢盐(HCO3-)", "碳酸氢盐", "mmol/L", 22, 29, 1, "酶法", p_abnormal=0.03),
        _Analyte("AG", "AG", "阴离子间隙", "阴离子间隙", "mmol/L", 8, 16, 1, "计算法", p_abnormal=0.03),
    ),
    weight=8, min_level=2, derive=_derive_lytes,
)

_GLU = _Panel(
    "血糖", "CHEM", "临床化学", "生化", "SER", "CHEM",
    (
        _Analyte("GLU", "250302001", "葡萄糖(GLU)", "空腹血糖", "mmol/L", 3.9, 6.1, 2, "己糖激酶法", p_abnormal=0.15),
        _Analyte("HbA1c", "HbA1c", "糖化血红蛋白(HbA1c)", "糖化血红蛋白", "%", 4.0, 6.0, 1, "高效液相色谱法", p_abnormal=0.12),
    ),
    weight=10,
)

_COAG = _Panel(
    "凝血功能", "COAG", "凝血", "凝血", "PLAS", "COAG",
    (
        _Analyte("PT", "250203020", "凝血酶原时间(PT)", "凝血酶原时间", "s", 10.0, 14.0, 1, "凝固法"),
        _Analyte("INR", "250203020", "国际标准化比值(INR)", "国际标准化比值", "", 0.80, 1.20, 2, "计算法"),
        _Analyte("APTT", "250203025", "活化部分凝血活酶时间(APTT)", "活化部分凝血活酶时间", "s", 25.0, 37.0, 1, "凝固法"),
        _Analyte("FIB", "250203030", "纤维蛋白原(FIB)", "纤维蛋白原", "g/L", 2.00, 4.00, 2, "Clauss法"),
        _Analyte("TT", "250203035", "凝血酶时间(TT)", "凝血酶时间", "s", 14.0, 21.0, 1, "凝固法"),
        _Analyte("DD", "250203066", "D-二聚体(D-Dimer)", "D-二聚体", "mg/L FEU", None, 0.55, 2, "免疫比浊法", p_abnormal=0.12),
    ),
    weight=6, min_level=2, derive=_derive_coag,
)

_DIP = (("阴性", "N", 88.0), ("弱阳性(±)", "WP", 6.0), ("阳性(1+)", "P", 4.0), ("阳性(2+)", "P", 2.0))
_URINE = _Panel(
    "尿常规", "UA", "尿液分析", "尿液", "UR", "UA",
    (
        _Qual("COLOR", "250102035", "颜色(COLOR)", "颜色", (("淡黄色", "N", 80.0), ("黄色", "N", 20.0)), "目测法", ""),
        _Qual("CLARITY", "250102035", "透明度(CLA)", "透明度", (("清亮", "N", 90.0), ("微浑", "N", 10.0)), "目测法", ""),
        _Analyte("PH", "250102035", "酸碱度(pH)", "酸碱度", "", 4.5, 8.0, 1, "干化学法", step=0.5, p_abnormal=0.0),
        _Analyte("SG", "250102035", "比重(SG)", "比重", "", 1.003, 1.030, 3, "干化学法", step=0.005, p_abnormal=0.02),
        _Qual("PRO", "250102035", "尿蛋白(PRO)", "尿蛋白", _DIP, "干化学法"),
        _Qual("UGLU", "250102035", "尿葡萄糖(GLU)", "尿糖", _DIP, "干化学法"),
        _Qual("KET", "250102035", "酮体(KET)", "酮体", (("阴性", "N", 95.0), ("弱阳性(±)", "WP", 5.0)), "干化学法"),
        _Qual("BIL", "250102035", "胆红素(BIL)", "胆红素", (("阴性", "N", 97.0), ("阳性(1+)", "P", 3.0)), "干化学法"),
        _Qual("URO", "250102035", "尿胆原(URO)", "尿胆原", (("阴性", "N", 95.0), ("弱阳性(±)", "WP", 5.0)), "干化学法"),
        _Qual("BLD", "250102035", "隐血(BLD)", "隐血", _DIP, "干化学法"),
        _Qual("NIT", "250102035", "亚硝酸盐(NIT)", "亚硝酸盐", (("阴性", "N", 96.0), ("阳性", "P", 4.0)), "干化学法"),
        _Qual("LEU", "250102035", "白细胞酯酶(LEU)", "白细胞酯酶", _DIP, "干化学法"),
        _Analyte("URBC", "250102024", "红细胞(尿沉渣)", "尿沉渣红细胞", "/μL", 0, 25, 1, "流式细胞术"),
        _Analyte("UWBC", "250102024", "白细胞(尿沉渣)", "尿沉渣白细胞", "/μL", 0, 25, 1, "流式细胞术"),
    ),
    weight=12,
)

_HBV = _Panel(
    "乙肝五项", "SERO", "血清学", "免疫", "SER", "SERO",
    (
        _Qual("HBsAg", "250403004", "乙型肝炎表面抗原(HBsAg)", "乙肝表面抗原", _NEG, "化学发光法"),
        _Qual("HBsAb", "250403005", "乙型肝炎表面抗体(Anti-HBs)", "乙肝表面抗体", _NEG, "化学发光法"),
        _Qual("HBeAg", "250403006", "乙型肝炎e抗原(HBeAg)", "乙肝e抗原", _NEG, "化学发光法"),
        _Qual("HBeAb", "250403007", "乙型肝炎e抗体(Anti-HBe)", "乙肝e抗体", _NEG, "化学发光法"),
        _Qual("HBcAb", "250403009", "乙型肝炎核心抗体(Anti-HBc)", "乙肝核心抗体", _NEG, "化学发光法"),
    ),
    weight=5, min_level=2,
    patterns=(
        (frozenset(), 40.0),
        (frozenset({"HBsAb"}), 35.0),
        (frozenset({"HBsAb", "HBcAb"}), 12.0),
        (frozenset({"HBcAb"}), 3.0),
        (frozenset({"HBsAg", "HBeAg", "HBcAb"}), 3.0),
        (frozenset({"HBsAg", "HBeAb", "HBcAb"}), 7.0),
    ),
)

_PREOP = _Panel(
    "术前四项", "SERO", "血清学", "免疫", "SER", "SERO",
    (
        _Qual("HBsAg", "250403004", "乙型肝炎表面抗原(HBsAg)", "乙肝表面抗原", (("阴性", "N", 95.0), ("阳性", "P", 5.0)), "化学发光法"),
        _Qual("HCV", "250403014", "丙型肝炎抗体(Anti-HCV)", "丙肝抗体", (("阴性", "N", 99.0), ("阳性", "P", 1.0)), "化学发光法"),
        _Qual("HIV", "250403019", "人免疫缺陷病毒抗体(Anti-HIV)", "HIV抗体", _NEG, "化学发光法"),
        _Qual("TP", "250403053", "梅毒螺旋体特异抗体(TP-Ab)", "梅毒螺旋体抗体", (("阴性", "N", 99.0), ("阳性", "P", 1.0)), "化学发光法"),
    ),
    weight=4, min_level=2, preop=True,
)

_PANELS = (_CBC, _LIVER, _RENAL, _LIPID, _LYTES, _GLU, _COAG, _URINE, _HBV, _PREOP)
_INTERPRET = {"N": "正常", "H": "高", "L": "低", "WP": "弱阳性", "P": "阳性"}
_SPECIMEN_SITES = (("", ""), ("LACF", "左肘窝"), ("RACF", "右肘窝"))


def _draw(rng: random.Random, a: _Analyte, sex_code: str) -> float:
    low, high = a.limits(sex_code)
    abnormal = rng.random() < a.p_abnormal
    if low is not None and high is not None:
        width = high - low
        if abnormal:
            go_high = low <= 0 or rng.random() < 0.6
            if go_high:
                return high + width * rng.uniform(0.05, 0.6)
            return max(low - width * rng.uniform(0.05, 0.5), low * 0.3)
        return low + width * min(max(rng.gauss(0.5, 0.15), 0.03), 0.97)
    if high is not None:  # upper limit only
        return high * (rng.uniform(1.05, 1.8) if abnormal else rng.uniform(0.35, 0.95))
    assert low is not None
    return low * (rng.uniform(0.6, 0.95) if abnormal else rng.uniform(1.05, 1.7))


def _fmt(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    return "0" if decimals == 0 and text == "-0" else text


def _fmt_limit(value: float | None, decimals: int) -> str:
    return "" if value is None else _fmt(value, decimals)


def _lab_items(rng: random.Random, panel: _Panel, sex_code: str) -> list[dict[str, str]]:
    values: dict[str, float] = {}
    for item in panel.items:
        if isinstance(item, _Analyte):
            values[item.key] = _draw(rng, item, sex_code)
    if panel.derive is not None:
        panel.derive(values)
    positives: frozenset[str] | None = None
    if panel.patterns:
        positives = rng.choices([p for p, _ in panel.patterns], weights=[w for _, w in panel.patterns])[0]

    rows: list[dict[str, str]] = []
    for item in panel.items:
        if isinstance(item, _Analyte):
            raw = values[item.key]
            if item.step:
                raw = round(raw / item.step) * item.step
            text = _fmt(max(raw, 0.0), item.decimals)
            number = float(text)
            low, high = item.limits(sex_code)
            interp = "H" if high is not None and number > high else "L" if low is not None and number < low else "N"
            notes = ""
            if low is None and high is not None:
                notes = f"<{_fmt_limit(high, item.decimals)}"
            elif high is None and low is not None:
                notes = f">{_fmt_limit(low, item.decimals)}"
            rows.append({
                "class_code": item.code, "class_name": item.std_name, "class_local_name": item.local_name,
                "result_type": "PQ", "result_type_descr": "数值型", "result_value": text,
                "result_unit": item.unit, "norm_lower_limit": _fmt_limit(low, item.decimals),
                "norm_upper_limit": _fmt_limit(high, item.decimals), "norm_value_notes": notes,
                "result_interpre": interp, "result_interpre_descr": _INTERPRET[interp],
                "examine_way": item.method,
            })
        else:
            if positives is not None:
                value, interp = ("阳性", "P") if item.key in positives else ("阴性", "N")
            else:
                outcome = rng.choices(item.outcomes, weights=[w for _, _, w in item.outcomes])[0]
                value, interp = outcome[0], outcome[1]
            rows.append({
                "class_code": item.code, "class_name": item.std_name, "class_local_name": item.local_name,
                "result_type": "CD", "result_type_descr": "文本型", "result_value": value,
                "result_unit": "", "norm_lower_limit": "", "norm_upper_limit": "",
                "norm_value_notes": item.notes, "result_interpre": interp,
                "result_interpre_descr": _INTERPRET[interp], "examine_way": item.method,
            })
    return rows


def _pdf_b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def make_lab_report(
    rng: random.Random, org: DemoOrg, patient: DemoPatient, when: datetime, *, with_pdf: bool = True
) -> dict[str, Any]:
    """A ``labmaster`` + ``lab_subitem`` payload whose audit time (authenticator_dtime) is ``when``."""
    profile = _profile(org)
    visit = _visit(org, patient, when.date())
    panels = [p for p in _PANELS if p.min_level <= org.level]
    panel = rng.choices(panels, weights=[p.weight for p in panels])[0]
    tech = profile.tech[_LAB]

    authenticated = when.replace(microsecond=0)
    authored = authenticated - timedelta(seconds=rng.randrange(0, 15 * 60))
    performed = authored - timedelta(seconds=rng.randrange(10 * 60, 90 * 60))
    ordered_gap = (60 * 60, 12 * 3600) if visit.event_type == "2" else (20 * 60, 3 * 3600)
    ordered = performed - timedelta(seconds=rng.randrange(*ordered_gap))
    updated = authenticated + timedelta(seconds=rng.randrange(0, 180))

    report_form_no = f"1{authenticated:%y%m%d}{rng.randrange(10**12):012d}"
    priority, priority_name = _priority(rng, visit, preop=panel.preop)
    site_code, site_name = ("", "") if panel.specimen == "UR" else rng.choice(_SPECIMEN_SITES)
    author = rng.choice(profile.authors[_LAB])
    auditor = rng.choice(profile.auditors[_LAB])
    performer = rng.choice(profile.performers[_LAB])
    order_id = f"{rng.randrange(10**9):09d}"

    master: dict[str, str] = {
        "last_update_dtime": _ts(updated),
        "org_code": org.code,
        "apply_form_no": "" if rng.random() < 0.3 else f"{rng.randrange(10**9):09d}",
        "report_form_no": report_form_no,
        "patient_id": visit.patient_id,
        "event_type": visit.event_type,
        "event_no": visit.event_no,
        "id_no": patient.id_no,
        "id_type_code": patient.id_type_code,
        "card_no": patient.card_no,
        "retrieve_date": f"{authenticated:%Y-%m-%d}",
        "class_code": panel.loinc_class,
        "class_name": panel.class_name,
        "class_local_name": panel.class_local_name,
        "report_title": panel.title,
        "effective_dtime": _ts(authored),
        "name": patient.name,
        "sex_code": patient.sex_code,
        "sex_name": patient.sex_name,
        "author_id": author.id,
        "author_dtime": _ts(authored),
        "author_name": author.name,
        "authenticator_id": auditor.id,
        "authenticator_dtime": _ts(authenticated),
        "authenticator_name": auditor.name,
        "participant_id": visit.doctor.id,
        "participant_dtime": _ts(ordered),
        "participant_name": visit.doctor.name,
        "participant_dept_code": visit.dept.code,
        "participant_dept_name": visit.dept.name,
        "participant_dept_std_code": visit.dept.std_code,
        "participant_dept_std_name": visit.dept.std_name,
        "order_id": order_id,
        "order_priority": priority,
        "order_priority_name": priority_name,
        "specimen_id": f"{rng.randrange(10**10):010d}",
        "specimen_class_code": panel.specimen,
        "specimen_determiner_code": site_code,
        "specimen_determiner_name": site_name,
        "performer_dept_code": tech.code,
        "performer_dept_name": tech.name,
        "performer_dept_std_code": tech.std_code,
        "performer_dept_std_name": tech.std_name,
        "performer_doctor": performer.name,
        "performer_dtime": _ts(performed),
        "playing_device": profile.devices[panel.device],
        "data_status": "1",
    }
    items: list[dict[str, str]] = []
    for serial, row in enumerate(_lab_items(rng, panel, patient.sex_code), start=1):
        items.append({
            "last_update_dtime": master["last_update_dtime"],
            "org_code": org.code,
            "event_no": visit.event_no,
            "report_form_no": report_form_no,
            "serial_no": str(serial),
            **row,
            "effective_dtime": master["authenticator_dtime"],
            "recognition": _recognition("lab", row["class_code"]),
        })
    # keep the table's column order: examine_way before effective_dtime
    items = [_order(item, _LAB_SUBITEM_FIELDS) for item in items]
    master["pdf"] = _pdf_b64(pdf.render_lab_pdf(master, items, org_name=org.name)) if with_pdf else ""
    return {"labmaster": master, "lab_subitem": items}


_LAB_SUBITEM_FIELDS = (
    "last_update_dtime", "org_code", "event_no", "report_form_no", "serial_no", "class_code",
    "class_name", "class_local_name", "result_type", "result_type_descr", "result_value",
    "result_unit", "norm_lower_limit", "norm_upper_limit", "norm_value_notes", "result_interpre",
    "result_interpre_descr", "effective_dtime", "examine_way", "recognition",
)


def _order(row: dict[str, str], fields: tuple[str, ...]) -> dict[str, str]:
    return {name: row[name] for name in fields}


# ---------------------------------------------------------------------------
# exams


@dataclass(frozen=True)
class _ExamTemplate:
    modality: str  # Modality (exammaster class_code / class_name)
    title: str  # report_title; "{side}" is replaced by 左/右
    parts: tuple[tuple[str, str, str], ...]  # (exam_item_code, exam_site_code, body_part_name)
    normal: tuple[str, str]  # (image_descr, conclusion)
    abnormal: tuple[tuple[str, str], ...]
    cases: tuple[tuple[str, str], ...]  # (outpat_diag_name, patient_condition_desc)
    weight: float
    purposes: tuple[str, ...] = ("明确诊断", "排除器质性病变", "")
    p_abnormal: float = 0.35
    min_age: int = 14  # the cases and findings are written for patients at least this old


_NON_CATALOG_EXAM_NAMES = {"210200001": "磁共振平扫"}

_EXAMS = (
    _ExamTemplate(
        "DR", "胸部正位(DR)", (("210102015", "CHEST", "胸部"),),
        ("胸廓对称，气管居中。双肺纹理清晰，走行自然，双肺野透亮度正常，未见明显实质性病变。双肺门影不大，"
         "结构清楚。心影大小、形态未见明显异常。双侧膈面光整，肋膈角锐利。", "心、肺、膈未见明显异常。"),
        (("胸廓对称，气管居中。右下肺野见斑片状模糊影，边界不清，密度不均。余肺纹理增多、增粗。双肺门影不大。"
          "心影大小、形态未见明显异常。双侧膈面光整，肋膈角锐利。", "右下肺炎症，建议治疗后复查。"),
         ("胸廓对称，气管居中。双肺纹理增多、增粗、紊乱，以双下肺为著。双肺门影稍浓。心影不大，主动脉结稍突出。"
          "双侧膈面光整，肋膈角锐利。", "双肺纹理增多，考虑支气管炎改变；主动脉硬化。")),
        (("咳嗽", "咳嗽、咳痰3天"), ("发热待查", "发热2天，最高体温38.6℃"), ("健康体检", "无"), ("急性支气管炎", "咳嗽1周，无发热"), ("社区获得性肺炎", "发热伴咳嗽、咳黄痰3天")),
        weight=20, min_age=0,
    ),
    _ExamTemplate(
        "DR", "腰椎正侧位(DR)", (("210102015", "LSPINE", "腰椎"),),
        ("腰椎生理曲度存在，序列连续，各椎体形态、大小及密度未见明显异常，椎间隙未见明显狭窄，附件结构清晰，"
         "椎旁软组织未见异常。", "腰椎正侧位未见明显异常。"),
        (("腰椎生理曲度变直，L3-L5椎体边缘见唇样骨质增生，L4/5椎间隙稍变窄，附件结构清晰，椎旁软组织未见异常。",
          "腰椎退行性变；L4/5椎间盘病变可能，建议MRI进一步检查。"),),
        (("腰痛", "反复腰痛1年，加重3天"), ("腰椎间盘突出症", "腰痛伴右下肢放射痛1周"), ("腰肌劳损", "久坐后腰部酸痛2月")),
        weight=6, min_age=18,
    ),
    _ExamTemplate(
        "DR", "{side}膝关节正侧位(DR)", (("210102015", "KNEE", "{side}膝关节"),),
        ("{side}膝关节诸骨骨质结构完整，未见明显骨折及骨质破坏征象，关节间隙未见明显狭窄，关节面光整，"
         "周围软组织未见明显肿胀。", "{side}膝关节未见明显异常。"),
        (("{side}膝关节诸骨骨质疏松，胫骨髁间隆起变尖，股骨、胫骨关节面边缘骨质增生，内侧关节间隙变窄，"
          "周围软组织未见明显肿胀。", "{side}膝关节退行性骨关节病。"),),
        (("膝关节痛", "{side}膝关节疼痛2周，上下楼梯加重"), ("膝关节骨性关节炎", "{side}膝反复疼痛3年"), ("膝关节扭伤", "扭伤后{side}膝肿痛1天")),
        weight=5, min_age=6,
    ),
    _ExamTemplate(
        "CT", "颅脑CT平扫", (("210300001", "HEAD", "颅脑"),),
        ("脑实质内未见明显异常密度影，灰白质分界清楚。脑室系统大小、形态正常，脑沟、脑裂、脑池未见增宽，"
         "中线结构居中。颅骨骨质未见明显异常。", "颅脑CT平扫未见明显异常。"),
        (("双侧基底节区及侧脑室旁见多发斑点状低密度影，边界尚清。脑室系统稍扩大，脑沟、脑裂增宽，中线结构居中。"
          "颅骨骨质未见明显异常。", "双侧基底节区及侧脑室旁多发腔隙性脑梗死；脑萎缩。"),),
        (("头晕待查", "头晕2天，无恶心呕吐"), ("头痛", "头痛3天，呈持续性胀痛"), ("高血压病", "血压控制不佳伴头晕1周"), ("脑梗死", "左侧肢体麻木无力6小时")),
        weight=8, min_age=18,
    ),
    _ExamTemplate(
        "CT", "胸部CT平扫", (("210300001", "CHEST", "胸部"),),
        ("胸廓对称，双肺纹理清晰，双肺野内未见明显实质性病变。气管及主支气管通畅。纵隔内未见明显肿大淋巴结。"
         "心脏及大血管形态未见异常。双侧胸膜未见增厚，胸腔内未见积液。", "胸部CT平扫未见明显异常。"),
        (("右肺上叶尖段见一磨玻璃密度结节，大小约6mm×5mm，边界清楚。余双肺纹理清晰。气管及主支气管通畅。"
          "纵隔内未见明显肿大淋巴结。双侧胸腔内未见积液。", "右肺上叶磨玻璃结节，建议12个月后复查。"),
         ("双肺下叶见斑片状磨玻璃及实变影，边界模糊，其内见支气管充气征。气管及主支气管通畅。纵隔内见数个小淋巴结。"
          "双侧胸腔内未见积液。", "双肺下叶炎症，建议治疗后复查。")),
        (("肺结节", "体检发现肺结节"), ("肺炎", "发热伴咳嗽3天"), ("咳嗽待查", "咳嗽1周"), ("健康体检", "无")),
        weight=10, min_age=18,
    ),
    _ExamTemplate(
        "MR", "头颅MRI平扫", (("210200001", "HEAD", "头颅"),),
        ("脑实质内未见明显异常信号影，灰白质分界清楚。DWI未见明显弥散受限。脑室系统大小、形态正常，中线结构居中。"
         "垂体形态及信号未见异常。", "头颅MRI平扫未见明显异常。"),
        (("双侧额叶皮层下及侧脑室旁白质见多发斑点状长T1长T2信号，FLAIR呈高信号，DWI未见弥散受限。"
          "脑室系统未见扩大，中线结构居中。", "双侧额叶及侧脑室旁白质多发缺血灶。"),),
        (("头晕待查", "反复头晕1月"), ("头痛", "头痛伴视物模糊1周"), ("脑供血不足", "头晕、记忆力减退半年")),
        weight=5, min_age=18,
    ),
    _ExamTemplate(
        "MR", "腰椎MRI平扫", (("210200001", "LSPINE", "腰椎"),),
        ("腰椎生理曲度存在，各椎体形态及信号未见异常。各椎间盘信号正常，未见明显突出。椎管未见狭窄，"
         "硬膜囊及神经根未见受压。", "腰椎MRI平扫未见明显异常。"),
        (("腰椎生理曲度变直，L3-S1椎体边缘骨质增生。L4/5、L5/S1椎间盘T2WI信号减低，L4/5椎间盘向后方突出，"
          "压迫硬膜囊，相应层面椎管略窄。", "L4/5椎间盘突出（后中央型）；L5/S1椎间盘膨出；腰椎退行性变。"),),
        (("腰椎间盘突出症", "腰痛伴左下肢麻木2周"), ("腰痛", "腰痛3月"), ("坐骨神经痛", "右臀部及大腿后侧放射痛1月")),
        weight=4, p_abnormal=0.6, min_age=18,
    ),
    _ExamTemplate(
        "MR", "{side}膝关节MRI平扫", (("210200001", "KNEE", "{side}膝关节"),),
        ("{side}膝关节诸骨形态及信号未见异常。内外侧半月板形态完整，信号均匀。前后交叉韧带及内外侧副韧带连续性完整。"
         "关节腔内未见明显积液。", "{side}膝关节MRI平扫未见明显异常。"),
        (("{side}膝关节内侧半月板后角见线样高信号达关节下缘，前后交叉韧带连续性完整。关节腔内见少量长T2信号。",
          "{side}膝关节内侧半月板后角撕裂（Ⅲ度）；关节腔少量积液。"),),
        (("膝关节半月板损伤", "{side}膝扭伤后疼痛伴活动受限1周"), ("膝关节痛", "{side}膝关节疼痛1月"), ("膝关节扭伤", "运动中扭伤{side}膝2天")),
        weight=3, p_abnormal=0.6,
    ),
    _ExamTemplate(
        "US", "腹部彩超(肝胆胰脾)", (("220301001", "ABDOMEN", "肝胆胰脾"),),
        ("肝脏大小形态正常，包膜光整，实质回声均匀，肝内管道结构清晰，门静脉主干内径正常。胆囊大小正常，壁光滑，"
         "腔内未见异常回声。胰腺大小形态正常，回声均匀。脾脏大小正常，实质回声均匀。CDFI：未见明显异常血流信号。",
         "肝、胆、胰、脾未见明显异常。"),
        (("肝脏形态饱满，包膜光整，实质回声细密增强，后方回声衰减，肝内管道结构显示欠清。胆囊大小正常，壁光滑。"
          "胰腺、脾脏未见明显异常。CDFI：未见明显异常血流信号。", "脂肪肝（中度）。"),
         ("肝脏大小形态正常，实质回声均匀。胆囊大小正常，壁稍毛糙，腔内见一强回声团，大小约12mm×8mm，后伴声影，"
          "随体位改变移动。胰腺、脾脏未见明显异常。", "胆囊结石；胆囊壁毛糙。")),
        (("腹痛待查", "右上腹隐痛1周"), ("脂肪肝", "体检发现转氨酶升高"), ("健康体检", "无"), ("胆囊结石", "进食油腻后右上腹痛2天")),
        weight=16, min_age=0,
    ),
    _ExamTemplate(
        "US", "甲状腺彩超", (("220301002", "NECK", "甲状腺"),),
        ("甲状腺左右叶及峡部大小形态正常，包膜完整，实质回声均匀，未见明显占位性病变。CDFI：腺体内血流信号未见明显异常。"
         "双侧颈部未见明显肿大淋巴结。", "甲状腺未见明显异常。"),
        (("甲状腺右叶中部见一低回声结节，大小约8mm×6mm，边界清，形态规则，纵横比<1，内未见强回声。"
          "CDFI：结节周边见少许血流信号。", "甲状腺右叶结节（C-TIRADS 3类）。"),),
        (("甲状腺结节", "体检发现甲状腺结节"), ("健康体检", "无"), ("甲状腺功能亢进症", "心悸、多汗、消瘦1月")),
        weight=8,
    ),
    _ExamTemplate(
        "US", "颈部血管彩超", (("220302003", "NECK", "颈部血管"),),
        ("双侧颈总动脉、颈内动脉及颈外动脉管径正常，内中膜不厚，管腔内未见明显斑块，血流充盈良好，频谱形态正常。"
         "双侧椎动脉走行正常，血流方向正常。", "双侧颈部动脉未见明显异常。"),
        (("双侧颈总动脉内中膜增厚，右侧厚约1.1mm，左侧厚约1.2mm。左侧颈总动脉分叉处后壁见一低回声斑块，"
          "大小约9mm×2mm。管腔血流充盈尚可。", "双侧颈动脉内中膜增厚；左侧颈总动脉分叉处斑块形成。"),),
        (("高血压病", "血压升高5年"), ("头晕待查", "头晕1周"), ("动脉粥样硬化", "血脂异常3年")),
        weight=5, p_abnormal=0.5, min_age=35,
    ),
    _ExamTemplate(
        "US", "心脏彩超", (("220600004", "HEART", "心脏"), ("220600010", "HEART", "左心功能")),
        ("各房室内径正常，室间隔及左室壁厚度正常，运动协调。各瓣膜形态、结构及启闭未见明显异常。主动脉及肺动脉内径正常。"
         "CDFI：各瓣口未见明显异常血流。左室收缩功能测定：EF 64%，FS 35%。", "心脏结构及血流未见明显异常；左室收缩功能正常。"),
        (("左房内径增大（41mm），室间隔及左室后壁增厚（12mm），运动协调。主动脉瓣回声增强，开放不受限。"
          "CDFI：二尖瓣口见少量反流信号。左室收缩功能测定：EF 58%；左室舒张功能减低（E/A<1）。",
          "左房增大；左室壁增厚；二尖瓣少量反流；左室舒张功能减低。"),),
        (("高血压病", "血压升高10年"), ("冠心病", "活动后胸闷气短1月"), ("胸闷待查", "胸闷3天")),
        weight=5, p_abnormal=0.45, min_age=30,
    ),
    _ExamTemplate(
        "US", "泌尿系B超", (("220201002", "ABDOMEN", "双肾、输尿管、膀胱"),),
        ("双肾大小形态正常，包膜光整，皮髓质分界清晰，集合系统未见分离，未见明显结石回声。双侧输尿管未见扩张。"
         "膀胱充盈良好，壁光滑，腔内未见异常回声。", "双肾、输尿管、膀胱未见明显异常。"),
        (("右肾大小形态正常，集合系统内见一强回声团，大小约6mm×4mm，后伴声影，集合系统分离约10mm。"
          "左肾未见明显异常。双侧输尿管未见扩张。膀胱未见异常。", "右肾结石伴轻度积水。"),),
        (("腰痛待查", "右侧腰痛伴血尿1天"), ("泌尿系结石", "右侧腰部绞痛2小时"), ("尿路感染", "尿频尿急3天")),
        weight=6, min_age=0,
    ),
    _ExamTemplate(
        "ECG", "常规心电图", (("310701001", "HEART", "心脏"),),
        ("窦性心律，心率72次/分。P-R间期0.16s，QRS时限0.08s，QT/QTc 0.38/0.42s。QRS电轴+45°。"
         "各导联ST段未见明显偏移，T波未见明显异常。", "窦性心律；正常心电图。"),
        (("窦性心律，心率52次/分。P-R间期0.18s，QRS时限0.09s，QT/QTc 0.44/0.41s。QRS电轴+30°。"
          "各导联ST-T未见明显异常。", "窦性心动过缓。"),
         ("窦性心律，心率84次/分。P-R间期0.15s，QRS时限0.09s。V4-V6导联ST段水平型压低0.05-0.1mV，T波低平。",
          "窦性心律；ST-T改变。")),
        (("胸闷待查", "胸闷心悸3天"), ("高血压病", "血压升高5年"), ("健康体检", "无"), ("术前检查", "拟行择期手术")),
        weight=14, purposes=("", "术前评估", "排除心肌缺血"), p_abnormal=0.3,
    ),
)


def _exam_item_name(code: str) -> str:
    item = load_catalog().get(code)
    return item.name if item is not None else _NON_CATALOG_EXAM_NAMES.get(code, code)


def make_exam_report(
    rng: random.Random, org: DemoOrg, patient: DemoPatient, when: datetime, *, with_pdf: bool = True
) -> dict[str, Any]:
    """An ``exammaster`` + ``exam_subitem`` payload whose audit time (authenticator_dtime) is ``when``."""
    profile = _profile(org)
    visit = _visit(org, patient, when.date())
    age = _age(patient.birth_date, when.date())
    offered = [t for t in _EXAMS if t.modality in profile.modalities]
    templates = [t for t in offered if t.min_age <= age] or offered
    tpl = rng.choices(templates, weights=[t.weight for t in templates])[0]
    side = rng.choice(("左", "右"))

    def fill(text: str) -> str:
        return text.replace("{side}", side)

    diagnosis, condition = rng.choice(tpl.cases)
    abnormal = rng.random() < tpl.p_abnormal
    findings, conclusion = rng.choice(tpl.abnormal) if abnormal else tpl.normal
    tech = profile.tech[tpl.modality]

    authenticated = when.replace(microsecond=0)
    authored = authenticated - timedelta(seconds=rng.randrange(60, 20 * 60))
    quick = tpl.modality in ("US", "ECG")
    performed = authored - timedelta(seconds=rng.randrange(5 * 60, (60 if quick else 240) * 60))
    arrived = performed - timedelta(seconds=rng.randrange(5 * 60, 60 * 60))
    ordered_gap = (60 * 60, 20 * 3600) if visit.event_type == "2" else (5 * 60, 2 * 3600)
    ordered = arrived - timedelta(seconds=rng.randrange(*ordered_gap))
    updated = authenticated + timedelta(seconds=rng.randrange(0, 180))

    report_form_no = f"2{authenticated:%y%m%d}{rng.randrange(10**12):012d}"
    uid = f"2.25.{rng.getrandbits(127) | (1 << 126)}"  # UUID-derived UID (DICOM PS3.5 B.2)
    priority, priority_name = _priority(rng, visit)
    performer = rng.choice(profile.performers[tpl.modality])
    author = rng.choice(profile.authors[tpl.modality])
    auditor = rng.choice(profile.auditors[tpl.modality])

    master: dict[str, str] = {
        "last_update_dtime": _ts(updated),
        "org_code": org.code,
        "apply_form_no": f"{rng.randrange(10**9):09d}",
        "state": "3",
        "report_form_no": report_form_no,
        "patient_id": visit.patient_id,
        "event_type": visit.event_type,
        "event_no": visit.event_no,
        "performer_dtime": _ts(performed),
        "pacs_id": f"{rng.randrange(10**10):010d}",
        "study_instance_uid": uid,
        "id_no": patient.id_no,
        "id_type_code": patient.id_type_code,
        "card_no": patient.card_no,
        "checked_status": "1",
        "class_code": tpl.modality,
        "class_name": tpl.modality,
        "retrieve_date": f"{authenticated:%Y-%m-%d}",
        "report_title": fill(tpl.title),
        "effective_dtime": _ts(authored),
        "confidentiality": "",
        "name": patient.name,
        "sex_code": patient.sex_code,
        "sex_name": patient.sex_name,
        "birth_date": patient.birth_date.isoformat(),
        "author_id": author.id,
        "author_dtime": _ts(authored),
        "author_name": author.name,
        "authenticator_id": auditor.id,
        "authenticator_dtime": _ts(authenticated),
        "authenticator_name": auditor.name,
        "authenticator_dept_code": tech.code,
        "authenticator_dept_name": tech.name,
        "authenticator_dept_std_code": tech.std_code,
        "authenticator_dept_std_name": tech.std_name,
        "participant_dept_code": visit.dept.code,
        "participant_dept_name": visit.dept.name,
        "participant_dept_std_code": visit.dept.std_code,
        "participant_dept_std_name": visit.dept.std_name,
        "participant_id": visit.doctor.id,
        "participant_dtime": _ts(ordered),
        "participant_name": visit.doctor.name,
        "order_id": f"{rng.randrange(10**9):09d}",
        "order_priority": priority,
        "order_priority_name": priority_name,
        "performer_dept_code": tech.code,
        "performer_dept_name": tech.name,
        "performer_dept_std_code": tech.std_code,
        "performer_dept_std_name": tech.std_name,
        "performer_doctor": performer.name,
        "playing_device": profile.devices[tpl.modality],
        "outpat_diag_name": diagnosis,
        "patient_condition_desc": fill(condition),
        "exam_purpose": rng.choice(tpl.purposes),
        "image_descr": fill(findings),
        "is_abnormal": "0" if abnormal else "1",  # seed: 1 = 正常, 0 = 异常
        "conclusion": fill(conclusion),
        "arrive_dtime": _ts(arrived),
        "data_status": "1",
        "pacs_url": f"https://pacs.example.invalid/viewer?study={uid}",
    }
    items = [
        {
            "last_update_dtime": master["last_update_dtime"],
            "org_code": org.code,
            "event_no": visit.event_no,
            "report_form_no": report_form_no,
            "exam_site_code": site_code,
            "body_part_name": fill(body_part),
            "exam_item_code": code,
            "exam_item_name": _exam_item_name(code),
            "effective_dtime": master["authenticator_dtime"],
            "recognition": _recognition("exam", code),
        }
        for code, site_code, body_part in tpl.parts
    ]
    master["pdf"] = _pdf_b64(pdf.render_exam_pdf(master, items, org_name=org.name)) if with_pdf else ""
    return {"exammaster": master, "exam_subitem": items}


# ---------------------------------------------------------------------------
# daily counts


def make_daily_counts(org: DemoOrg, day: date, reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``lab_exam_report`` payload for ``org`` and audit date ``day``.

    Counts the given lab and exam payloads of that institution whose
    authenticator_dtime falls on ``day`` (others are ignored), one row per
    ordering department (participant_dept_code), lab and exam merged.
    """
    date_t = day.isoformat()
    rows: dict[str, dict[str, Any]] = {}
    for report in reports:
        if "labmaster" in report:
            master, column = report["labmaster"], "lab_num"
        elif "exammaster" in report:
            master, column = report["exammaster"], "exam_num"
        else:
            raise ValueError("report has neither labmaster nor exammaster")
        if master["org_code"] != org.code or not str(master["authenticator_dtime"]).startswith(date_t):
            continue
        code = master["participant_dept_code"]
        row = rows.setdefault(code, {
            "dept_code": code,
            "dept_name": master["participant_dept_name"],
            "dept_std_code": master["participant_dept_std_code"],
            "dept_std_name": master["participant_dept_std_name"],
            "lab_num": 0,
            "exam_num": 0,
        })
        row[column] += 1
    stamp = f"{day + timedelta(days=1):%Y-%m-%d} 03:00:{_digest('daily', org.code) % 60:02d}"
    return {
        "lab_exam_report": [
            {
                "last_update_dtime": stamp,
                "org_code": org.code,
                "date_t": date_t,
                "dept_code": row["dept_code"],
                "dept_name": row["dept_name"],
                "dept_std_code": row["dept_std_code"],
                "dept_std_name": row["dept_std_name"],
                "lab_num": str(row["lab_num"]),
                "exam_num": str(row["exam_num"]),
            }
            for _, row in sorted(rows.items())
        ]
    }
