"""Fast bulk fill of the report tables for the recognition benchmark.

Not the ingest path (that is ``bench/ingest.py``'s job): the catalog and the institutions go
through the normal store / services, then lab and exam reports are written straight into
``lab_report`` / ``lab_item`` / ``exam_report`` / ``exam_item`` over the DBAPI connection
(``engine.raw_connection()``) with explicit ids, in transactions of a few ten thousand rows:
``executemany`` on SQLite, ``COPY ... FROM STDIN`` on PostgreSQL from a few writer threads, each on its own connection
(then the id sequences are set).

Values are plausible and complete (every NOT NULL column): each report is cut from one of a few
hundred payloads made by the demo generator (``huren.demo.generator``) and validated, then given
its own id, institution, patient, times and form number. Lab reports carry exactly
``LAB_ITEMS`` sub-items (the demo panels combined), mostly standard catalog codes with
recognition 1, some with 0, and some local codes; exam reports carry the demo templates' items
(catalog exam codes). Times lie in the last ``SPAN_DAYS`` days of the app clock.

On SQLite, SQLAlchemy stores DateTime as ``'YYYY-MM-DD HH:MM:SS.ffffff'``, Date as
``'YYYY-MM-DD'`` and booleans as 0/1, so those exact texts are written here; PostgreSQL gets
``datetime`` / ``date`` / ``bool`` objects.
"""

from __future__ import annotations

import queue
import random
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import DateTime, Table, text

from huren.demo.generator import demo_orgs, load_catalog, make_exam_report, make_lab_report, make_patients
from huren.domain import idcard
from huren.domain.validation import validate_report
from huren.services.container import Container
from huren.store import catalog as catalog_store
from huren.store import partitions, sealing
from huren.store.tables import exam_item, exam_report, lab_item, lab_report

LAB_ITEMS = 15
SPAN_DAYS = 120
#: Catalog codes given a region scope (an already normalised division prefix).
SCOPED: dict[tuple[str, str], str] = {("lab", "250307002"): "6501", ("exam", "220301001"): "6501"}
#: Catalog codes marked not recognizable (blood typing is always repeated before a transfusion).
NOT_RECOGNIZABLE = {("lab", "260000001"), ("lab", "260000004")}
P_FLAG_ZERO = 0.03  # share of catalog-coded items sent with recognition 0
P_VOIDED = 0.005

_URUMQI = ("650102", "650103", "650104", "650105", "650106", "650107", "650109", "650121")
_XJ = ("652301", "650202", "652801", "654002", "650502", "653101", "652901", "654201")
_DISTRICT = {
    "650102": "天山区", "650103": "沙依巴克区", "650104": "新市区", "650105": "水磨沟区", "650106": "头屯河区",
    "650107": "达坂城区", "650109": "米东区", "650121": "乌鲁木齐县", "652301": "昌吉市", "650202": "独山子区",
    "652801": "库尔勒市", "654002": "伊宁市", "650502": "伊州区", "653101": "喀什市", "652901": "阿克苏市",
    "654201": "塔城市",
}
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红娥玲芬燕彬鹏辉斌宇浩凯健俊帆帅旭宁龙林阳建志国文博新海峰雪婷倩颖慧莉洁欣怡佳琪月晶蕾薇丹璐瑶兰"


@dataclass(frozen=True, slots=True)
class BenchOrg:
    code: str
    name: str
    region_code: str
    level: int
    grade: str


def _gb11714(body8: str) -> str:
    weights = (3, 7, 9, 10, 5, 8, 4, 2)
    check = 11 - sum(int(c) * w for c, w in zip(body8, weights, strict=True)) % 11
    return body8 + ("0" if check == 11 else "X" if check == 10 else str(check))


def make_orgs(n: int = 50, seed: int = 11) -> list[BenchOrg]:
    """``n`` institutions under 65xxxx: a fifth level 3, two fifths level 2, the rest level 1;
    about 60 % in Urumqi (6501xx), the rest elsewhere in Xinjiang."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        level = 3 if k % 5 == 0 else 2 if k % 5 in (1, 2) else 1
        region = rng.choice(_URUMQI) if rng.random() < 0.6 else rng.choice(_XJ)
        grade = "甲" if level == 3 else rng.choice("甲乙") if level == 2 else ""
        kind = {3: "人民医院", 2: "医院", 1: "社区卫生服务中心"}[level]
        name = f"{_DISTRICT[region]}第{k + 1}{kind}"
        out.append(BenchOrg(_gb11714(f"7{k:07d}"), name, region, level, grade))
    return out


def catalog_rows() -> list[dict[str, Any]]:
    """All rows of the packaged demo catalog, min level 2, a couple scoped / not recognizable."""
    return [
        {
            "kind": it.kind,
            "code": it.code,
            "name": it.name,
            "unit": it.unit[:64],
            "recognizable": (it.kind, it.code) not in NOT_RECOGNIZABLE,
            "validity_days": it.validity_days,
            "min_level": 2,
            "region_scope": SCOPED.get((it.kind, it.code), ""),
            "source_note": "bench/recognition.py",
        }
        for it in load_catalog().values()
    ]


# -- patients ---------------------------------------------------------------------------------

_BIRTH0 = date(1940, 1, 1)
_BIRTH_DAYS = 29_219  # births 1940-01-01 .. 2019-12-31
_P = 1_000_003  # a prime: i -> i * _P mod M is a permutation, so identities are distinct


@dataclass(slots=True)
class Patients:
    """Patient ``p`` (0 <= p < n): a valid GB 11643 number, a name, sex and birth date."""

    id_no: list[str] = field(default_factory=list)
    name: list[str] = field(default_factory=list)
    male: list[bool] = field(default_factory=list)
    birth: list[date] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.id_no)


def patient_identity(p: int) -> tuple[str, date, bool]:
    """Patient number ``p`` → (id_no, birth date, male), distinct for every p < 16 * 29219 * 1000."""
    regions = _URUMQI + _XJ
    m = len(regions) * _BIRTH_DAYS * 1000
    j = (p * _P + 7) % m
    region = regions[j % len(regions)]
    j //= len(regions)
    born = _BIRTH0 + timedelta(days=j % _BIRTH_DAYS)
    seq = j // _BIRTH_DAYS
    return idcard.make(region, born, seq), born, seq % 2 == 1  # GB 11643: odd 17th digit = male


def make_bench_patients(n: int) -> Patients:
    out = Patients()
    ns, ng = len(_SURNAMES), len(_GIVEN)
    for p in range(n):
        id_no, born, male = patient_identity(p)
        out.id_no.append(id_no)
        out.birth.append(born)
        out.male.append(male)
        g = (p * 7919) % (ng * ng)
        out.name.append(_SURNAMES[p % ns] + _GIVEN[g % ng] + ("" if p % 3 == 0 else _GIVEN[g // ng]))
    return out


# -- templates --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Template:
    base: list[Any]  # a master row in table column order (values already in DB form)
    offsets: list[tuple[int, timedelta]]  # DateTime columns: index, offset from authenticator_dtime
    items: list[tuple[Any, ...]]  # the static part of each item row (ITEM_STATIC order)
    title: str


#: received_at: the report's, which the items carry (migration 0011: their partition key on PostgreSQL)
LAB_ITEM_HEAD = ("report_id", "last_update_dtime", "org_code", "event_no", "report_form_no", "effective_dtime", "received_at")
EXAM_ITEM_HEAD = LAB_ITEM_HEAD


def _item_static(table: Table) -> tuple[str, ...]:
    return tuple(c.name for c in table.columns if c.name not in LAB_ITEM_HEAD)


class _Form:
    """DB forms of values: text on SQLite (SQLAlchemy's storage formats), objects on PostgreSQL."""

    def __init__(self, sqlite: bool) -> None:
        self.sqlite = sqlite

    def dt(self, v: datetime | None) -> Any:
        if v is None or not self.sqlite:
            return v
        return v.isoformat(" ", "microseconds")

    def day(self, v: date | None) -> Any:
        return v.isoformat() if (v is not None and self.sqlite) else v

    def flag(self, v: bool) -> Any:
        return int(v) if self.sqlite else v

    def value(self, v: Any) -> Any:
        if isinstance(v, bool):
            return self.flag(v)
        if isinstance(v, datetime):
            return self.dt(v)
        if isinstance(v, date):
            return self.day(v)
        return v


def _meta_defaults() -> dict[str, Any]:
    return {"pdf_sha256": None, "pdf_size": None, "version": 1, "voided": False, "voided_at": None, "voided_by": None}


def _template(table: Table, master: dict[str, Any], items: list[dict[str, Any]], static: tuple[str, ...], form: _Form, title: str) -> _Template:
    auth: datetime = master["authenticator_dtime"]
    row = master | _meta_defaults() | {"received_at": master["last_update_dtime"], "updated_at": master["last_update_dtime"]}
    base: list[Any] = []
    offsets: list[tuple[int, timedelta]] = []
    for k, col in enumerate(table.columns):
        v = row.get(col.name)
        if isinstance(col.type, DateTime) and isinstance(v, datetime) and col.name != "voided_at":
            offsets.append((k, v - auth))
        base.append(form.value(v))
    return _Template(base, offsets, [tuple(form.value(i.get(c)) for c in static) for i in items], title)


def lab_templates(form: _Form, n: int = 300, seed: int = 3) -> list[_Template]:
    """``n`` lab reports of exactly LAB_ITEMS sub-items, each the demo panels of one or more
    demo reports combined (e.g. 血常规 + 肝功能), serial numbers 1..LAB_ITEMS."""
    rng = random.Random(seed)
    orgs = [o for o in demo_orgs() if o.level >= 2]
    people = make_patients(rng, 100)
    when = datetime(2026, 1, 15, 10, 0, 0)
    pool = []
    for k in range(4 * n):
        p = make_lab_report(rng, orgs[k % len(orgs)], people[k % len(people)], when, with_pdf=False)
        r, problems = validate_report("lab", p, max_pdf_bytes=1)
        assert r is not None, problems
        pool.append((r.master, r.items))
    static = _item_static(lab_item)
    cat = load_catalog()
    out = []
    for _ in range(n):
        master, items = rng.choice(pool)
        titles = [master["report_title"]]
        items = list(items)
        while len(items) < LAB_ITEMS:
            m2, more = rng.choice(pool)
            if m2["report_title"] in titles:
                continue
            titles.append(m2["report_title"])
            items += more
        rows = []
        for serial, it in enumerate(items[:LAB_ITEMS], start=1):
            flag = it["recognition"]
            if it["class_code"] in cat and rng.random() < P_FLAG_ZERO:
                flag = 0
            rows.append(it | {"serial_no": serial, "recognition": flag})
        title = "+".join(titles)
        out.append(_template(lab_report, master | {"report_title": title[:256]}, rows, static, form, title))
    return out


def exam_templates(form: _Form, n: int = 300, seed: int = 5) -> list[_Template]:
    rng = random.Random(seed)
    orgs = [o for o in demo_orgs() if o.level >= 2]
    people = make_patients(rng, 100)
    when = datetime(2026, 1, 15, 10, 0, 0)
    static = _item_static(exam_item)
    out = []
    for k in range(n):
        p = make_exam_report(rng, orgs[k % len(orgs)], people[k % len(people)], when, with_pdf=False)
        r, problems = validate_report("exam", p, max_pdf_bytes=1)
        assert r is not None, problems
        items = [
            it | {"recognition": 0 if (it["recognition"] == 1 and rng.random() < P_FLAG_ZERO) else it["recognition"]}
            for it in r.items
        ]
        out.append(_template(exam_report, r.master, items, static, form, r.master["report_title"]))
    return out


# -- progress ---------------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on stderr (``\\r``-redrawn on a terminal, a line per 10 % otherwise)."""

    def __init__(self, label: str, total: int, unit: str = "reports") -> None:
        self.label, self.total, self.unit = label, max(total, 1), unit
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.tty = sys.stderr.isatty()
        self.next_pct = 10
        self.printed = -1

    def update(self, done: int, rows: int, final: bool = False) -> None:
        now = time.perf_counter()
        pct = 100 * done / self.total
        if final and not self.tty and self.printed == done:
            return
        if not final and (now - self.last < 0.25 if self.tty else pct < self.next_pct):
            return
        self.printed = done
        self.last = now
        while self.next_pct <= pct:
            self.next_pct += 10
        el = max(now - self.t0, 1e-9)
        eta = (self.total - done) * el / max(done, 1)
        bar = "#" * int(pct / 5) + "-" * (20 - int(pct / 5))
        line = (
            f"  {self.label:<5} [{bar}] {pct:5.1f}%  {done:>10,}/{self.total:,} {self.unit}  "
            f"{rows / el:>9,.0f} rows/s  {el:6.0f}s elapsed  ETA {eta:5.0f}s"
        )
        sys.stderr.write(("\r" + line) if self.tty else (line + "\n"))
        if final and self.tty:
            sys.stderr.write("\n")
        sys.stderr.flush()


# -- the fill ---------------------------------------------------------------------------------


class _Writer:
    """Batched writes over the raw DBAPI connection: executemany (SQLite) / COPY (PostgreSQL)."""

    def __init__(self, c: Container) -> None:
        self.sqlite = c.db.is_sqlite
        self.raw = c.db.engine.raw_connection()
        self.dbapi: Any = cast(Any, self.raw.driver_connection)
        if self.sqlite:
            cur = self.dbapi.cursor()
            self._saved = {
                k: cur.execute(f"PRAGMA {k}").fetchone()[0] for k in ("synchronous", "cache_size", "foreign_keys")
            }
            self.dbapi.commit()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=OFF")
            cur.execute("PRAGMA cache_size=-1000000")  # 1 GB of pages while the indexes grow
            cur.execute("PRAGMA foreign_keys=OFF")  # items reference reports written in the same batch
            cur.close()

    def write(self, table: Table, cols: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        names = ", ".join(cols)
        cur = self.dbapi.cursor()
        if self.sqlite:
            cur.executemany(f"INSERT INTO {table.name} ({names}) VALUES ({', '.join('?' * len(cols))})", rows)
        else:
            with cur.copy(f"COPY {table.name} ({names}) FROM STDIN") as cp:
                for r in rows:
                    cp.write_row(r)
        cur.close()

    def commit(self) -> None:
        self.dbapi.commit()

    def finish(self) -> None:
        cur = self.dbapi.cursor()
        if self.sqlite:
            self.dbapi.commit()
            for k, v in self._saved.items():
                cur.execute(f"PRAGMA {k}={v}")
            cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            for t in ("lab_report", "exam_report"):
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), (SELECT max(id) FROM {t}))")
            self.dbapi.commit()
        cur.close()
        self.raw.close()


class _Parallel:
    """PostgreSQL: ``n`` writer threads, each on its own connection, COPYing and committing the
    batches the generating thread hands over (a bounded queue): the server's side of COPY (heap,
    index and WAL writes, most of the fill's time) runs in ``n`` backends while the next batch is
    generated. The rows are the serial fill's (one generator, one random sequence)."""

    def __init__(self, c: Container, n: int) -> None:
        self.writers = [_Writer(c) for _ in range(n)]
        for w in self.writers:  # a bench fill: a crash loses the last batches at worst, re-run it
            cur = w.dbapi.cursor()
            cur.execute("SET synchronous_commit TO OFF")
            cur.close()
        self.q: queue.Queue[tuple[tuple[Table, list[str], list[tuple[Any, ...]]], ...] | None] = queue.Queue(maxsize=n)
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, args=(w,), daemon=True) for w in self.writers]
        for t in self.threads:
            t.start()

    def _run(self, w: _Writer) -> None:
        while (job := self.q.get()) is not None:
            if self.errors:
                continue
            try:
                for table, cols, rows in job:
                    w.write(table, cols, rows)
                w.commit()
            except BaseException as e:  # handed to the generating thread
                self.errors.append(e)

    def submit(self, *parts: tuple[Table, list[str], list[tuple[Any, ...]]]) -> None:
        if self.errors:
            raise self.errors[0]
        self.q.put(parts)

    def finish(self) -> None:
        for _ in self.threads:
            self.q.put(None)
        for t in self.threads:
            t.join()
        for w in self.writers[1:]:
            w.raw.close()
        self.writers[0].finish()  # the id sequences
        if self.errors:
            raise self.errors[0]


def _batches(total: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, total, size):
        yield start, min(total, start + size)


def fill(
    c: Container, *, lab_reports: int, exam_reports: int, patients: int, seed: int = 20241122, span_days: int = SPAN_DAYS,
    writers: int = 2,
) -> dict[str, Any]:
    """Catalog, ~50 institutions and the reports, authenticated over the last ``span_days`` days
    (on PostgreSQL one partition per month of it, and ``writers`` connections COPYing in
    parallel); returns counts and seconds."""
    t0 = time.perf_counter()
    now = c.clock.now()
    with c.db.write() as conn:
        catalog_store.upsert_items(conn, catalog_rows(), now=now)
        if partitions.is_partitioned(conn):  # PostgreSQL: a partition per month of the span, as on a platform that ran that long
            first = partitions.month_of(now - timedelta(days=span_days))
            partitions.ensure(conn, [partitions.add_months(first, n) for n in range(span_days // 28 + 3)])
    orgs = make_orgs()
    for o in orgs:
        c.directory.add_org(o.code, o.name, o.region_code, f"{o.level}{o.grade}")
    c.recognition.invalidate()

    form = _Form(c.db.is_sqlite)
    sys.stderr.write(f"  generating {patients:,} patients and report templates ...\n")
    people = make_bench_patients(patients)
    labs, exams = lab_templates(form), exam_templates(form)
    setup = time.perf_counter() - t0

    rng = random.Random(seed)
    weights = [{3: 6, 2: 3, 1: 1}[o.level] for o in orgs]
    span = span_days * 86400
    par = _Parallel(c, writers) if writers > 1 and not c.db.is_sqlite else None
    w = par.writers[0] if par is not None else _Writer(c)
    fields = c.keys.fields()
    rows_total = 0
    try:
        for kind, total, templates, master_t, item_t, batch in (
            ("lab", lab_reports, labs, lab_report, lab_item, 2000),
            ("exam", exam_reports, exams, exam_report, exam_item, 10000),
        ):
            cols = [col.name for col in master_t.columns]
            ix = {name: k for k, name in enumerate(cols)}
            item_cols = list(LAB_ITEM_HEAD) + list(_item_static(item_t))
            prog = Progress(kind, total)
            pending = 0
            rows_kind = 0
            for start, end in _batches(total, batch):
                n = end - start
                picked = rng.choices(range(len(orgs)), weights=weights, k=n)
                masters: list[tuple[Any, ...]] = []
                items: list[tuple[Any, ...]] = []
                for k in range(n):
                    rid = start + k + 1
                    org_i = picked[k]
                    o = orgs[org_i]
                    p = rng.randrange(patients)
                    t = templates[rng.randrange(len(templates))]
                    auth = now - timedelta(seconds=rng.randrange(900, span))
                    row = t.base.copy()
                    if "platform" in ix:  # the platform tree (issue 13): "" in a deployment without one
                        row[ix["platform"]] = ""
                    for col_i, off in t.offsets:
                        row[col_i] = form.dt(auth + off)
                    form_no = f"{'L' if kind == 'lab' else 'E'}{rid:010d}"
                    event_no = f"{auth:%Y%m%d}{rid % 100000:05d}"
                    male = people.male[p]
                    row[ix["id"]] = rid
                    row[ix["org_code"]] = o.code
                    row[ix["report_form_no"]] = form_no
                    row[ix["patient_id"]] = f"{org_i:02d}{p:08d}"
                    row[ix["event_no"]] = event_no
                    row[ix["id_type_code"]] = "01"
                    # the identity sealed as the store seals it (huren.store.sealing): the benchmark reads what production stores
                    who = {"org_code": o.code, "id_no": people.id_no[p], "name": people.name[p], "card_no": None if p % 3 == 0 else f"K{p:09d}"}
                    for col, value in sealing.seal_row(fields, master_t.name, who).items():
                        row[ix[col]] = value
                    row[ix["sex_code"]] = "1" if male else "2"
                    row[ix["sex_name"]] = "男性" if male else "女性"
                    row[ix["retrieve_date"]] = form.day(auth.date())
                    if kind == "exam":
                        uid = f"1.2.156.112605.{rid}.{int(auth.timestamp())}"
                        row[ix["birth_date"]] = form.day(people.birth[p])
                        row[ix["patient_local_id"]] = row[ix["patient_id"]]
                        row[ix["pacs_id"]] = f"{rid:010d}"
                        row[ix["study_instance_uid"]] = uid
                        row[ix["pacs_url"]] = f"https://pacs.example.invalid/viewer?study={uid}"
                    updated = row[ix["last_update_dtime"]]
                    if rng.random() < P_VOIDED:
                        row[ix["voided"]] = form.flag(True)
                        row[ix["voided_at"]] = updated
                        row[ix["voided_by"]] = f"{o.code}/his"
                    masters.append(tuple(row))
                    head = (rid, updated, o.code, event_no, form_no, row[ix["authenticator_dtime"]], row[ix["received_at"]])
                    items.extend([head + s for s in t.items])
                if par is not None:
                    par.submit((master_t, cols, masters), (item_t, item_cols, items))
                else:
                    w.write(master_t, cols, masters)
                    w.write(item_t, item_cols, items)
                    pending += len(masters) + len(items)
                    if pending >= 20_000 or end == total:
                        w.commit()
                        pending = 0
                rows_total += len(masters) + len(items)
                rows_kind += len(masters) + len(items)
                prog.update(end, rows_kind)
            prog.update(total, rows_kind, final=True)
        if par is None:
            w.commit()
    finally:
        if par is not None:
            par.finish()
        else:
            w.finish()
    sys.stderr.write("  ANALYZE ...\n")
    with c.db.write() as conn:
        conn.execute(text("ANALYZE"))
    c.recognition.invalidate()
    return {
        "seconds": time.perf_counter() - t0,
        "setup_seconds": setup,
        "rows": rows_total,
        "lab_reports": lab_reports,
        "exam_reports": exam_reports,
        "patients": patients,
        "orgs": len(orgs),
    }


def reset(c: Container) -> None:
    """Empty the tables the benchmark fills (a shared PostgreSQL database; SQLite files are removed instead)."""
    names = (
        "lab_item", "exam_item", "lab_report", "exam_report", "report_history", "reminder_log", "access_log",
        "accept_record", "quote_record", "rejected_submission", "code_map", "catalog_item", "credential", "org",
    )
    with c.db.write() as conn:
        if c.db.is_sqlite:
            for t in names:
                conn.execute(text(f"DELETE FROM {t}"))
        else:
            conn.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))

