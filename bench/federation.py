"""Federation benchmark (issue 13 "Performance"): a city platform's feed synced to the region.

1. The city registers N lab reports (15 items each, ``bench/_common.lab_payloads`` under new
   form numbers) through ``RegistryService.register_many``, and along the way resubmits 2 % with a
   newer ``last_update_dtime``, voids 1 % and records accept decisions (another hospital) for 1 %
   — all in the city's change feed.
2. Both platforms are real ``huren serve`` processes (SQLite each, or ``--database-url-city`` /
   ``--database-url-region``: PostgreSQL databases this bench empties), the runner a real
   ``huren federation run`` process. Mid-run the region is killed (SIGKILL) and started again, and
   the runner is SIGKILLed and started again. A sampler reads the region's database all along: no
   report there may ever go back (an older ``last_update_dtime``, or un-voided).
3. Report by report: every city key at the region once, with the city's ``last_update_dtime``,
   void state and item count (0 lost, 0 duplicated, 0 out of order); decisions counted too.
4. With the runner live, the city registers a steady ``--rate`` reports/s (single
   ``POST /api/v1/lab-reports``) for ``--lag-seconds``: the lag from each report's answer at the
   city to its row appearing in the region's database, p50/p99.

Targets: ``sync_rps`` >= 5,000 reports/s; ``lag_p99_s`` <= 5 s. The last line is JSON.
Run: ``.venv/bin/python bench/federation.py [--reports 100000] [--batch 5000] [--rate 200] [--lag-seconds 30]
[--database-url-city URL --database-url-region URL]``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from bench import _fed
from bench._common import free_port, lab_payloads
from huren.context import Principal
from huren.demo.generator import demo_orgs

POOL = 2000
CHUNK = 1000


def payload(pool: list[bytes], i: int, prefix: str = "F") -> dict[str, Any]:
    p: dict[str, Any] = orjson.loads(pool[i % len(pool)])
    form = f"{prefix}{i:09d}"
    p["labmaster"]["report_form_no"] = form
    for item in p["lab_subitem"]:
        item["report_form_no"] = form
    return p


def newer(p: dict[str, Any]) -> dict[str, Any]:
    t = (datetime.fromisoformat(p["labmaster"]["last_update_dtime"]) + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")
    p["labmaster"]["last_update_dtime"] = t
    for item in p["lab_subitem"]:
        item["last_update_dtime"] = t
    p["lab_subitem"][0]["result_value"] = "9.99"
    return p


def void_filter(p: dict[str, Any]) -> dict[str, Any]:
    m = p["labmaster"]
    return {k: m[k] for k in ("org_code", "report_form_no", "patient_id", "event_type", "event_no", "id_no")} | {"id_type": m["id_type_code"]}


def accept(p: dict[str, Any], n: int) -> dict[str, str]:
    m, item = p["labmaster"], p["lab_subitem"][0]
    return {
        "hr_org_code": m["org_code"], "hr_report_form_no": m["report_form_no"], "code": item["class_code"], "id_no": m["id_no"],
        "id_type_code": m["id_type_code"], "record_time": "2026-11-20 13:19:04", "type": "2", "new_event_no": f"MZ{n:08d}",
        "new_event_type": "1", "is_accept": "1", "reason": "", "dept_code": "ZSBY-10", "dept_name": "急诊外科",
        "dept_std_code": "A50.16", "dept_std_name": "急诊科专业", "doc_code": "9050", "doc_name": "郑伟军",
    }


def generate(c: Any, n: int, items: int) -> dict[str, Any]:
    """N reports at the city, with resubmissions, voids and decisions spread through the feed."""
    _, pool_payloads = lab_payloads(min(n, POOL), items=items)
    pool = [orjson.dumps(p) for p in pool_payloads]
    hosp, doc = demo_orgs()[0].code, demo_orgs()[1].code
    who, doctor = Principal(hosp, "his"), Principal(doc, "his")
    rng = random.Random(13)
    resub = voids = decisions = 0
    touched: set[str] = set()
    t0 = time.perf_counter()
    for start in range(0, n, CHUNK):
        batch = [payload(pool, i) for i in range(start, min(n, start + CHUNK))]
        for i in range(0, len(batch), 500):
            outs = c.registry.register_many("lab", batch[i : i + 500], who)
            assert all(o.registered for o in outs), [o.problems for o in outs if not o.registered][:1]
        if start == 0:
            continue
        prev = range(start - CHUNK, start)
        picked = rng.sample(prev, CHUNK // 50)
        touched.update(f"F{i:09d}" for i in picked)
        again = [newer(payload(pool, i)) for i in picked]
        outs = c.registry.register_many("lab", again, who)
        assert all(o.registered and o.registered.version == 2 for o in outs), [o.problems for o in outs if not o.registered][:1]
        resub += len(again)
        for i in rng.sample(prev, CHUNK // 100):
            touched.add(f"F{i:09d}")
            c.registry.void("lab", void_filter(payload(pool, i)), who)
            voids += 1
        recs = [accept(payload(pool, i), i) for i in rng.sample(prev, CHUNK // 100)]
        decisions += c.recognition.submit("accept", {"sehr_accept_record": recs}, doctor)
    s = time.perf_counter() - t0
    return {"reports": n, "resubmitted": resub, "voided": voids, "decisions": decisions, "seconds": s, "touched": touched}


class Sampler(threading.Thread):
    """Reads the region's copies of the resubmitted and voided reports (``forms``) every ``every``
    seconds; a report whose ``last_update_dtime`` goes down, or that is un-voided, went backwards."""

    def __init__(self, eng: Any, forms: list[str], every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.eng, self.forms, self.every = eng, forms, every
        self.seen: dict[str, tuple[str, bool]] = {}
        self.backwards: set[str] = set()
        self.samples = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            try:
                now = _fed.sample(self.eng, demo_orgs()[0].code, self.forms)
            except Exception:
                continue
            self.samples += 1
            for key, (t, voided) in now.items():
                prev = self.seen.get(key)
                if prev is not None and (t < prev[0] or (prev[1] and not voided)):
                    self.backwards.add(key)
                self.seen[key] = (t, voided)


def applied(eng: Any) -> int:
    try:
        return _fed.count(eng, "SELECT applied_seq FROM federation_peer WHERE platform = :p", p=_fed.CITY)
    except Exception:
        return -1


def sync_with_faults(
    city: _fed.Server, region: _fed.Server, run: _fed.Proc, reg_eng: Any, total: int, timeout: float, region_url: str | None = None
) -> dict[str, Any]:
    """Run until the region has applied ``total`` changes; the region killed at 30 %, the runner
    SIGKILLed at 60 % (each started again). On PostgreSQL the region's tables are analyzed every
    10 s (``_fed.analyze``: autovacuum's part, off on the test server)."""
    faults: list[str] = []
    t0 = time.perf_counter()
    run.start()
    region_done = runner_done = False
    analyzed = t0
    while True:
        if region_url and time.perf_counter() - analyzed > 10:
            with contextlib.suppress(Exception):
                _fed.analyze(region_url)
            analyzed = time.perf_counter()
        a = applied(reg_eng)
        if a >= total:
            break
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError(f"sync did not finish in {timeout:.0f} s: {a}/{total}\n{run.tail()}")
        if not region_done and a >= total * 0.3:
            region.kill()
            faults.append(f"region killed at {a}/{total}")
            time.sleep(2.0)
            region.start()
            region_done = True
        elif region_done and not runner_done and a >= total * 0.6:
            run.kill()
            faults.append(f"runner SIGKILLed at {a}/{total}")
            time.sleep(0.5)
            run.start()
            runner_done = True
        if not run.alive():
            raise RuntimeError("the runner exited:\n" + run.tail())
        time.sleep(0.05)
    return {"seconds": time.perf_counter() - t0, "faults": faults}


def check(city_eng: Any, reg_eng: Any) -> dict[str, int]:
    c, r = _fed.states(city_eng, "F"), _fed.states(reg_eng, "F")
    lost = sum(1 for k in c if k not in r)
    duplicated = sum(v[0] - 1 for v in r.values() if v[0] > 1) + sum(1 for k in r if k not in c)
    out_of_order = sum(1 for k, v in c.items() if k in r and r[k][1:] != v[1:])
    dec_sql = "SELECT count(*) FROM accept_record"
    return {
        "city_reports": len(c), "region_reports": len(r), "lost": lost, "duplicated": duplicated, "out_of_order": out_of_order,
        "region_voided": sum(1 for v in r.values() if v[2]), "region_items": sum(v[3] for v in r.values()),
        "city_decisions": _fed.count(city_eng, dec_sql), "region_decisions": _fed.count(reg_eng, dec_sql),
    }


def lag(city: _fed.Server, reg_eng: Any, token: str, pool: list[bytes], rate: float, seconds: float, start: int) -> dict[str, Any]:
    """A steady ``rate`` of single registrations at the city; each report's commit (its answer) to
    its row at the region."""
    committed: dict[str, float] = {}
    errors: list[int] = []
    n = int(rate * seconds)
    lock = threading.Lock()
    t0 = time.monotonic() + 0.2
    threads = 4

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", city.port, timeout=60)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        for j in range(k, n, threads):
            delay = t0 + j / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            p = payload(pool, start + j, prefix="L")
            conn.request("POST", "/api/v1/lab-reports", body=orjson.dumps(p), headers=headers)
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                errors.append(resp.status)
                continue
            with lock:
                committed[p["labmaster"]["report_form_no"]] = time.monotonic()
        conn.close()

    seen: dict[str, float] = {}
    workers = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    deadline = t0 + seconds + 60
    last_id = _fed.count(reg_eng, "SELECT max(id) FROM lab_report")
    while time.monotonic() < deadline:
        rows = _fed.new_rows(reg_eng, last_id)
        t = time.monotonic()
        for rid, form in rows:
            seen.setdefault(form, t)
            last_id = max(last_id, rid)
        if not any(w.is_alive() for w in workers) and len(seen) >= len(committed):
            break
        time.sleep(0.05)
    for w in workers:
        w.join()
    lags = sorted(seen[f] - committed[f] for f in committed if f in seen)
    q = statistics.quantiles(lags, n=100) if len(lags) >= 2 else [float("nan")] * 99
    return {
        "lag_reports": len(committed), "lag_not_seen": len(committed) - len(lags), "lag_errors": len(errors),
        "lag_rate": rate, "lag_p50_s": round(q[49], 3), "lag_p99_s": round(q[98], 3), "lag_max_s": round(lags[-1], 3) if lags else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reports", type=int, default=2000, help="reports at the city (the issue's figure: 100000)")
    ap.add_argument("--items", type=int, default=15)
    ap.add_argument("--batch", type=int, default=5000, help="the runner's [sync] batch")
    ap.add_argument("--rate", type=float, default=200.0, help="registrations/s at the city during the lag phase")
    ap.add_argument("--lag-seconds", type=float, default=30.0)
    ap.add_argument("--database-url-city", default=None, help="PostgreSQL database for the city (emptied); default SQLite")
    ap.add_argument("--database-url-region", default=None, help="PostgreSQL database for the region (emptied); default SQLite")
    ap.add_argument("--timeout", type=float, default=1800.0, help="the longest the sync may take (seconds)")
    args = ap.parse_args()
    cu, ru = args.database_url_city, args.database_url_region
    with tempfile.TemporaryDirectory(prefix="huren-bench-fed-") as d:
        tmp = Path(d)
        cdata, rdata = tmp / "city", tmp / "region"
        c = _fed.setup_city(cdata, cu)
        gen = generate(c, args.reports, args.items)
        hosp = demo_orgs()[0].code
        token = c.auth.issue(hosp, "his", _fed.HOSPITAL_PASSWORD).access_token
        c.close()
        _fed.analyze(cu)
        _fed.setup_region(rdata, ru)
        city_eng, reg_eng = _fed.engine(cdata, cu), _fed.engine(rdata, ru)
        total = _fed.count(city_eng, "SELECT count(*) FROM feed_change WHERE feed = :f", f=_fed.CITY)
        print(f"city                   : {gen['reports']} reports x {args.items} items, {gen['resubmitted']} resubmitted, "
              f"{gen['voided']} voided, {gen['decisions']} decisions in {gen['seconds']:.1f} s; feed {total} changes")
        city = _fed.Server(cdata, cu, free_port())
        region = _fed.Server(rdata, ru, free_port())
        city.start()
        region.start()
        run = _fed.runner(_fed.sync_config(tmp / "sync.toml", city, region, args.batch), tmp)
        sampler = Sampler(reg_eng, sorted(gen["touched"]))
        sampler.start()
        try:
            sync = sync_with_faults(city, region, run, reg_eng, total, args.timeout, ru)
            sampler.stopped.set()
            sampler.join()
            rps = args.reports / sync["seconds"]
            print(f"synced                 : {total} changes ({args.reports} reports) in {sync['seconds']:.1f} s = {rps:,.0f} reports/s, "
                  f"{total / sync['seconds']:,.0f} changes/s (batch {args.batch}); {'; '.join(sync['faults'])}")
            chk = check(city_eng, reg_eng)
            print(f"check                  : {chk}; {sampler.samples} samples, {len(sampler.backwards)} went backwards")
            _, lag_pool = lab_payloads(200, items=args.items)
            lg = lag(city, reg_eng, token, [orjson.dumps(p) for p in lag_pool], args.rate, args.lag_seconds, 0)
            print(f"lag at {args.rate:.0f} reports/s    : p50 {lg['lag_p50_s']} s, p99 {lg['lag_p99_s']} s, max {lg['lag_max_s']} s "
                  f"({lg['lag_reports']} reports, {lg['lag_not_seen']} not seen, {lg['lag_errors']} errors)")
        finally:
            sampler.stopped.set()
            run.kill()
            city.kill()
            region.kill()
            city_eng.dispose()
            reg_eng.dispose()
    out_of_order = chk["out_of_order"] + len(sampler.backwards)
    ok = (chk["lost"] == 0 and chk["duplicated"] == 0 and out_of_order == 0 and chk["city_decisions"] == chk["region_decisions"]
          and lg["lag_not_seen"] == 0 and lg["lag_errors"] == 0)
    db = "postgresql" if (cu or ru) else "sqlite"
    print(json.dumps({
        "bench": "federation", "db": db, "reports": args.reports, "items_per_report": args.items, "batch": args.batch,
        "feed_changes": total, "resubmitted": gen["resubmitted"], "voided": gen["voided"], "decisions": gen["decisions"],
        "city_register_rps": round(args.reports / gen["seconds"], 1), "sync_seconds": round(sync["seconds"], 2),
        "sync_rps": round(rps, 1), "sync_changes_per_s": round(total / sync["seconds"], 1), "faults": sync["faults"],
        "lost": chk["lost"], "duplicated": chk["duplicated"], "out_of_order": out_of_order, "went_backwards": len(sampler.backwards),
        "samples": sampler.samples, "region_reports": chk["region_reports"], "region_items": chk["region_items"],
        "region_voided": chk["region_voided"], "city_decisions": chk["city_decisions"], "region_decisions": chk["region_decisions"],
        **lg, "ok": ok,
    }, ensure_ascii=False))


if __name__ == "__main__":
    main()
