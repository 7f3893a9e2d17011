"""`huren demo`: load a realistic demo region through the services (as hospitals would)."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from huren.context import Principal
from huren.demo.catalog import import_packaged_demo
from huren.demo.generator import DemoOrg, demo_orgs, make_daily_counts, make_exam_report, make_lab_report, make_patients
from huren.errors import HurenError
from huren.services.container import Container

#: The city's health commission: a supervisor account (demo only).
SUPERVISOR = DemoOrg("650100000", "乌鲁木齐市卫生健康委员会", "650100", 3, "", "admin", "huren-demo-admin")


def _day(payload: dict[str, Any]) -> date:
    master = payload.get("labmaster") or payload["exammaster"]
    return datetime.fromisoformat(master["authenticator_dtime"]).date()


def _decision_time(rng: random.Random, master: dict[str, Any], now: datetime) -> str:
    """When the demo doctor decided: after the prior report was approved, within the last two weeks,
    so that the statistics pages show a trend rather than a single day."""
    approved = datetime.fromisoformat(master["authenticator_dtime"])
    start = max(approved, now - timedelta(days=14))
    span = max(0, int((now - start).total_seconds()))
    return (start + timedelta(seconds=rng.randint(0, span))).strftime("%Y-%m-%d %H:%M:%S")


def _register_as_received(
    c: Container, rng: random.Random, orgs: list[DemoOrg], by_org: dict[str, list[dict[str, Any]]],
    kinds: dict[str, list[str]], now: datetime,
) -> int:
    """Register every demo report at the time its hospital would have sent it: most within hours
    of approval, about one in ten a day or more late, so the timeliness page has something to
    show. The platform's clock is moved for each registration and put back afterwards."""
    timeline = []
    for org in orgs:
        for p, kind in zip(by_org.get(org.code, []), kinds[org.code], strict=True):
            approved = datetime.fromisoformat((p.get("labmaster") or p["exammaster"])["authenticator_dtime"])
            late = rng.random() < 0.1
            delay = timedelta(hours=rng.uniform(24.5, 72)) if late else timedelta(minutes=rng.uniform(5, 360))
            timeline.append((min(approved + delay, now), org, kind, p))
    timeline.sort(key=lambda t: t[0])
    registered = 0
    base = c.clock.offset
    try:
        for at, org, kind, payload in timeline:
            c.clock.offset = base + (at - now).total_seconds()
            who = Principal(org.code, org.user, "hospital")
            c.registry.register(kind, payload, who, channel="gateway")
            registered += 1
    finally:
        c.clock.offset = base
    return registered


def load_demo(c: Container, *, reports: int = 200, seed: int = 20241122, if_empty: bool = False) -> dict[str, Any]:
    """Institutions with credentials, patients, lab and exam reports with PDFs, daily counts
    (one institution under-declares a day, one forgets a day), and a few rejected submissions."""
    if if_empty and c.directory.list_orgs():
        return {"skipped": True, "reason": "数据库中已有机构，未重复生成演示数据"}
    rng = random.Random(seed)
    orgs = demo_orgs()
    catalog_items = import_packaged_demo(
        c.catalog,
        Principal(SUPERVISOR.code, SUPERVISOR.user, "supervisor"),
        map_org=Principal(orgs[0].code, orgs[0].user, "hospital"),
    )
    for o in orgs:
        c.directory.add_org(o.code, o.name, o.region_code, f"{o.level}{o.grade}", user=o.user, password=o.password)
        _staff_and_accounts(c, o)
    s = SUPERVISOR
    c.directory.add_org(s.code, s.name, s.region_code, s.level, user=s.user, password=s.password, role="supervisor")

    patients = make_patients(rng, max(10, reports // 4))
    now = c.clock.now()
    weights = [o.level for o in orgs]  # bigger hospitals report more
    by_org: dict[str, list[dict[str, Any]]] = defaultdict(list)
    kinds: dict[str, list[str]] = defaultdict(list)
    for _ in range(reports):
        org = rng.choices(orgs, weights)[0]
        patient = rng.choice(patients)
        when = now - timedelta(days=rng.randint(1, 30), hours=rng.randint(0, 10), minutes=rng.randint(0, 59))
        if rng.random() < 0.6:
            by_org[org.code].append(make_lab_report(rng, org, patient, when))
            kinds[org.code].append("lab")
        else:
            by_org[org.code].append(make_exam_report(rng, org, patient, when))
            kinds[org.code].append("exam")

    registered = _register_as_received(c, rng, orgs, by_org, kinds, now)
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

    decisions = _doctor_decisions(c, rng, orgs, by_org, now)

    return {
        "institutions": len(orgs) + 1,
        "decisions": decisions,
        "catalog_items": catalog_items,
        "patients": len(patients),
        "reports_registered": registered,
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
        + [{"org_code": s.code, "name": s.name, "username": s.user, "password": s.password, "role": "supervisor"}],
    }


#: departments (local code, name, STD_DEPT) and doctors (staff code, name, department) of every demo hospital
DEMO_DEPTS = (("0101", "内科门诊", "A03"), ("0301", "外科门诊", "A04"), ("2001", "急诊科", "A20"))
DEMO_DOCTORS = (("D1001", "王建国", "0101"), ("D1002", "李秀英", "0301"), ("D1003", "阿不都热依木·买买提", "2001"))


def _staff_and_accounts(c: Container, o: DemoOrg) -> None:
    """A hospital's departments and doctors (HZ-1/HZ-3) and its page accounts: an administrator
    ("admin") and one login per doctor (the staff code), all with the institution's demo password."""
    who = Principal(o.code, o.user, "hospital")
    c.masterdata.upload("dept", {"dept": [{"dept_code": d, "dept_name": n, "dept_std_code": std} for d, n, std in DEMO_DEPTS]}, who)
    c.masterdata.upload(
        "staff", {"staff": [{"staff_code": code, "name": name, "dept_code": dept, "title": "主治医师"} for code, name, dept in DEMO_DOCTORS]}, who
    )
    c.directory.add_credential(o.code, "admin", o.password, role="admin")
    for code, _, _ in DEMO_DOCTORS:
        c.directory.add_credential(o.code, code, o.password, role="doctor")


def _doctor_decisions(
    c: Container, rng: random.Random, orgs: list[DemoOrg], by_org: dict[str, list[dict[str, Any]]], now: datetime
) -> dict[str, int]:
    """Doctors at another institution order items the patient already has: the platform answers
    (a reminder), the doctor accepts most, rejects some with a reason, and cites some accepted."""
    counts = {"asked": 0, "accepted": 0, "rejected": 0, "cited": 0}
    prior = [(code, p) for code, ps in by_org.items() for p in ps]
    rng.shuffle(prior)
    for org_code, payload in prior[:40]:
        doctor_org = rng.choice([o for o in orgs if o.code != org_code])
        who = Principal(doctor_org.code, doctor_org.user, "hospital")
        master = payload.get("labmaster") or payload["exammaster"]
        lab = [i["class_code"] for i in payload.get("lab_subitem", [])][:5]
        check = [i["exam_item_code"] for i in payload.get("exam_subitem", [])][:3]
        visit_no = f"MZ{rng.randint(10_000_000, 99_999_999)}"
        dept = rng.choice([("0101", "内科门诊", "A03", "内科"), ("0301", "外科门诊", "A04", "外科"), ("2001", "急诊科", "A20", "急诊医学科")])
        doctor = rng.choice([("D1001", "王建国"), ("D1002", "李秀英"), ("D1003", "阿不都热依木·买买提")])
        answer = c.recognition.exists(who, master["id_type_code"], master["id_no"], check=check, lab=lab)
        counts["asked"] += 1
        base = {
            "id_no": master["id_no"], "id_type_code": master["id_type_code"],
            "record_time": _decision_time(rng, master, now),
            "new_event_no": visit_no, "new_event_type": "1",
            "dept_code": dept[0], "dept_name": dept[1], "dept_std_code": dept[2], "dept_std_name": dept[3],
            "doc_code": doctor[0], "doc_name": doctor[1],
        }
        found = [(m, i["item_code"], "2") for m in answer["labmaster"] for i in m["item"]]
        found += [(m, m["item_code"], "1") for m in answer["exammaster"]]
        accepts, quotes = [], []
        for m, code, type_ in found:
            rec = base | {"hr_org_code": m["org_code"], "hr_report_form_no": m["report_form_no"], "code": code, "type": type_}
            if rng.random() < 0.75:
                accepts.append(rec | {"is_accept": "1", "reason": ""})
                if rng.random() < 0.5:
                    quotes.append(rec)
            else:
                accepts.append(rec | {"is_accept": "2", "reason": str(rng.choice([1, 2, 4, 5, 8, 10]))})
        if accepts:
            c.recognition.submit("accept", {"sehr_accept_record": accepts}, who, channel="gateway")
            counts["accepted"] += sum(1 for a in accepts if a["is_accept"] == "1")
            counts["rejected"] += sum(1 for a in accepts if a["is_accept"] == "2")
        if quotes:
            c.recognition.submit("quote", {"sehr_quote_record": quotes}, who, channel="gateway")
            counts["cited"] += len(quotes)
    return counts
