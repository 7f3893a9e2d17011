"""Demo daily counts: the ``lab_exam_report`` payload (seed 002 §1.2.2) of an institution's day."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from huren.demo.institutions import DemoOrg
from huren.demo.values import digest


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
    stamp = f"{day + timedelta(days=1):%Y-%m-%d} 03:00:{digest('daily', org.code) % 60:02d}"
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
