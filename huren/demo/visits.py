"""The visit behind a demo report (visit number, ordering department and doctor) and its priority.

Per institution, patient and day the visit is fixed (hash-derived), so every report of that day
carries the same visit number, department and ordering doctor.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date

from huren.demo.institutions import DemoOrg
from huren.demo.patients import DemoPatient, age_on
from huren.demo.profiles import Dept, Person, profile_of
from huren.demo.values import digest


@dataclass(frozen=True)
class Visit:
    event_type: str
    event_no: str
    patient_id: str
    dept: Dept
    doctor: Person


def visit_on(org: DemoOrg, patient: DemoPatient, day: date) -> Visit:
    """Per (institution, patient, day): the same visit for every report of that day."""
    vr = random.Random(digest("visit", org.code, patient.id_type_code, patient.id_no, day.isoformat()))
    profile = profile_of(org)
    age = age_on(patient.birth_date, day)

    def fits(d: Dept) -> bool:
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
    patient_id = f"{digest('pid', org.code, patient.id_type_code, patient.id_no) % 10**10:010d}"
    return Visit(event_type, event_no, patient_id, dept, vr.choice(profile.doctors[dept.code]))


_PRIORITY_NAMES = {"A": "尽快", "P": "术前", "R": "常规", "S": "急诊", "9": "时间安排至关重要"}


def order_priority(rng: random.Random, visit: Visit, *, preop: bool = False) -> tuple[str, str]:
    """(order_priority, order_priority_name) of an order placed during ``visit``."""
    if visit.dept.std_code == "A20":
        code = "S"
    elif preop and visit.event_type == "2":
        code = "P"
    elif visit.event_type == "2":
        code = rng.choices(("R", "S", "A"), weights=(70, 20, 10))[0]
    else:
        code = rng.choices(("", "R", "S", "A"), weights=(40, 55, 3, 2))[0]
    return code, _PRIORITY_NAMES.get(code, "")
