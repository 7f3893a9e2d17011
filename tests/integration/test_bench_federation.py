"""bench/federation.py runs end to end at a small size (2,000 reports: the CI smoke of the issue 13
benchmark) — real ``huren serve`` and ``huren federation run`` processes, the region killed and the
runner SIGKILLed mid-run — and its last JSON line says nothing was lost, doubled or out of order."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_the_bench_syncs_exactly_once_and_prints_its_figures() -> None:
    argv = [sys.executable, str(ROOT / "bench" / "federation.py"), "--reports", "2000", "--batch", "200", "--rate", "50", "--lag-seconds", "3"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    figures = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(figures["faults"]) == 2, figures  # the region killed once, the runner SIGKILLed once
    assert (figures["lost"], figures["duplicated"], figures["out_of_order"]) == (0, 0, 0), figures
    assert figures["region_reports"] == 2000 and figures["region_items"] == 2000 * 15
    assert figures["region_decisions"] == figures["city_decisions"] > 0 and figures["region_voided"] == figures["voided"] > 0
    assert figures["lag_reports"] == 150 and figures["lag_not_seen"] == 0 and figures["lag_p99_s"] > 0
    assert figures["sync_rps"] > 0 and figures["ok"] is True
