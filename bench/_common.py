"""Shared bench helpers: synthetic lab reports with exactly N items, a server subprocess."""

from __future__ import annotations

import contextlib
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children (Linux /proc; NaN elsewhere)."""
    try:
        tick = os.sysconf("SC_CLK_TCK")
        pids = [pid]
        for tid in os.listdir(f"/proc/{pid}/task"):
            pids += [int(x) for x in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
        total = 0
        for p in pids:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / tick
    except (OSError, ValueError):
        return float("nan")


def postgres_cpu_seconds() -> float:
    """User + system CPU seconds of every ``postgres`` process on this machine (the server and its
    backends, ended ones included through their parent's cutime/cstime): what a run costs the
    database when it runs here. NaN when /proc is not there."""
    try:
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            name, rest = stat.split("(", 1)[1].rsplit(")", 1)
            if name != "postgres":
                continue
            f = rest.split()
            ppid_is_pg = False
            with contextlib.suppress(OSError):
                ppid_is_pg = Path(f"/proc/{f[1]}/comm").read_text().strip() == "postgres"
            total += int(f[11]) + int(f[12])
            if not ppid_is_pg:  # the postmaster: its ended children's time too
                total += int(f[13]) + int(f[14])
        return total / tick
    except (OSError, ValueError, IndexError):
        return float("nan")


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
