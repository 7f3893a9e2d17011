"""Doctors' decisions on the demo's results: at another institution a doctor orders items the
patient already has, the platform answers (a reminder), and the doctor accepts or rejects each
result, citing some of the accepted ones (XC-P4/P5)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from huren.context import Principal
from huren.demo.institutions import DemoOrg
from huren.services.container import Container


def _decision_time(rng: random.Random, master: dict[str, Any], now: datetime) -> str:
    """When the demo doctor decided: after the prior report was approved, within the last two weeks,
    so that the statistics pages show a trend rather than a single day."""
    approved = datetime.fromisoformat(master["authenticator_dtime"])
    start = max(approved, now - timedelta(days=14))
    span = max(0, int((now - start).total_seconds()))
    return (start + timedelta(seconds=rng.randint(0, span))).strftime("%Y-%m-%d %H:%M:%S")


def doctor_decisions(
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
