"""Departments, staff and devices of each demo institution: fixed, derived from its code alone."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType

from huren.demo.institutions import DemoOrg
from huren.demo.names import person_name


@dataclass(frozen=True)
class Dept:
    code: str
    name: str
    std_code: str  # STD_DEPT
    std_name: str
    event_type: str = ""  # "1" clinic, "2" ward, "" medical-technical department
    sex: str = ""  # "2": female patients only
    min_age: int = 0
    max_age: int = 200


@dataclass(frozen=True)
class Person:
    id: str
    name: str


_CLINICS_HOSPITAL = (
    Dept("1101", "内科门诊", "A03", "内科", "1", min_age=14),
    Dept("1102", "呼吸内科门诊", "A03.01", "呼吸内科专业", "1", min_age=14),
    Dept("1103", "消化内科门诊", "A03.02", "消化内科专业", "1", min_age=14),
    Dept("1104", "心血管内科门诊", "A03.04", "心血管内科专业", "1", min_age=14),
    Dept("1105", "内分泌科门诊", "A03.07", "内分泌专业", "1", min_age=14),
    Dept("1106", "神经内科门诊", "A03.03", "神经内科专业", "1", min_age=14),
    Dept("1201", "普外科门诊", "A04.01", "普通外科专业", "1", min_age=14),
    Dept("1203", "骨科门诊", "A04.03", "骨科专业", "1"),
    Dept("1301", "妇科门诊", "A05.01", "妇科专业", "1", sex="2", min_age=14),
    Dept("1401", "儿科门诊", "A07", "儿科", "1", max_age=13),
    Dept("1411", "耳鼻喉门诊", "A11", "耳鼻咽喉科", "1"),
    Dept("1501", "急诊科", "A20", "急诊医学科", "1"),
    Dept("1511", "体检中心", "A01", "预防保健科", "1", min_age=14),
)
_WARDS_HOSPITAL = (
    Dept("2102", "呼吸内科病区", "A03.01", "呼吸内科专业", "2", min_age=14),
    Dept("2104", "心血管内科病区", "A03.04", "心血管内科专业", "2", min_age=14),
    Dept("2105", "内分泌科病区", "A03.07", "内分泌专业", "2", min_age=14),
    Dept("2201", "普外科病区", "A04.01", "普通外科专业", "2", min_age=14),
    Dept("2203", "骨科病区", "A04.03", "骨科专业", "2"),
    Dept("2302", "产科病区", "A05.02", "产科专业", "2", sex="2", min_age=18, max_age=50),
    Dept("2401", "儿科病区", "A07", "儿科", "2", max_age=13),
)
_ICU = Dept("2801", "重症医学科", "A28", "重症医学科", "2")
_TCM = Dept("1601", "中医科门诊", "A50", "中医科", "1")
_CLINICS_COMMUNITY = (
    Dept("1001", "全科门诊", "A02", "全科医疗科", "1"),
    Dept("1002", "预防保健科", "A01", "预防保健科", "1"),
    Dept("1003", "中医科", "A50", "中医科", "1"),
    Dept("1004", "维吾尔医科", "A51.01", "维吾尔医学", "1", min_age=14),
    Dept("1005", "妇女保健科", "A06", "妇女保健科", "1", sex="2", min_age=14),
)

LAB = "LAB"
_MODALITY_DEPT: dict[str, tuple[str, str, str, str]] = {
    # key -> (local code, local name, STD_DEPT code, STD_DEPT name)
    LAB: ("4300", "检验科", "A30", "医学检验科"),
    "DR": ("3221", "放射科", "A32.01", "X线诊断专业"),
    "CT": ("3222", "CT室", "A32.02", "CT诊断专业"),
    "MR": ("3223", "磁共振室", "A32.03", "磁共振成像诊断专业"),
    "US": ("3230", "超声医学科", "A32.05", "超声诊断专业"),
    "ECG": ("3240", "心电图室", "A32.06", "心电诊断专业"),
}
_COMMUNITY_TECH_NAMES = {LAB: "检验室", "DR": "放射室", "US": "B超室"}

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
class Profile:
    clinical: tuple[Dept, ...]
    tech: Mapping[str, Dept]  # LAB / modality -> performing department
    doctors: Mapping[str, tuple[Person, ...]]  # dept code -> clinicians
    performers: Mapping[str, tuple[Person, ...]]  # LAB / modality -> technicians
    authors: Mapping[str, tuple[Person, ...]]
    auditors: Mapping[str, tuple[Person, ...]]
    devices: Mapping[str, str]  # panel class / modality -> device name
    modalities: tuple[str, ...]


def _org_modalities(level: int) -> tuple[str, ...]:
    return {1: ("DR", "US", "ECG"), 2: ("DR", "CT", "US", "ECG")}.get(
        level, ("DR", "CT", "MR", "US", "ECG")
    )


@cache
def profile_of(org: DemoOrg) -> Profile:
    """The fixed departments, staff and devices of ``org`` (the same on every run)."""
    prng = random.Random(f"huren-demo-staff|{org.code}")
    if org.level == 1:
        clinical: tuple[Dept, ...] = _CLINICS_COMMUNITY
    elif org.level == 2:
        clinical = (*_CLINICS_HOSPITAL, *_WARDS_HOSPITAL)
    else:
        clinical = (*_CLINICS_HOSPITAL, _TCM, *_WARDS_HOSPITAL, _ICU)
    modalities = _org_modalities(org.level)
    tech: dict[str, Dept] = {}
    for key in (LAB, *modalities):
        code, name, std_code, std_name = _MODALITY_DEPT[key]
        if org.level == 1:
            name = _COMMUNITY_TECH_NAMES.get(key, name)
        tech[key] = Dept(code, name, std_code, std_name)

    ids = iter(prng.sample(range(1000, 10000), 400))

    def staff(n: int) -> tuple[Person, ...]:
        return tuple(Person(str(next(ids)), person_name(prng, prng.random() < 0.5)[0]) for _ in range(n))

    doctors = {d.code: staff(3) for d in clinical}
    performers = {key: staff(3) for key in tech}
    authors = {key: staff(3) for key in tech}
    auditors = {key: staff(2) for key in tech}
    devices = {key: prng.choice(names) for key, names in _DEVICES.items()}
    return Profile(
        clinical=clinical,
        tech=MappingProxyType(tech),
        doctors=MappingProxyType(doctors),
        performers=MappingProxyType(performers),
        authors=MappingProxyType(authors),
        auditors=MappingProxyType(auditors),
        devices=MappingProxyType(devices),
        modalities=modalities,
    )
