"""Recognition benchmark (issue: recognition engine): exists-for-order on a big store.

Fills the store with --lab-reports lab reports of 15 sub-items and --exam-reports exam reports
over --patients patients (bulk-written, see ``bench/_bulk.py``; progress on stderr), then asks
"which of these 5 ordered items have a recognizable recent result?" for random patients that
have data (a mix of lab and exam codes, weighted towards codes the patient actually has):

  1. service layer: ``RecognitionService.exists`` called directly (including its reminder-log
     and access-log writes), timed per call after a warm-up;
  2. reference: ONE hand-written SQL statement per ask (a UNION ALL of a lab and an exam part)
     over the raw DBAPI connection that computes the same recognizable (kind, report id, item
     code) multiset with the whole rule in SQL; every answer is compared with the service's and
     any mismatch fails the run. Service and reference run on the same asks, alternately first,
     with the app clock pinned to the same instant for both;
  3. HTTP: ``POST /api/v1/recognition/exists`` against ``huren serve`` on the same database
     from --clients concurrent keep-alive clients (2 processes x threads), each timing its
     requests (closed loop: every client sends its next request when the answer arrives).

Targets (2-core machine): service p99 <= 10 ms and <= 2x the raw SQL p99; HTTP p99 <= 30 ms.
Prints human lines; the last line is one JSON object of figures.

Run: ``.venv/bin/python bench/recognition.py [--lab-reports 1000000 --exam-reports 200000
--patients 500000] [--data-dir DIR --keep] [--reuse] [--database-url URL]``.
A rerun with ``--data-dir DIR --reuse`` skips the fill when DIR already holds a filled store
(the report times are relative to the fill's clock, so a store ages: refill after a few days).
``--profile N`` adds where the time of exists() goes (its steps timed inside N calls, then
cProfile by layer). With ``--database-url`` (PostgreSQL) that database's report, catalog and
institution tables are emptied before the fill: give it a database of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import http.client
import json
import multiprocessing as mp
import os
import pstats
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select

from bench._bulk import SPAN_DAYS, fill, make_orgs, reset
from bench._common import cpu_seconds, free_port, postgres_cpu_seconds, start_server
from huren.bootstrap import build
from huren.context import Clock, Principal
from huren.errors import Conflict
from huren.services.container import Container
from huren.settings import Settings
from huren.store import recognition as rstore
from huren.store import sealing
from huren.store.tables import catalog_item, exam_item, exam_report, lab_item, lab_report

SECRET = "bench-" + "k" * 40
MARKER = "recognition-bench.json"
DAYS = 90
TARGET_SERVICE_P99 = 10.0
TARGET_RATIO = 2.0
TARGET_HTTP_P99 = 30.0  # retired (issue 13): the floor's own p99 is 12-29 ms here; the ratios below replace it
TARGET_HTTP_P99_RATIO = 2.0  # exists-for-order p99 <= 2 x the no-op floor's, same run
TARGET_HTTP_RPS_RATIO = 0.5  # exists-for-order throughput >= 50 % of the floor's, same run
USER, PASSWORD = "bench", "bench-pass-2024"


class PinnedClock(Clock):
    """The app clock, or a fixed instant while ``pinned`` is set (service and reference see the same now)."""

    def __init__(self, tz: str = "Asia/Shanghai") -> None:
        super().__init__(tz)
        self.pinned: datetime | None = None

    def now(self) -> datetime:
        return self.pinned if self.pinned is not None else super().now()

    def real_now(self) -> datetime:
        return super().now()


@dataclass(frozen=True, slots=True)
class Ask:
    id_no: str
    lab: tuple[str, ...]
    check: tuple[str, ...]
    id_no_bidx: str = ""  # its blind index (huren.store.sealing), for the reference SQL

    def body(self) -> bytes:
        return json.dumps(
            {"id_type_code": "01", "id_no": self.id_no, "check": list(self.check), "lab": list(self.lab), "days": DAYS}
        ).encode()


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))
    return s[k]


def summary(ms: list[float]) -> dict[str, float]:
    return {"p50": pct(ms, 50), "p90": pct(ms, 90), "p99": pct(ms, 99), "max": max(ms), "mean": statistics.fmean(ms)}


def fmt(s: dict[str, float]) -> str:
    return f"p50 {s['p50']:6.2f}  p90 {s['p90']:6.2f}  p99 {s['p99']:6.2f}  max {s['max']:7.2f}  mean {s['mean']:6.2f} ms"


# -- store ------------------------------------------------------------------------------------


def prepare(args: argparse.Namespace, data_dir: Path) -> tuple[Container, dict[str, Any]]:
    """A container on a filled store (filled now, or reused with --reuse)."""
    settings = Settings(data_dir=data_dir, database_url=args.database_url, secret_key=SECRET)
    marker = data_dir / MARKER
    if args.reuse:
        c = build(settings, clock=PinnedClock(settings.timezone), upgrade=True)
        with c.db.read() as conn:
            n_lab = conn.execute(select(func.max(lab_report.c.id))).scalar() or 0
            n_exam = conn.execute(select(func.max(exam_report.c.id))).scalar() or 0
        if n_lab:
            info = json.loads(marker.read_text()) if marker.exists() else {}
            info |= {"lab_reports": n_lab, "exam_reports": n_exam, "reused": True}
            info.setdefault("patients", args.patients)
            print(f"reusing the filled store in {data_dir}: {n_lab:,} lab / {n_exam:,} exam reports")
            return c, info
        c.close()
        print("--reuse: the store is empty, filling it")
    if not args.database_url:  # a fresh SQLite file
        for suffix in ("", "-wal", "-shm"):
            (data_dir / f"huren.db{suffix}").unlink(missing_ok=True)
    c = build(settings, clock=PinnedClock(settings.timezone), upgrade=True)
    if args.database_url:
        reset(c)
    print(f"filling {args.lab_reports:,} lab reports x 15 items + {args.exam_reports:,} exam reports "
          f"over {args.patients:,} patients ...")
    info = fill(c, lab_reports=args.lab_reports, exam_reports=args.exam_reports, patients=args.patients, seed=args.seed,
                span_days=args.span_days, writers=args.fill_writers)
    info["reused"] = False
    marker.write_text(json.dumps(info))
    print(f"filled in {info['seconds']:.1f} s ({info['rows']:,} rows, {info['rows'] / info['seconds']:,.0f} rows/s; "
          f"setup {info['setup_seconds']:.1f} s)")
    return c, info


def db_size(data_dir: Path, url: str | None, c: Container) -> int:
    if url:
        with c.db.read() as conn:
            return int(conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar() or 0)
    return sum(p.stat().st_size for p in data_dir.glob("huren.db*"))


# -- asks -------------------------------------------------------------------------------------


def make_asks(c: Container, n: int, rng: random.Random) -> tuple[list[Ask], float]:
    """``n`` orders of 5 items for random patients with data: 70 % of them found through a
    report of the last 10 days (many lab validities are 3-7 days, so answers are mostly
    non-empty), the rest through any report; each ordered code is, with probability 3/4, one the
    patient has (from the last 30 days if any, else from the window), else any catalog code of
    that kind. 1 or 2 exam codes, the rest lab codes. Returns the asks and the share of patients
    found through a result of the last 10 days."""
    now = c.clock.now()
    fields = c.keys.fields()
    latest, recent, since = now - timedelta(days=10), now - timedelta(days=30), now - timedelta(days=DAYS)
    with c.db.read() as conn:
        cat = {k: sorted(conn.execute(select(catalog_item.c.code).where(catalog_item.c.kind == k)).scalars()) for k in ("lab", "exam")}
        top = {
            "lab": conn.execute(select(func.max(lab_report.c.id))).scalar() or 0,
            "exam": conn.execute(select(func.max(exam_report.c.id))).scalar() or 0,
        }
        asks = []
        hits = 0
        for _ in range(n):
            kind = "exam" if (rng.random() < 0.3 and top["exam"]) or not top["lab"] else "lab"
            m = lab_report if kind == "lab" else exam_report
            want_recent = rng.random() < 0.7
            row = None
            for _try in range(50):
                row = conn.execute(
                    select(m.c.org_code, m.c.id_no, m.c.id_no_bidx, m.c.authenticator_dtime).where(m.c.id == rng.randint(1, top[kind]))
                ).first()
                if row is not None and (not want_recent or row.authenticator_dtime >= latest):
                    break
            assert row is not None
            hits += row.authenticator_dtime >= latest
            own: dict[str, list[str]] = {}
            for k, mt, it, code in (
                ("lab", lab_report, lab_item, lab_item.c.class_code),
                ("exam", exam_report, exam_item, exam_item.c.exam_item_code),
            ):
                q = (
                    select(code, func.max(mt.c.authenticator_dtime))
                    .select_from(mt.join(it, it.c.report_id == mt.c.id))
                    .where(mt.c.id_type_code == "01", mt.c.id_no_bidx == row.id_no_bidx, mt.c.authenticator_dtime >= since)
                    .group_by(code)
                )
                known = set(cat[k])
                have = [(x, last) for x, last in conn.execute(q) if x in known]
                fresh = sorted(x for x, last in have if last >= recent)  # prefer the last 30 days' codes
                own[k] = fresh or sorted(x for x, _ in have)
            n_exam = 1 if rng.random() < 0.6 else 2
            picked: dict[str, list[str]] = {"lab": [], "exam": []}
            for k, want in (("exam", n_exam), ("lab", 5 - n_exam)):
                while len(picked[k]) < want:
                    src = own[k] if own[k] and rng.random() < 0.75 else cat[k]
                    code_ = rng.choice(src)
                    if code_ not in picked[k]:
                        picked[k].append(code_)
            id_no = sealing.open_row(fields, m.name, row._mapping)["id_no"]  # the report holds it sealed
            asks.append(Ask(id_no, tuple(picked["lab"]), tuple(picked["exam"]), row.id_no_bidx))
    return asks, hits / max(n, 1)


# -- reference SQL ----------------------------------------------------------------------------

_PARTS = (
    ("lab", "lab_report", "lab_item", "class_code"),
    ("exam", "exam_report", "exam_item", "exam_item_code"),
)


def reference_sql(sqlite: bool, n_lab: int, n_exam: int) -> str:
    """The recognizable (kind, report id, item code) rows of one order, the rule written in SQL:
    ordered standard code, item flag 1, catalog recognizable, report not voided, authenticated
    in the window, now < item result time + validity days, institution level >= the code's
    minimum, institution region under the code's scope (one normalised prefix; "" = anywhere).
    Driven by the (id_type_code, id_no_bidx, authenticator_dtime) index, then the items' primary
    key; the ask carries the ID number's blind index (the service computes it, one HMAC per ask)."""
    ph = "?" if sqlite else "%s"
    if sqlite:  # DateTime is text 'YYYY-MM-DD HH:MM:SS.ffffff'; datetime() answers 'YYYY-MM-DD HH:MM:SS'
        expiry = f"{ph} < datetime(i.effective_dtime, '+' || c.validity_days || ' days')"
    else:
        expiry = f"{ph} < i.effective_dtime + c.validity_days * interval '1 day'"
    parts = []
    for (kind, master, items, code), n in zip(_PARTS, (n_lab, n_exam), strict=True):
        if n:
            parts.append(
                f"SELECT '{kind}', r.id, i.{code} FROM {master} r"
                f" JOIN {items} i ON i.report_id = r.id"
                f" JOIN catalog_item c ON c.kind = '{kind}' AND c.code = i.{code}"
                f" JOIN org o ON o.code = r.org_code"
                f" WHERE r.id_type_code = {ph} AND r.id_no_bidx = {ph} AND r.authenticator_dtime >= {ph}"
                f" AND i.{code} IN ({', '.join([ph] * n)})"
                f" AND i.recognition = 1 AND c.recognizable AND NOT r.voided AND {expiry}"
                f" AND o.level >= c.min_level"
                f" AND substr(o.region_code, 1, length(c.region_scope)) = c.region_scope"
            )
    return " UNION ALL ".join(parts)


class Reference:
    """The hand-written query over one raw DBAPI connection (autocommit on PostgreSQL)."""

    def __init__(self, c: Container) -> None:
        self.sqlite = c.db.is_sqlite
        # the service searches back to the longest validity in force (issue 10 §2.3), the list
        # window (DAYS) at least
        with c.db.read() as conn:
            longest = conn.execute(select(func.max(catalog_item.c.validity_days)).where(catalog_item.c.recognizable)).scalar()
        self.search_days = max(DAYS, int(longest or 0))
        self.raw = c.db.engine.raw_connection()
        self.dbapi: Any = cast(Any, self.raw.driver_connection)
        if not self.sqlite:
            self.dbapi.autocommit = True
        self.cur = self.dbapi.cursor()
        self.sql: dict[tuple[int, int], str] = {}

    def params(self, ask: Ask, now: datetime) -> list[Any]:
        since = now - timedelta(days=self.search_days)
        if self.sqlite:
            s_since: Any = since.isoformat(" ", "microseconds")
            s_now: Any = now.isoformat(" ", "seconds")
        else:
            s_since, s_now = since, now
        out: list[Any] = []
        for codes in (ask.lab, ask.check):
            if codes:
                out += ["01", ask.id_no_bidx, s_since, *codes, s_now]
        return out

    def run(self, ask: Ask, now: datetime) -> list[tuple[str, int, str]]:
        return self.run_on(self.cur, ask, now)

    def run_on(self, cur: Any, ask: Ask, now: datetime) -> list[tuple[str, int, str]]:
        shape = (len(ask.lab), len(ask.check))
        sql = self.sql.get(shape)
        if sql is None:
            sql = self.sql[shape] = reference_sql(self.sqlite, *shape)
        cur.execute(sql, self.params(ask, now))
        rows: list[tuple[str, int, str]] = cur.fetchall()
        return rows

    def plan(self, ask: Ask, now: datetime) -> str:
        sql = reference_sql(self.sqlite, len(ask.lab), len(ask.check))
        prefix = "EXPLAIN QUERY PLAN " if self.sqlite else "EXPLAIN "
        self.cur.execute(prefix + sql, self.params(ask, now))
        rows = self.cur.fetchall()
        return "\n".join("    " + str(r[-1] if self.sqlite else r[0]) for r in rows)

    def close(self) -> None:
        self.cur.close()
        if not self.sqlite:
            self.dbapi.autocommit = False
        self.raw.close()


_REMINDER_COLS = (
    "at", "action", "source", "org_code", "dept_code", "dept_std_code", "doc_code", "doc_name", "id_type_code",
    "id_no", "id_no_bidx", "event_no", "kind", "item_codes", "ordered", "recognizable",
)
_ACCESS_COLS = ("at", "org_code", "username", "action", "id_type_code", "id_no", "id_no_bidx", "target", "remote_addr")


class LoggedReference:
    """The service's whole job in raw SQL on one DBAPI connection, in ONE transaction: the same
    reads (the reference query above) and the same two log inserts (a reminder row per kind with
    recognizable items shown, XC-P4, and the access-log row), then the commit — durable as the
    service's is (PostgreSQL: a WAL flush, ``synchronous_commit = on``; SQLite: committed, not
    fsynced by itself, ``Database.write(durable=False)``). The sealed ID number and its blind
    index are computed before the clock starts (:meth:`sealed`): only the database work is timed."""

    def __init__(self, c: Container, reads: Reference, who: Principal) -> None:
        self.sqlite = c.db.is_sqlite
        self.reads = reads
        self.who = who
        self.fields = c.keys.fields()
        self.raw = c.db.engine.raw_connection()
        self.dbapi: Any = cast(Any, self.raw.driver_connection)
        if self.sqlite:
            self.dbapi.isolation_level = None  # BEGIN / COMMIT by hand below
            self.dbapi.execute("PRAGMA synchronous=NORMAL")  # as the service's log transaction
        else:
            self.dbapi.autocommit = False
        self.cur = self.dbapi.cursor()
        ph = "?" if self.sqlite else "%s"
        self.ins_reminder = f"INSERT INTO reminder_log ({', '.join(_REMINDER_COLS)}) VALUES ({', '.join([ph] * len(_REMINDER_COLS))})"
        self.ins_access = f"INSERT INTO access_log ({', '.join(_ACCESS_COLS)}) VALUES ({', '.join([ph] * len(_ACCESS_COLS))})"

    def sealed(self, ask: Ask) -> tuple[tuple[str, str], tuple[str | None, str | None]]:
        """(reminder row's sealed id_no and blind index, access row's), sealed as the service seals them."""
        from huren.store import audit as audit_store

        r = sealing.seal_row(self.fields, "reminder_log", {"org_code": self.who.org_code, "id_no": ask.id_no})
        return (r["id_no"], r["id_no_bidx"]), audit_store.sealed_id(self.fields, ask.id_no)

    def run(self, ask: Ask, now: datetime, sealed: tuple[tuple[str, str], tuple[str | None, str | None]]) -> list[tuple[str, int, str]]:
        at: Any = now.isoformat(" ", "microseconds") if self.sqlite else now
        cur = self.cur
        if self.sqlite:
            cur.execute("BEGIN")
        rows = self.reads.run_on(cur, ask, now)
        found: dict[str, set[str]] = {"exam": set(), "lab": set()}
        for kind, _rid, code in rows:
            found[str(kind)].add(str(code))
        (r_id, r_bidx), (a_id, a_bidx) = sealed
        org, user = self.who.org_code, self.who.username
        ordered = {"exam": len(ask.check), "lab": len(ask.lab)}
        reminders = [
            (at, "reminder", "platform", org, "", "", "", "", "01", r_id, r_bidx, "", kind, ",".join(f"{kind}:{c}" for c in sorted(codes)),
             ordered[kind], len(codes))
            for kind, codes in found.items() if codes
        ]
        if reminders:
            cur.executemany(self.ins_reminder, reminders)
        cur.execute(self.ins_access, (at, org, user, "recognition_exists", "01", a_id, a_bidx, f"{len(rows)} items", None))
        if self.sqlite:
            cur.execute("COMMIT")
        else:
            self.dbapi.commit()
        return rows

    def close(self) -> None:
        self.cur.close()
        if self.sqlite:
            self.dbapi.execute("PRAGMA synchronous=FULL")
            self.dbapi.isolation_level = ""
        self.raw.close()


def service_answer(c: Container, res: dict[str, Any]) -> list[tuple[str, int, str]]:
    """The (kind, report id, item code) of an answer, its opaque report refs decoded (huren.services.refs)."""
    rid = c.refs.report_id
    out = [("lab", rid("lab", e["report_id"]), str(i["item_code"])) for e in res["labmaster"] for i in e["item"]]
    out += [("exam", rid("exam", e["report_id"]), str(e["item_code"])) for e in res["exammaster"]]
    return sorted(out)


# -- service vs reference ---------------------------------------------------------------------


def bench_service(c: Container, asks: list[Ask], warmup: int, who: Principal) -> dict[str, Any]:
    """Service, read-only reference and logged reference on the same asks, in turn (which one
    goes first rotates from ask to ask), with the app clock pinned to one instant per ask."""
    clock = c.clock
    assert isinstance(clock, PinnedClock)
    ref = Reference(c)
    logged = LoggedReference(c, ref, who)
    svc_ms: list[float] = []
    raw_ms: list[float] = []
    log_ms: list[float] = []
    mismatches: list[tuple[Ask, list[Any], list[Any]]] = []
    found = []
    perf = time.perf_counter
    exists = c.recognition.exists
    seals = [logged.sealed(a) for a in asks]
    c.db.start_checkpointer()  # as `huren serve` does: WAL checkpoints off the request path
    gc.collect()
    gc.freeze()
    orders = ((0, 1, 2), (1, 2, 0), (2, 0, 1))
    try:
        for k, ask in enumerate(asks):
            now = clock.pinned = clock.real_now()
            got: list[Any] = []
            want: list[Any] = []
            want_logged: list[Any] = []
            t_svc = t_raw = t_log = 0.0
            for which in orders[k % 3]:
                if which == 0:
                    t0 = perf()
                    res = exists(who, "01", ask.id_no, check=ask.check, lab=ask.lab, days=DAYS)
                    t_svc = perf() - t0
                    got = service_answer(c, res)
                elif which == 1:
                    t0 = perf()
                    rows = ref.run(ask, now)
                    t_raw = perf() - t0
                    want = sorted((str(a), int(b), str(cc)) for a, b, cc in rows)
                else:
                    t0 = perf()
                    rows = logged.run(ask, now, seals[k])
                    t_log = perf() - t0
                    want_logged = sorted((str(a), int(b), str(cc)) for a, b, cc in rows)
            if got != want or want_logged != want:
                mismatches.append((ask, got, want))
            if k >= warmup:
                svc_ms.append(t_svc * 1000)
                raw_ms.append(t_raw * 1000)
                log_ms.append(t_log * 1000)
                found.append(len(got))
        plan = ref.plan(asks[0], clock.pinned or clock.now())
    finally:
        clock.pinned = None
        logged.close()
        ref.close()
    return {"service": svc_ms, "raw": raw_ms, "logged": log_ms, "mismatches": mismatches, "found": found, "plan": plan}


def time_by_layer(stats: pstats.Stats) -> dict[str, float]:
    """Own (tottime) seconds of the profiled calls grouped by layer."""
    out: dict[str, float] = {}
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    for (file, _line, name), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        if "sqlite3" in name or "psycopg" in file or "psycopg" in name:
            layer = "database driver (sqlite3 / psycopg)"
        elif "sqlalchemy" in file:
            layer = "SQLAlchemy (statement build, cache key, results)"
        elif "/huren/" in file:
            layer = "huren (service, store, rule)"
        elif "threading" in file or "lock" in name:
            layer = "locks / threading"
        else:
            layer = "other (stdlib, builtins)"
        out[layer] = out.get(layer, 0.0) + tottime
    return out


def profile_service(c: Container, asks: list[Ask], who: Principal, top: int) -> None:
    """Where the time of exists() goes: its steps timed inside the same calls, then cProfile."""
    breakdown(c, asks, who)
    prof = cProfile.Profile()
    prof.enable()
    for ask in asks:
        c.recognition.exists(who, "01", ask.id_no, check=ask.check, lab=ask.lab, days=DAYS)
    prof.disable()
    stats = pstats.Stats(prof, stream=sys.stdout)
    split = time_by_layer(stats)
    total = sum(split.values())
    print(f"\ncProfile of {len(asks)} service calls: own time by layer (profiler overhead inflates Python code)")
    for layer, sec in sorted(split.items(), key=lambda kv: -kv[1]):
        print(f"  {layer:<50} {sec / len(asks) * 1000:6.3f} ms/call  {sec / total:5.1%}")
    print(f"cumulative, top {top}:")
    stats.strip_dirs().sort_stats("cumulative").print_stats(top)


def breakdown(c: Container, asks: list[Ask], who: Principal) -> None:
    """exists() with its steps wrapped by timers (the bench patches attributes, no product change):
    the two store reads, the reminder-log write transaction, the access-log write transaction,
    the catalog / institution cache, GC pauses; and the reference SQL alone, with no writes
    between the reads."""
    svc = c.recognition
    acc: dict[str, float] = {}
    perf = time.perf_counter

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **kw: Any) -> Any:
            t0 = perf()
            try:
                return fn(*a, **kw)
            finally:
                acc[name] = acc.get(name, 0.0) + perf() - t0

        return wrapper

    gc_t0 = [0.0]

    def on_gc(phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            gc_t0[0] = perf()
        else:
            acc["gc"] = acc.get("gc", 0.0) + perf() - gc_t0[0]

    patches: list[tuple[Any, str, str]] = [
        (rstore, "prior_items", "reads"),
        (svc, "_log", "reminder"),
        (c.audit, "record", "access"),
        (svc, "_ref", "ref"),
    ]
    saved = [(obj, attr, getattr(obj, attr)) for obj, attr, _ in patches]
    for obj, attr, name in patches:
        setattr(obj, attr, timed(name, getattr(obj, attr)))
    gc.callbacks.append(on_gc)
    rows: list[dict[str, float]] = []
    try:
        for ask in asks:
            acc.clear()
            t0 = perf()
            svc.exists(who, "01", ask.id_no, check=ask.check, lab=ask.lab, days=DAYS)
            total = perf() - t0
            steps = {k: acc.get(k, 0.0) * 1000 for k in ("reads", "reminder", "access", "ref", "gc")}
            steps["rest"] = total * 1000 - sum(v for k, v in steps.items() if k != "gc")
            steps["total"] = total * 1000
            rows.append(steps)
    finally:
        gc.callbacks.remove(on_gc)
        for obj, attr, fn in saved:
            if obj is rstore:
                setattr(obj, attr, fn)
            else:
                delattr(obj, attr)  # drop the instance attribute, back to the class's method
    labels = {
        "reads": "2 x store.prior_items (read conn, SQLAlchemy)",
        "reminder": "reminder_log write transaction (_log)",
        "access": "access_log write transaction (audit.record)",
        "ref": "catalog / institution cache (_ref)",
        "rest": "rest (checks, rule, shaping the answer)",
        "total": "whole exists()",
        "gc": "  of which GC pauses (anywhere above)",
    }
    tail = sorted(rows, key=lambda r: r["total"])[-max(1, len(rows) // 100) :]
    mean_total = statistics.fmean(r["total"] for r in rows)
    print(f"\nwhere the time of exists() goes ({len(rows)} calls, steps timed inside the calls):")
    print(f"  {'step':<48} {'p50':>6} {'p99':>7} {'mean':>6} {'share':>6}  {'mean in slowest 1%':>18}")
    for key, label in labels.items():
        vals = [r[key] for r in rows]
        print(f"  {label:<48} {pct(vals, 50):6.3f} {pct(vals, 99):7.3f} {statistics.fmean(vals):6.3f} "
              f"{statistics.fmean(vals) / mean_total:6.1%}  {statistics.fmean(r[key] for r in tail):18.3f}")
    print("  the 5 slowest calls (ms): " + "; ".join(
        f"{r['total']:.1f} = reads {r['reads']:.1f} + reminder {r['reminder']:.1f} + access {r['access']:.1f}"
        f" + rest {r['rest'] + r['ref']:.1f} (gc {r['gc']:.1f})"
        for r in sorted(rows, key=lambda r: -r["total"])[:5]
    ))
    ref = Reference(c)
    try:
        now = c.clock.now()
        alone = []
        for ask in asks:
            t0 = perf()
            ref.run(ask, now)
            alone.append((perf() - t0) * 1000)
    finally:
        ref.close()
    print(f"  reference SQL alone, no writes in between      : {fmt(summary(alone))}")


# -- HTTP -------------------------------------------------------------------------------------


EXISTS_PATH = "/api/v1/recognition/exists"
FLOOR_PATH = "/healthz"  # no auth, no body, no database: what the HTTP stack and the load generator cost alone


def _client(port: int, token: str, bodies: list[bytes | None], out: list[float], errors: list[int]) -> None:
    """One keep-alive client: POSTs each body to exists-for-order (None: GET the no-op /healthz)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    perf = time.perf_counter
    for b in bodies:
        t0 = perf()
        if b is None:
            conn.request("GET", FLOOR_PATH)
        else:
            conn.request("POST", EXISTS_PATH, body=b, headers=headers)
        resp = conn.getresponse()
        resp.read()
        out.append((perf() - t0) * 1000)
        if resp.status != 200:
            errors.append(resp.status)
    conn.close()


def _proc(port: int, token: str, shards: list[list[bytes | None]], q: Any) -> None:
    errors: list[int] = []
    lat: list[list[float]] = [[] for _ in shards]
    threads = [threading.Thread(target=_client, args=(port, token, s, lat[i], errors)) for i, s in enumerate(shards)]
    cpu0 = time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    q.put(([x for part in lat for x in part], errors, time.process_time() - cpu0))


def _closed_loop(port: int, token: str, server_pid: int, bodies: list[bytes | None], clients: int) -> dict[str, Any]:
    """``clients`` keep-alive clients (2 processes x threads), each sending its next request when
    its answer arrives; latencies, throughput and CPU per request of the server and the clients."""
    shards = [bodies[i::clients] for i in range(clients)]
    procs_n = 2 if clients > 1 else 1
    q: Any = mp.Queue()
    server_cpu0, db_cpu0 = cpu_seconds(server_pid), postgres_cpu_seconds()
    t0 = time.perf_counter()
    procs = [mp.Process(target=_proc, args=(port, token, shards[i::procs_n], q)) for i in range(procs_n)]
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    wall = time.perf_counter() - t0
    server_cpu = cpu_seconds(server_pid) - server_cpu0
    db_cpu = postgres_cpu_seconds() - db_cpu0  # a local PostgreSQL (all its processes; ~0 on SQLite)
    lat = [x for r in results for x in r[0]]
    errors = [e for r in results for e in r[1]]
    if errors:
        raise RuntimeError(f"{len(errors)} HTTP errors, e.g. {errors[:5]}")
    client_cpu = sum(r[2] for r in results)
    return {
        "ms": lat, "rps": len(lat) / wall, "n": len(lat),
        "server_cpu_ms": server_cpu / len(lat) * 1000, "client_cpu_ms": client_cpu / len(lat) * 1000,
        "db_cpu_ms": db_cpu / len(lat) * 1000,
    }


def _merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Closed-loop runs as one: latencies pooled, throughput = requests / summed wall time."""
    n = sum(r["n"] for r in runs)
    wall = sum(r["n"] / r["rps"] for r in runs)
    return {
        "ms": [x for r in runs for x in r["ms"]], "rps": n / wall, "n": n,
        "server_cpu_ms": sum(r["server_cpu_ms"] * r["n"] for r in runs) / n,
        "client_cpu_ms": sum(r["client_cpu_ms"] * r["n"] for r in runs) / n,
        "db_cpu_ms": sum(r["db_cpu_ms"] * r["n"] for r in runs) / n,
    }


def bench_http(
    c: Container, data_dir: Path, url: str | None, asks: list[Ask], clients: int, org_code: str, workers: int,
    rounds: int = 3,
) -> dict[str, Any]:
    """exists-for-order and the no-op floor on the same server, alternated: ``rounds`` rounds of
    a share of the asks on exists and as many requests on ``GET /healthz`` (which one goes first
    alternates), pooled per endpoint."""
    with contextlib.suppress(Conflict):  # already there on a --reuse run
        c.directory.add_credential(org_code, USER, PASSWORD)
    token = c.auth.issue(org_code, USER, PASSWORD).access_token
    port = free_port()
    server = start_server(data_dir, port, workers=workers, env_extra={"HUREN_DATABASE_URL": url} if url else None)
    try:
        bodies: list[bytes | None] = [a.body() for a in asks]
        _client(port, token, bodies[:50], [], [])  # warm up (connections, caches)
        bodies = bodies[50:]
        single: list[float] = []
        _client(port, token, bodies[: min(500, len(bodies) // 4)], single, [])  # one client: no queueing
        per = max(clients, len(bodies) // max(1, rounds))
        ex_runs: list[dict[str, Any]] = []
        fl_runs: list[dict[str, Any]] = []
        for r in range(max(1, rounds)):
            chunk = bodies[r * per : (r + 1) * per] or bodies[:per]
            pair: list[tuple[str, list[bytes | None]]] = [("exists", chunk), ("floor", [None] * len(chunk))]
            for name, b in pair if r % 2 == 0 else pair[::-1]:
                (ex_runs if name == "exists" else fl_runs).append(_closed_loop(port, token, server.pid, b, clients))
    finally:
        server.terminate()
        server.wait(10)
    return _merge(ex_runs) | {"single_ms": single, "floor": _merge(fl_runs), "rounds": len(ex_runs)}


# -- main -------------------------------------------------------------------------------------


def mark(ok: bool) -> str:
    return "ok  " if ok else "MISS"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lab-reports", type=int, default=1_000_000)
    ap.add_argument("--exam-reports", type=int, default=200_000)
    ap.add_argument("--patients", type=int, default=500_000)
    ap.add_argument("--queries", type=int, default=2000, help="service / reference asks (after --warmup)")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--http-queries", type=int, default=4000)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--workers", type=int, default=1, help="huren serve --workers")
    ap.add_argument("--http-rounds", type=int, default=3, help="exists / floor rounds, alternated (each a share of --http-queries)")
    ap.add_argument("--data-dir", type=Path, default=None, help="default: a temporary directory (removed unless --keep)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    ap.add_argument("--reuse", action="store_true", help="skip the fill when the data dir already holds a filled store")
    ap.add_argument("--database-url", default=None,
                    help="default: SQLite under the data dir; a PostgreSQL database given here is emptied and filled")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="also time the steps inside N service calls (where the time goes) and cProfile them")
    ap.add_argument("--no-http", action="store_true")
    ap.add_argument("--identity-seal", action="store_true",
                    help="after the fill, seal the service's log rows with an identity instead of SM4-GCM "
                         "(what sealing costs exists-for-order: compare with a run without it; service layer only)")
    ap.add_argument("--seed", type=int, default=20241122)
    ap.add_argument("--fill-writers", type=int, default=2, help="PostgreSQL: connections COPYing the fill in parallel")
    ap.add_argument("--span-days", type=int, default=SPAN_DAYS,
                    help="reports authenticated over this many days before now (PostgreSQL: a partition per month)")
    args = ap.parse_args()

    temp = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="huren-recognition-")) if temp else args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    db = "postgresql" if args.database_url and args.database_url.startswith("postgres") else "sqlite"
    try:
        c, info = prepare(args, data_dir)
        if args.identity_seal:  # this process only: the HTTP server (another process) still seals
            from huren.crypto import aead

            aead.FieldCipher.seal_text = lambda self, value, table, column, context="": aead.TEXT_PREFIX + value  # type: ignore[method-assign]
        size = db_size(data_dir, args.database_url, c)
        print(f"store: {db}, {size / 2**30:.2f} GiB on disk ({data_dir if db == 'sqlite' else args.database_url})")
        rng = random.Random(args.seed + 1)
        t0 = time.perf_counter()
        asks, recent_share = make_asks(c, args.warmup + args.queries, rng)
        http_asks, _ = make_asks(c, 50 + args.http_queries, rng) if not args.no_http else ([], 0.0)
        print(f"{len(asks) + len(http_asks):,} asks drawn in {time.perf_counter() - t0:.1f} s "
              f"({recent_share:.0%} of the patients found through a result of the last 10 days)")
        caller = next(o for o in make_orgs() if o.level == 3)
        who = Principal(caller.code, USER)

        r = bench_service(c, asks, args.warmup, who)
        svc, raw, logged = summary(r["service"]), summary(r["raw"]), summary(r["logged"])
        ratio = svc["p99"] / raw["p99"]
        ref_ratio = svc["p99"] / logged["p99"]
        nonempty = sum(1 for f in r["found"] if f) / max(1, len(r["found"]))
        print(f"\nexists-for-order, 5 ordered items, {args.queries} asks (+{args.warmup} warm-up), "
              f"answers non-empty {nonempty:.0%}, mean {statistics.fmean(r['found']):.1f} recognizable items")
        print(f"  service layer  : {fmt(svc)}   [{mark(svc['p99'] <= TARGET_SERVICE_P99)} target p99 <= {TARGET_SERVICE_P99:.0f} ms]")
        print(f"  raw SQL (1 stmt): {fmt(raw)}")
        print(f"  service / raw p99 ratio : {ratio:5.2f}   [{mark(ratio <= TARGET_RATIO)} target <= {TARGET_RATIO:.0f}x]"
              f"   (p50 ratio {svc['p50'] / raw['p50']:.2f})")
        print(f"  raw SQL + the 2 log inserts, 1 transaction: {fmt(logged)}")
        print(f"  service / logged reference p99 ratio : {ref_ratio:5.2f}   [{mark(ref_ratio <= TARGET_RATIO)} target <= {TARGET_RATIO:.0f}x]"
              f"   (p50 ratio {svc['p50'] / logged['p50']:.2f})")
        print(f"  reference plan:\n{r['plan']}")
        mism = r["mismatches"]
        if mism:
            print(f"\n!!! {len(mism)} MISMATCHES between the service and the reference SQL", file=sys.stderr)
            for ask, got, want in mism[:5]:
                print(f"  {ask}\n    service  : {got}\n    reference: {want}", file=sys.stderr)
        else:
            print(f"  answers: service == reference for all {len(asks)} asks")

        if args.profile:
            profile_service(c, asks[: args.profile], who, 30)

        http: dict[str, Any] = {"ms": [float("nan")], "rps": float("nan"), "n": 0}
        if not args.no_http:
            http = bench_http(c, data_dir, args.database_url, http_asks, args.clients, caller.code, args.workers, args.http_rounds)
            hs = summary(http["ms"])
            print(f"\nHTTP POST /api/v1/recognition/exists, {args.clients} keep-alive clients, "
                  f"{args.workers} worker(s), {http['n']} requests")
            print(f"  {fmt(hs)}   {http['rps']:7.0f} req/s   [{mark(hs['p99'] <= TARGET_HTTP_P99)} target p99 <= {TARGET_HTTP_P99:.0f} ms]")
            print(f"  one client alone ({len(http['single_ms'])} requests): {fmt(summary(http['single_ms']))}")
            print(f"  (closed loop: mean latency = clients / throughput = {args.clients} / {http['rps']:.0f} req/s "
                  f"= {args.clients / http['rps'] * 1000:.1f} ms)")
            cpu_per = http["server_cpu_ms"] + http["client_cpu_ms"]
            print(f"  CPU per request: server {http['server_cpu_ms']:.2f} ms + load generator {http['client_cpu_ms']:.2f} ms"
                  f" (+ PostgreSQL, every process on this machine: {http['db_cpu_ms']:.2f} ms)"
                  f" = {cpu_per:.2f} ms -> {os.cpu_count()} cores cap at ~{(os.cpu_count() or 1) * 1000 / cpu_per:.0f} req/s")
            fl = http["floor"]
            print(f"  floor: the same clients on GET {FLOOR_PATH} (no auth, no body, no database): {fmt(summary(fl['ms']))}"
                  f"   {fl['rps']:7.0f} req/s, server CPU {fl['server_cpu_ms']:.2f} ms/req  ({http['rounds']} rounds alternated)")
            p99r, rpsr = hs["p99"] / summary(fl["ms"])["p99"], http["rps"] / fl["rps"]
            print(f"  exists / floor: p99 x{p99r:.2f} [{mark(p99r <= TARGET_HTTP_P99_RATIO)} target <= {TARGET_HTTP_P99_RATIO:.0f}], "
                  f"throughput {rpsr:.0%} [{mark(rpsr >= TARGET_HTTP_RPS_RATIO)} target >= {TARGET_HTTP_RPS_RATIO:.0%}]")
        hs = summary(http["ms"])
        h1 = summary(http.get("single_ms") or [float("nan")])
        floor = http.get("floor") or {"ms": [float("nan")], "rps": float("nan"), "server_cpu_ms": float("nan")}
        fls, fl_rps, fl_cpu = summary(floor["ms"]), floor["rps"], floor["server_cpu_ms"]
        c.close()
    finally:
        if temp and not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
        elif temp:
            print(f"data kept in {data_dir} (rerun with --data-dir {data_dir} --reuse)")

    def r3(x: float) -> float | None:
        return None if x != x else round(x, 3)

    print(json.dumps({
        "bench": "recognition", "db": db, "lab_reports": info["lab_reports"], "exam_reports": info["exam_reports"],
        "patients": info["patients"], "fill_seconds": round(info.get("seconds", 0.0), 1), "reused": info["reused"],
        "db_bytes": size, "queries": args.queries, "identity_seal": args.identity_seal,
        "service_p50_ms": r3(svc["p50"]), "service_p90_ms": r3(svc["p90"]), "service_p99_ms": r3(svc["p99"]),
        "service_max_ms": r3(svc["max"]),
        "raw_p50_ms": r3(raw["p50"]), "raw_p90_ms": r3(raw["p90"]), "raw_p99_ms": r3(raw["p99"]), "raw_max_ms": r3(raw["max"]),
        "ratio_p99": r3(ratio), "nonempty_share": r3(nonempty),
        "service_ref_p50_ms": r3(logged["p50"]), "service_ref_p99_ms": r3(logged["p99"]), "service_ref_ratio": r3(ref_ratio),
        "http_clients": args.clients, "http_workers": args.workers,
        "http_p50_ms": r3(hs["p50"]), "http_p99_ms": r3(hs["p99"]), "http_rps": r3(http["rps"]),
        "http_single_p50_ms": r3(h1["p50"]), "http_single_p99_ms": r3(h1["p99"]),
        "http_server_cpu_ms_per_req": r3(http.get("server_cpu_ms", float("nan"))),
        "http_client_cpu_ms_per_req": r3(http.get("client_cpu_ms", float("nan"))),
        "http_db_cpu_ms_per_req": r3(http.get("db_cpu_ms", float("nan"))),
        "floor_p50_ms": r3(fls["p50"]), "floor_p99_ms": r3(fls["p99"]), "floor_rps": r3(fl_rps),
        "floor_server_cpu_ms_per_req": r3(fl_cpu),
        "http_p99_ratio": r3(hs["p99"] / fls["p99"]), "http_rps_ratio": r3(http["rps"] / fl_rps),
        "http_rounds": http.get("rounds", 0),
        "mismatches": len(mism),
    }))
    if mism:
        sys.exit(1)


if __name__ == "__main__":
    main()
