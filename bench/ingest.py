"""Ingest benchmark (issue: platform core).

Registers N lab reports of 15 items each
  1. through the service layer (``RegistryService.register_many``, batches of --batch, and one by one),
  2. as the reference: the same validated rows inserted with plain ``executemany`` in batches of
     the same size (no validation, no key lookups, no history) on a fresh database,
  3. over HTTP: ``POST /api/v1/lab-reports`` one report per request from 16 concurrent clients
     against ``huren serve`` with each worker count of ``--workers`` (default ``1,2``), with the
     CPU each request cost the server, the load generator and (on a local PostgreSQL) the database:
     ``db_cpu_ms`` every ``postgres`` process of the machine (other databases' users included),
     ``db_own_cpu_ms`` only the backends connected to the bench's database (a lower bound).

Prints reports/s for each and the service/raw ratio; the last line is one JSON object.
``--pdf`` gives every report its own PDF sheet (huren.demo.pdf, a few kB), so the cost of
writing (and syncing) the PDF files is measured too.
Run: ``.venv/bin/python bench/ingest.py [--reports 5000] [--http-reports 4000] [--pdf] [--database-url URL]
[--workers 1,2,4] [--http-only]``. Targets: service >= 0.5 x raw; HTTP >= 500 reports/s with one
worker; on PostgreSQL with several workers >= 1,000 reports/s (issue 13).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import itertools
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, insert, text
from sqlalchemy.pool import NullPool

from bench._common import cpu_seconds, free_port, lab_payloads, postgres_cpu_seconds, start_server
from huren.bootstrap import build
from huren.context import Principal
from huren.domain.validation import validate_report
from huren.settings import Settings
from huren.store.tables import lab_item, lab_report

SECRET = "bench-" + "k" * 40
_RUNS = itertools.count(1)


def fresh(tmp: Path, name: str, url: str | None) -> Any:
    settings = Settings(data_dir=tmp / name, database_url=url, secret_key=SECRET)
    c = build(settings, upgrade=True)
    if url:  # a shared server database: start empty
        with c.db.write() as conn:
            for t in ("lab_item", "lab_report", "report_history", "rejected_submission", "credential", "org"):
                conn.execute(text(f"DELETE FROM {t}"))
    return c


def bench_service(tmp: Path, url: str | None, payloads: list[dict[str, Any]], batch: int, org: str) -> dict[str, float]:
    c = fresh(tmp, "svc", url)
    c.directory.add_org(org, "基准医院", "650102", "3甲", user="his", password="bench-pass")
    who = Principal(org, "his")
    t0 = time.perf_counter()
    for i in range(0, len(payloads), batch):
        outs = c.registry.register_many("lab", payloads[i : i + batch], who)
        assert all(o.registered for o in outs), [o.problems for o in outs if not o.registered][:1]
    batched = len(payloads) / (time.perf_counter() - t0)
    single_n = min(len(payloads), 2000)
    c.close()
    c = fresh(tmp, "svc1", url)
    c.directory.add_org(org, "基准医院", "650102", "3甲", user="his", password="bench-pass")
    t0 = time.perf_counter()
    for p in payloads[:single_n]:
        c.registry.register("lab", p, who)
    single = single_n / (time.perf_counter() - t0)
    c.close()
    return {"service_rps": batched, "service_single_rps": single}


def bench_raw(tmp: Path, url: str | None, payloads: list[dict[str, Any]], batch: int) -> float:
    c = fresh(tmp, "raw", url)
    now = c.clock.now()
    masters, items = [], []
    for rid, p in enumerate(payloads, start=1):
        r, problems = validate_report("lab", p, max_pdf_bytes=1 << 24)
        assert r is not None, problems
        masters.append(r.master | {"id": rid, "pdf_sha256": None, "pdf_size": None, "version": 1, "voided": False,
                                   "voided_at": None, "voided_by": None, "received_at": now, "updated_at": now})
        items.append([i | {"report_id": rid} for i in r.items])
    t0 = time.perf_counter()
    for i in range(0, len(masters), batch):
        with c.db.engine.begin() as conn:
            conn.execute(insert(lab_report), masters[i : i + batch])
            conn.execute(insert(lab_item), [row for group in items[i : i + batch] for row in group])
    rps = len(masters) / (time.perf_counter() - t0)
    c.close()
    return rps


def _backends_cpu_seconds(url: str, seen: dict[int, float]) -> None:
    """Record in ``seen`` the CPU seconds (user + system, /proc) of each backend now connected to
    the database of ``url``, this bench's own connection excepted. Sampled before and after a run
    (and while it runs), a backend's growth is what serving that run cost PostgreSQL — unlike
    ``postgres_cpu_seconds``, which counts every database's backends (other users of the server
    included). A lower bound: what a backend spent after its last sample before it ended is lost."""
    tick = os.sysconf("SC_CLK_TCK")
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            pids = list(conn.execute(text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )).scalars())
    finally:
        engine.dispose()
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seen[int(pid)] = (int(f[11]) + int(f[12])) / tick


def _sampling(url: str, seen: dict[int, float], stop: threading.Event) -> None:
    while not stop.wait(0.5):
        _backends_cpu_seconds(url, seen)


def _client(port: int, token: str, bodies: list[bytes], errors: list[int]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for b in bodies:
        conn.request("POST", "/api/v1/lab-reports", body=b, headers=headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            errors.append(resp.status)
    conn.close()


def _proc(port: int, token: str, shards: list[list[bytes]], q: Any) -> None:
    errors: list[int] = []
    threads = [threading.Thread(target=_client, args=(port, token, s, errors)) for s in shards]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    q.put((len(errors), time.process_time()))


def bench_http(
    tmp: Path, url: str | None, payloads: list[dict[str, Any]], clients: int, org: str, workers: int = 1
) -> dict[str, float]:
    """reports/s over HTTP and the CPU milliseconds per report of the server (all its workers),
    the load generator and the local PostgreSQL (NaN on SQLite)."""
    name = f"http{workers}-{next(_RUNS)}"  # a fresh SQLite file per run
    data_dir = tmp / name
    c = fresh(tmp, name, url)
    c.directory.add_org(org, "基准医院", "650102", "3甲", user="his", password="bench-pass")
    token = c.auth.issue(org, "his", "bench-pass").access_token
    c.close()
    port = free_port()
    server = start_server(data_dir, port, workers=workers, env_extra={"HUREN_DATABASE_URL": url} if url else None)
    try:
        bodies = [json.dumps(p, ensure_ascii=False).encode() for p in payloads]
        _client(port, token, bodies[:20], [])  # warm up
        bodies = bodies[20:]
        shards = [bodies[i::clients] for i in range(clients)]
        procs_n = 2
        q: Any = mp.Queue()
        server0, pg0 = cpu_seconds(server.pid), postgres_cpu_seconds() if url else float("nan")
        own0: dict[int, float] = {}
        own: dict[int, float] = {}
        stop = threading.Event()
        sampler = threading.Thread(target=_sampling, args=(url, own, stop), daemon=True) if url else None
        if url and sampler is not None:
            _backends_cpu_seconds(url, own0)
            own.update(own0)
            sampler.start()
        t0 = time.perf_counter()
        procs = [mp.Process(target=_proc, args=(port, token, shards[i::procs_n], q)) for i in range(procs_n)]
        for p in procs:
            p.start()
        got = [q.get() for _ in procs]
        for p in procs:
            p.join()
        n = len(bodies)
        rps = n / (time.perf_counter() - t0)
        server_cpu = cpu_seconds(server.pid) - server0
        pg_cpu = postgres_cpu_seconds() - pg0 if url else float("nan")
        own_cpu = float("nan")
        if url and sampler is not None:
            stop.set()
            sampler.join()
            _backends_cpu_seconds(url, own)
            own_cpu = sum(v - own0.get(pid, 0.0) for pid, v in own.items())
        errors = sum(e for e, _ in got)
        if errors:
            raise RuntimeError(f"{errors} HTTP errors")
        return {
            "rps": rps, "server_cpu_ms": server_cpu / n * 1000, "client_cpu_ms": sum(c for _, c in got) / n * 1000,
            "db_cpu_ms": pg_cpu / n * 1000, "db_own_cpu_ms": own_cpu / n * 1000,
        }
    except Exception:
        server.terminate()
        server.wait(10)
        if server.stderr is not None:  # what the server said before it failed
            print(server.stderr.read().decode(errors="replace")[-20000:], file=sys.stderr)
        raise
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reports", type=int, default=5000)
    ap.add_argument("--http-reports", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--database-url", default=None, help="default: a fresh SQLite file per run")
    ap.add_argument("--pdf", action="store_true", help="each report with its own PDF sheet")
    ap.add_argument("--workers", default="1,2", help="huren serve --workers counts to measure over HTTP, comma-separated")
    ap.add_argument("--http-only", action="store_true", help="only the HTTP runs (no raw / service layer)")
    ap.add_argument("--repeat", type=int, default=1, help="HTTP runs per worker count, alternated (1,2,4,1,2,4,...)")
    args = ap.parse_args()
    worker_counts = [int(w) for w in args.workers.split(",") if w.strip()]

    org, payloads = lab_payloads(max(args.reports, args.http_reports))
    if args.pdf:
        from huren.demo.pdf import render_lab_pdf

        for p in payloads:
            p["labmaster"]["pdf"] = base64.b64encode(render_lab_pdf(p["labmaster"], p["lab_subitem"])).decode()
    with tempfile.TemporaryDirectory(prefix="huren-bench-") as d:
        tmp = Path(d)
        raw = float("nan")
        svc = {"service_rps": float("nan"), "service_single_rps": float("nan")}
        if not args.http_only:
            raw = bench_raw(tmp, args.database_url, payloads[: args.reports], args.batch)
            print(f"raw executemany        : {raw:8.0f} reports/s  ({args.reports} reports x 15 items, batches of {args.batch})")
            svc = bench_service(tmp, args.database_url, payloads[: args.reports], args.batch, org)
            print(f"service register_many  : {svc['service_rps']:8.0f} reports/s  (validation + upsert + history check)")
            print(f"service register (1/tx): {svc['service_single_rps']:8.0f} reports/s")
            print(f"service / raw ratio    : {svc['service_rps'] / raw:8.2f}  (target >= 0.50)")
        runs: dict[int, list[dict[str, float]]] = {w: [] for w in worker_counts}
        for _ in range(args.repeat):
            for w in worker_counts:
                h = bench_http(tmp, args.database_url, payloads[: args.http_reports], args.clients, org, workers=w)
                runs[w].append(h)
                print(f"HTTP POST, {args.clients} clients, {w} worker(s): {h['rps']:8.0f} reports/s   CPU ms/report: "
                      f"server {h['server_cpu_ms']:.2f}, load generator {h['client_cpu_ms']:.2f}, database {h['db_cpu_ms']:.2f} "
                      f"(its own backends {h['db_own_cpu_ms']:.2f})")
    ratio = svc["service_rps"] / raw
    db = "postgresql" if args.database_url and args.database_url.startswith("postgres") else "sqlite"

    def r1(x: float) -> float | None:
        return None if x != x else round(x, 1)

    def r2(x: float) -> float | None:
        return None if x != x else round(x, 2)

    def best(w: int) -> float | None:
        return r1(max(h["rps"] for h in runs[w])) if w in runs else None

    print(json.dumps({
        "bench": "ingest", "db": db, "reports": args.reports, "items_per_report": 15, "batch": args.batch,
        "service_rps": r1(svc["service_rps"]), "service_single_rps": r1(svc["service_single_rps"]),
        "raw_rps": r1(raw), "ratio": None if ratio != ratio else round(ratio, 3), "http_rps": best(1),
        "http_rps_2_workers": best(2),
        "http_rps_by_workers": {str(w): [r1(h["rps"]) for h in hs] for w, hs in runs.items()},
        "http_cpu_ms_per_report": {
            str(w): {k: r2(statistics.fmean(h[k] for h in hs)) for k in ("server_cpu_ms", "client_cpu_ms", "db_cpu_ms", "db_own_cpu_ms")}
            for w, hs in runs.items() if hs
        },
        "http_clients": args.clients, "http_reports": args.http_reports, "pdf": args.pdf,
    }))


if __name__ == "__main__":
    main()
