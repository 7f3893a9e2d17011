"""bench/imaging_ingest.py runs (a small corpus) and ends with its JSON line of figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_bench_prints_its_figures() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "imaging_ingest.py"), "--patients", "6", "--instances", "10"],
                       capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    figures = json.loads(r.stdout.strip().splitlines()[-1])
    assert figures["instances"] == 10 and figures["contexts"] > 150
    assert figures["store_instance_ms"] > 0 and figures["association_ms"] > 0
    assert figures["contexts_copy_ms"] < figures["contexts_deepcopy_ms"]
