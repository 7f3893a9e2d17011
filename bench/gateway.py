"""Gateway drain benchmark (issue: hospital front-end).

A backlog of N lab reports (15 items each, as in ``bench/ingest.py``) is written to a fresh
gateway outbox, then drained by the gateway core (``Gateway.drain``: batches of --batch through
``POST /api/v1/lab-reports/batch``) to a local ``huren serve`` (SQLite, one worker by default).
Prints the backlog's write rate, the drain's reports/s (target ≥ 1,000/s) and the count check read
from the platform's database: every key once — 0 lost, 0 duplicated. The last line is JSON.

The outbox is sealed at rest (``huren.gateway.sealing``) under ``--cipher`` (``aes-256-gcm``, the
gateway's default, or ``sm4-gcm``), with its data keys in ``keys/`` beside it.

Run: ``.venv/bin/python bench/gateway.py [--reports 100000] [--batch 200] [--workers 1] [--cipher sm4-gcm]``.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from bench._common import free_port, lab_payloads, start_server
from huren.bootstrap import build
from huren.demo.generator import demo_orgs
from huren.gateway.config import parse
from huren.gateway.model import Record
from huren.gateway.outbox import Outbox, report_key
from huren.gateway.runner import Gateway
from huren.gateway.sealing import ALGORITHMS, DEFAULT_CIPHER, cipher_beside
from huren.settings import Settings

SECRET = "bench-" + "k" * 40
PASSWORD = "bench-pass"
POOL = 2000


def backlog(n: int, items: int) -> Iterator[Record]:
    """``n`` distinct lab reports: a pool of generated ones under new report numbers."""
    _, pool = lab_payloads(min(n, POOL), items=items)
    raw = [orjson.dumps(p) for p in pool]
    for i in range(n):
        p = orjson.loads(raw[i % len(raw)])
        form = f"G{i:09d}"
        p["labmaster"]["report_form_no"] = form
        for item in p["lab_subitem"]:
            item["report_form_no"] = form
        yield Record("lab", report_key("lab", p["labmaster"]), p, "bench", f"{i:09d}")


def count_check(db: Path, n: int) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        rows, keys = conn.execute(
            "SELECT count(*), count(DISTINCT report_form_no) FROM lab_report WHERE report_form_no LIKE 'G%'"
        ).fetchone()
        items = conn.execute("SELECT count(*) FROM lab_item").fetchone()[0]
    return {"rows": rows, "lost": n - keys, "duplicated": rows - keys, "items": items}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reports", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=15)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--workers", type=int, default=1, help="huren serve worker processes")
    ap.add_argument("--cipher", choices=sorted(ALGORITHMS), default=DEFAULT_CIPHER, help="what seals the outbox")
    args = ap.parse_args()
    org = demo_orgs()[0].code

    with tempfile.TemporaryDirectory(prefix="huren-bench-gw-") as d:
        tmp = Path(d)
        data = tmp / "platform"
        c = build(Settings(data_dir=data, secret_key=SECRET), upgrade=True)
        c.directory.add_org(org, "基准医院", "650102", "3甲", user="his", password=PASSWORD)
        c.close()

        box = Outbox(tmp / "outbox.db", cipher=cipher_beside(tmp / "outbox.db", args.cipher))
        t0 = time.perf_counter()
        chunk: list[Record] = []
        for rec in backlog(args.reports, args.items):
            chunk.append(rec)
            if len(chunk) == 5000:
                box.write(chunk, source="bench", watermark=rec.watermark)
                chunk = []
        box.write(chunk, source="bench", watermark=f"{args.reports - 1:09d}")
        write_s = time.perf_counter() - t0
        size_mb = (tmp / "outbox.db").stat().st_size / 2**20
        print(f"backlog written        : {args.reports} reports x {args.items} items in {write_s:.1f} s "
              f"({args.reports / write_s:,.0f}/s, outbox {size_mb:,.0f} MiB)")

        port = free_port()
        server = start_server(data, port, env_extra={"HUREN_SECRET_KEY": SECRET}, workers=args.workers)
        conf = parse(
            {
                "platform": {"base_url": f"http://127.0.0.1:{port}", "org_code": org, "username": "his", "password": PASSWORD},
                "outbox": {"path": str(tmp / "outbox.db"), "batch_size": args.batch, "max_backoff_seconds": 5},
            },
            tmp,
        )
        gw = Gateway(conf, sources=[], outbox=box)
        try:
            t0 = time.perf_counter()
            sent, why = gw.drain()
            drain_s = time.perf_counter() - t0
            while why == "unavailable" and time.perf_counter() - t0 < 600:  # should not happen; keep going
                time.sleep(1)
                gw._retry_at = 0
                more, why = gw.drain()
                sent += more
                drain_s = time.perf_counter() - t0
            counts = box.counts()
        finally:
            gw.close()
            server.terminate()
            server.wait(30)
        rps = sent / drain_s
        check = count_check(data / "huren.db", args.reports)
        print(f"drained                : {sent} reports in {drain_s:.1f} s = {rps:,.0f} reports/s "
              f"(batches of {args.batch}, {args.workers} worker(s); target >= 1,000)")
        print(f"outbox                 : {counts}")
        print(f"platform               : {check['rows']} reports, {check['lost']} lost, {check['duplicated']} duplicated, "
              f"{check['items']} items")
    ok = check["lost"] == 0 and check["duplicated"] == 0 and counts["dead"] == 0 and counts["pending"] == 0
    print(json.dumps({
        "bench": "gateway", "reports": args.reports, "items_per_report": args.items, "batch": args.batch,
        "workers": args.workers, "cipher": args.cipher, "backlog_write_rps": round(args.reports / write_s, 1), "drain_rps": round(rps, 1),
        "drain_seconds": round(drain_s, 2), "lost": check["lost"], "duplicated": check["duplicated"],
        "dead": counts["dead"], "pending": counts["pending"], "ok": ok,
    }))


if __name__ == "__main__":
    main()
