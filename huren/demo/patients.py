"""Demo patients: names, sex, birth dates and valid resident ID numbers (or passports)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from huren.demo.names import person_name
from huren.domain import idcard


@dataclass(frozen=True)
class DemoPatient:
    id_type_code: str  # "01" resident ID card, "03" passport
    id_no: str
    name: str
    sex_code: str  # "1" or "2"
    sex_name: str  # "男性"/"女性"
    birth_date: date
    card_no: str


_URUMQI = ("650102", "650103", "650104", "650105", "650106", "650109", "650121")
_XJ_OTHER = ("652301", "650202", "652801", "654002", "650502")
_XJ_SOUTH = ("653101", "653201", "652901", "650402", "652801")
_KZ_REGIONS = ("654002", "654201", "652301", "650109", "654301")
_INLAND = ("410105", "510107", "620102", "320106", "370202", "610113", "130102")

_REF_DAY = date(2023, 1, 1)  # birth dates lie before this, so reports from 2023 on are sane


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
    name, ethnicity = person_name(rng, male)
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


def age_on(born: date, on: date) -> int:
    """Age in whole years on ``on``."""
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))
