"""A small hospital source for the gateway tests: a JSON-lines file a test appends to, one record
per line (``{"kind", "key", "payload", "watermark"}``), the watermark being the line number.

The gateway process loads it through ``factory = "tests.e2e.gateway_source:build"``. Also: the
demo generator's lab reports as a stream of registrations, voids and corrected resubmissions."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from huren.demo.generator import demo_orgs, make_exam_report, make_lab_report, make_patients
from huren.gateway.model import Record
from huren.gateway.outbox import report_key

ORG = demo_orgs()[0]
PASSWORD = "gateway-pass-1"


class JsonlSource:
    """``by = "line"``: the watermark is the line number; ``"dtime"``: the report's
    ``last_update_dtime``, like a database view polled by that column."""

    def __init__(self, name: str, path: Path, by: str = "line") -> None:
        self.name = name
        self.path = path
        self.by = by

    def _lines(self) -> Iterator[tuple[str, dict[str, Any]]]:
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            for i, line in enumerate(fh):
                if not line.endswith(b"\n"):
                    return  # still being written
                d = json.loads(line)
                if self.by == "line":
                    yield f"{i:09d}", d
                else:
                    master = d["payload"].get(f"{d['kind']}master", d["payload"])
                    yield master["last_update_dtime"], d

    def poll(self, watermark: str) -> Iterator[Record]:
        for mark, d in sorted(self._lines(), key=lambda x: x[0]):
            if mark > watermark:
                yield Record(d["kind"], d["key"], d["payload"], self.name, mark)

    def count(self, watermark: str) -> int:
        return sum(1 for mark, _ in self._lines() if mark > watermark)


def build(conf: dict[str, Any]) -> JsonlSource:
    return JsonlSource(str(conf["name"]), Path(conf["path"]), str(conf.get("by", "line")))


def void_filter(master: dict[str, Any]) -> dict[str, Any]:
    keys = ("org_code", "report_form_no", "patient_id", "event_type", "event_no", "id_no")
    return {k: master[k] for k in keys} | {"id_type": master["id_type_code"]}


def line(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    base = kind.removeprefix("void_")
    fields = payload.get(f"{base}master", payload)
    return {"kind": kind, "key": report_key(base, fields), "payload": payload}


def stream(n: int, *, voids: int = 0, resubmits: int = 0, exams: int = 0, seed: int = 11) -> list[dict[str, Any]]:
    """``n`` lab (and ``exams`` exam) registrations of yesterday; then, interleaved with later
    registrations, ``voids`` voids and ``resubmits`` corrected versions of earlier reports."""
    rng = random.Random(seed)
    patients = make_patients(rng, max(20, n // 10))
    day = datetime.now().replace(hour=8, minute=0, second=0, microsecond=0) - timedelta(days=1)
    regs = []
    for i in range(n + exams):
        when = day + timedelta(seconds=20 * i)
        make = make_lab_report if i < n else make_exam_report
        p = make(rng, ORG, patients[i % len(patients)], when, with_pdf=False)
        regs.append(line("lab" if i < n else "exam", p))
    out: list[dict[str, Any]] = []
    later: list[dict[str, Any]] = []
    for i, reg in enumerate(regs):
        out.append(reg)
        if i < voids:
            master = reg["payload"]["labmaster"]
            later.append(line("void_lab", void_filter(master)))
        elif i < voids + resubmits:
            fixed = json.loads(json.dumps(reg["payload"]))
            fixed["labmaster"]["report_title"] += "（更正）"
            # a corrected version carries a later last_update_dtime, as the LIS stamps it
            stamp = datetime.strptime(fixed["labmaster"]["last_update_dtime"], "%Y-%m-%d %H:%M:%S") + timedelta(minutes=30)
            for row in (fixed["labmaster"], *fixed.get("lab_subitem", [])):
                if "last_update_dtime" in row:
                    row["last_update_dtime"] = stamp.strftime("%Y-%m-%d %H:%M:%S")
            later.append(line("lab", fixed))
        if later and (i % 7 == 6 or i == len(regs) - 1):  # the follow-ups come a little later
            out.extend(later)
            later = []
    out.extend(later)
    return out


def append(path: Path, lines: list[dict[str, Any]]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        for d in lines:
            fh.write(json.dumps(d, ensure_ascii=False) + "\n")
