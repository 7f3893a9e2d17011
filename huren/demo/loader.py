"""`huren demo`: load a realistic demo region through the services (as hospitals would).

The deployment hosts the region and two virtual city platforms, Urumqi and Changji, and applies
the feed of a real city (Karamay) — :mod:`huren.demo.platforms` — so the supervisors of the two
cities see their own city only and the regional one all of it.

The payloads come from the generator (:mod:`huren.demo.generator`); the hospitals' departments,
doctors and accounts from :mod:`huren.demo.accounts`, the times their reports are sent from
:mod:`huren.demo.uploads`, the doctors' decisions from :mod:`huren.demo.decisions`.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from huren.context import Principal
from huren.demo.accounts import DEMO_DOCTORS, add_staff_and_accounts
from huren.demo.catalog import import_packaged_demo
from huren.demo.decisions import doctor_decisions
from huren.demo.generator import (
    DemoOrg,
    DemoPatient,
    demo_orgs,
    make_daily_counts,
    make_exam_report,
    make_lab_report,
    make_patients,
)
from huren.demo.imaging import load_demo_images
from huren.demo.platforms import URUMQI_SUPERVISOR, add_supervisors, build_tree, simulate_remote_city
from huren.demo.uploads import register_as_received
from huren.errors import HurenError
from huren.services.container import Container

#: The Urumqi health commission's supervisor account (demo only): it imports the demo catalog; the
#: other supervisors (Changji's, the region's) are in huren.demo.platforms.
SUPERVISOR: DemoOrg = URUMQI_SUPERVISOR


def _day(payload: dict[str, Any]) -> date:
    master = payload.get("labmaster") or payload["exammaster"]
    return datetime.fromisoformat(master["authenticator_dtime"]).date()


def _draw(
    rng: random.Random, orgs: list[DemoOrg], patients: list[DemoPatient], n: int, now: datetime,
    by_org: dict[str, list[dict[str, Any]]], kinds: dict[str, list[str]], *, travellers: list[DemoPatient] | None = None,
) -> None:
    """``n`` lab (60 %) and exam reports of ``orgs`` (bigger hospitals report more) over the last 30
    days; with ``travellers``, a quarter of them for those patients."""
    weights = [o.level for o in orgs]
    for _ in range(n):
        org = rng.choices(orgs, weights)[0]
        patient = rng.choice(travellers if travellers and rng.random() < 0.25 else patients)
        when = now - timedelta(days=rng.randint(1, 30), hours=rng.randint(0, 10), minutes=rng.randint(0, 59))
        if rng.random() < 0.6:
            by_org[org.code].append(make_lab_report(rng, org, patient, when))
            kinds[org.code].append("lab")
        else:
            by_org[org.code].append(make_exam_report(rng, org, patient, when))
            kinds[org.code].append("exam")


def load_demo(c: Container, *, reports: int = 200, seed: int = 20241122, if_empty: bool = False) -> dict[str, Any]:
    """Institutions with credentials, patients, lab and exam reports with PDFs, daily counts
    (one institution under-declares a day, one forgets a day), and a few rejected submissions."""
    if if_empty and c.directory.list_orgs():
        return {"skipped": True, "reason": "数据库中已有机构，未重复生成演示数据"}
    rng = random.Random(seed)
    orgs = demo_orgs()
    build_tree(c)  # before the institutions: each joins the platform of its division
    catalog_items = import_packaged_demo(
        c.catalog,
        Principal(SUPERVISOR.code, SUPERVISOR.user, "supervisor"),
        map_org=Principal(orgs[0].code, orgs[0].user, "hospital"),
    )
    for o in orgs:
        c.directory.add_org(o.code, o.name, o.region_code, f"{o.level}{o.grade}", user=o.user, password=o.password)
        add_staff_and_accounts(c, o)
    supervisors = add_supervisors(c)

    patients = make_patients(rng, max(10, reports // 4))
    now = c.clock.now()
    by_org: dict[str, list[dict[str, Any]]] = defaultdict(list)
    kinds: dict[str, list[str]] = defaultdict(list)
    # Urumqi's institutions (the first ones) get most reports; the other city's a sixth, drawn on
    # its own generator from patients of its own and a few of Urumqi's (who travel: results
    # recognized across the two cities)
    urumqi = [o for o in orgs if o.region_code.startswith("6501")]
    others = [o for o in orgs if o not in urumqi]
    share = reports // 6 if others else 0
    locals_: list[DemoPatient] = []
    _draw(rng, urumqi, patients, reports - share, now, by_org, kinds)
    if share:
        rng2 = random.Random(seed + 2)
        locals_ = make_patients(rng2, max(3, share // 2))
        _draw(rng2, others, locals_, share, now, by_org, kinds, travellers=patients)

    registered = register_as_received(c, rng, orgs, by_org, kinds, now)
    images = load_demo_images(c, orgs, by_org)  # DICOM studies behind the exam reports (no randomness drawn)
    for org in orgs:
        who = Principal(org.code, org.user, "hospital")
        payloads = by_org.get(org.code, [])

        # daily counts per day; the first institution under-declares one day, the second skips one
        days: dict[date, list[dict[str, Any]]] = defaultdict(list)
        for p in payloads:
            days[_day(p)].append(p)
        last = len(days) - 1  # the most recent day, inside the default completeness window
        for i, (day, reps) in enumerate(sorted(days.items())):
            if org is orgs[1] and i == last:
                continue
            daily = make_daily_counts(org, day, reps)
            if org is orgs[0] and i == last:
                row = daily["lab_exam_report"][0]
                row["lab_num"] = str(int(row["lab_num"]) + 2)
            c.registry.upload_daily(daily, who, channel="gateway")

    # rejected submissions for the rectification view
    org = orgs[0]
    who = Principal(org.code, org.user, "hospital")
    bad = make_lab_report(rng, org, patients[0], now - timedelta(days=2))
    bad["labmaster"]["id_no"] = bad["labmaster"]["id_no"][:17] + ("0" if bad["labmaster"]["id_no"][17] != "0" else "1")
    bad["labmaster"]["id_type_code"] = "01"
    bad2 = make_exam_report(rng, org, patients[1], now - timedelta(days=3))
    bad2["exammaster"]["performer_dept_std_code"] = "3221"
    rejected = 0
    for kind, payload in (("lab", bad), ("exam", bad2)):
        try:
            c.registry.register(kind, payload, who, channel="gateway")
        except HurenError:
            rejected += 1

    decisions = doctor_decisions(c, rng, orgs, by_org, now)
    remote = simulate_remote_city(c, random.Random(seed + 1), patients, now)  # its own draws: the rest of the demo unchanged

    return {
        "institutions": len(orgs) + len(supervisors),
        "platforms": [p["code"] for p in c.federation.list_platforms()],
        # a real city's institutions whose data came through its feed (no accounts here)
        "synced_institutions": remote["institutions"],
        "remote_sync": remote,
        "decisions": decisions,
        "catalog_items": catalog_items,
        "patients": len(patients) + len(locals_),
        "reports_registered": registered,
        "imaging": images,
        "rejected_examples": rejected,
        "credentials": [
            {"org_code": o.code, "name": o.name, "username": o.user, "password": o.password, "role": "hospital"}
            for o in orgs
        ]
        + [
            {"org_code": o.code, "name": o.name, "username": user, "password": o.password, "role": role}
            for o in orgs
            for user, role in (("admin", "admin"), (DEMO_DOCTORS[0][0], "doctor"))
        ]
        + [{"org_code": s.code, "name": s.name, "username": s.user, "password": s.password, "role": "supervisor"} for s in supervisors],
    }
