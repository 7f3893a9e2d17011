"""Shared bench helpers: synthetic lab reports with exactly N items, a server subprocess."""

from __future__ import annotations

import copy
import os
import random
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from huren.demo.generator import demo_orgs, make_lab_report, make_patients


def lab_payloads(n: int, items: int = 15, seed: int = 7) -> tuple[str, list[dict[str, Any]]]:
    """``n`` distinct lab reports of one institution, each with exactly ``items`` sub-items, no PDF."""
    rng = random.Random(seed)
    org = demo_orgs()[0]
    patients = make_patients(rng, max(50, n // 20))
    base_time = datetime(2026, 11, 1, 9, 0, 0)
    out = []
    for i in range(n):
        p = make_lab_report(rng, org, patients[i % len(patients)], base_time - timedelta(minutes=i), with_pdf=False)
        subs = p["lab_subitem"]
        while len(subs) < items:  # pad with copies of the panel's items under new serial numbers
            extra = copy.deepcopy(subs[len(subs) % max(1, len(subs))])
            subs.append(extra)
        del subs[items:]
        form = f"B{i:09d}"
        p["labmaster"]["report_form_no"] = form
        for j, item in enumerate(subs):
            item["report_form_no"] = form
            item["serial_no"] = str(j + 1)
        out.append(p)
    return org.code, out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    data_dir: Path, port: int, env_extra: dict[str, str] | None = None, workers: int = 1
) -> subprocess.Popen[bytes]:
    env = os.environ | {"HUREN_DATA_DIR": str(data_dir), "HUREN_SECRET_KEY": "bench-" + "k" * 40} | (env_extra or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "huren.cli", "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                time.sleep(0.5 if workers > 1 else 0)  # let every worker come up
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start: " + (proc.stderr.read().decode() if proc.stderr else ""))
