"""Imaging benchmark (issue 12): huren side by side with Debian's Orthanc, in one run, on one corpus.

The corpus (bench/corpus.py: ``--patients`` × ``--instances`` from pydicom's bundled CT / MR files)
is written once and sent to both servers. Each round starts a fresh huren and a fresh Orthanc, in
turn (huren, Orthanc, huren, Orthanc… with ``--rounds``), and measures for each:

* ``store_ips``: C-STORE ingest with dcmtk ``storescu`` — one association sending the whole corpus
  directory (``+sd +r``), instances/s of wall time (the client with ``TCP_NODELAY=1``, as Orthanc);
* ``rss_before_mb`` / ``rss_peak_mb`` / ``rss_hwm_mb``: the server's resident memory before and while
  ingesting (VmRSS sampled every 20 ms from /proc/<pid>/status; VmHWM at the end of the ingest);
* ``wado_p50_ms`` / ``wado_p99_ms``: WADO-URI ``contentType=application/dicom``, 1 client, keep-alive;
* ``wado_rps``: WADO-URI with 8 client processes (keep-alive each) for ``--seconds``;
* ``qido_p50_ms`` / ``qido_p99_ms``: QIDO-RS ``/dicom-web/studies?PatientID=…``, 1 client.

huren: ``huren serve`` in a subprocess with its default store (SQLite + blob files in a temporary
data directory), ``HUREN_DICOM_PORT`` set, one institution whose code is the calling AE title, a
token from ``POST /api/v1/auth/token`` on every HTTP request. Orthanc 1.10 (Debian): SQLite index,
``TcpNoDelay`` and DCMTK's ``TCP_NODELAY=1``, the DICOMweb plugin, HTTP basic authentication.
Every answer is checked: the instances counted after the ingest; each 1-client WADO answer a
Part-10 file ending in the exact data set sent; 200 for the 8-client ones; one study per patient ID.

Prints a line per server and round, the medians over the rounds, and as its LAST line one JSON
object: each figure for both servers, ``errors`` (failed checks per server) and the ratios
huren ÷ Orthanc (``store_ratio``, ``wado_p50_ratio``, ``wado_rps_ratio``, ``qido_p99_ratio``,
``rss_ratio``) — null when either server failed a check (its figures are then not valid).
Run: ``.venv/bin/python bench/imaging.py [--patients 100] [--instances 10] [--rounds 2] [--only huren|orthanc]``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import Corpus, CorpusInstance, make_corpus
from bench.orthanc import DCMTK_ENV, OrthancServer, free_port, orthanc_missing
from huren.demo.institutions import demo_orgs

SECRET = "bench-" + "k" * 40
ORG_CODE = demo_orgs()[0].code  # the calling AE title of the bench's storescu: an institution's code
ORG_NAME, USER, PASSWORD = "基准医院", "bench", "bench-pass-1"
ORTHANC_USERS = {"bench": "bench-pass-1"}


@dataclass
class Target:
    name: str
    pid: int
    http_port: int
    dicom_port: int
    aet: str
    headers: dict[str, str]
    stop: Callable[[], None]
    count_instances: Callable[[], int] = lambda: -1
    log: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# -- servers ------------------------------------------------------------------------------------------
def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}); log:\n" + log.read_text(errors="replace")[-3000:])
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open; log:\n" + log.read_text(errors="replace")[-3000:])


def start_huren(work: Path) -> Target:
    from huren.bootstrap import build
    from huren.settings import Settings

    data = work / "data"
    c = build(Settings(data_dir=data, secret_key=SECRET), upgrade=True)
    c.directory.add_org(ORG_CODE, ORG_NAME, "650102", "3甲", user=USER, password=PASSWORD)
    c.close()
    http_port, dicom_port = free_port(), free_port()
    env = os.environ | {"HUREN_DATA_DIR": str(data), "HUREN_SECRET_KEY": SECRET, "HUREN_DICOM_PORT": str(dicom_port),
                        "HUREN_DICOM_HOST": "127.0.0.1", "HUREN_HOST": "127.0.0.1"}
    log = work / "huren.log"
    with log.open("ab") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "huren.cli", "serve", "--port", str(http_port)],
                                env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        _wait_port(http_port, proc, 60, log)
        _wait_port(dicom_port, proc, 30, log)
        conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=30)
        body = json.dumps({"org_code": ORG_CODE, "username": USER, "password": PASSWORD})
        conn.request("POST", "/api/v1/auth/token", body, {"Content-Type": "application/json"})
        r = conn.getresponse()
        answer = r.read()
        if r.status != 200:
            raise RuntimeError(f"huren login: {r.status} {answer[:300]!r}")
        token = json.loads(answer)["access_token"]
        conn.close()
    except BaseException:
        proc.kill()
        raise

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    headers = {"Authorization": f"Bearer {token}"}

    def count() -> int:
        total, offset = 0, 0
        while True:
            rows = json.loads(_get(http_port, f"/dicom-web/studies?limit=100&offset={offset}"
                                   "&includefield=NumberOfStudyRelatedInstances", headers)[1] or b"[]")
            total += sum(int(r.get("00201208", {}).get("Value", [0])[0]) for r in rows)
            if len(rows) < 100:
                return total
            offset += 100

    return Target("huren", proc.pid, http_port, dicom_port, "HUREN", headers, stop, count, log)


def start_orthanc(work: Path) -> Target:
    o = OrthancServer(work / "orthanc", users=ORTHANC_USERS).start()

    def count() -> int:
        return int(o.get_json("/statistics")["CountInstances"])

    return Target("orthanc", o.pid, o.http_port, o.dicom_port, o.aet, o.headers(), o.stop, count, o.log_path)


# -- measurements -------------------------------------------------------------------------------------
def _get(port: int, path: str, headers: dict[str, str], conn: http.client.HTTPConnection | None = None) -> tuple[int, bytes]:
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    body = r.read()
    if own:
        conn.close()
    return r.status, body


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def ingest(t: Target, corpus: Corpus) -> dict[str, float]:
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _status_kb(t.pid, "VmRSS"))
            time.sleep(0.02)

    rss_before = _status_kb(t.pid, "VmRSS")
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cmd = ["storescu", "-aet", ORG_CODE, "-aec", t.aet, "+sd", "+r", "-nh", "127.0.0.1", str(t.dicom_port), str(corpus.root)]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=os.environ | DCMTK_ENV, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    done.set()
    sampler.join()
    stored = t.count_instances()
    if r.returncode != 0 or stored != len(corpus.instances):
        print(f"  {t.name}: storescu rc={r.returncode}, {stored}/{len(corpus.instances)} stored; "
              f"{r.stderr.strip()[-400:]}", file=sys.stderr)
    return {
        "store_ips": len(corpus.instances) / elapsed, "store_seconds": elapsed, "stored": stored,
        "rss_before_mb": rss_before / 1024, "rss_peak_mb": peak[0] / 1024, "rss_hwm_mb": _status_kb(t.pid, "VmHWM") / 1024,
    }


def wado_path(i: CorpusInstance) -> str:
    return (f"/wado?requestType=WADO&studyUID={i.study_uid}&seriesUID={i.series_uid}&objectUID={i.sop_uid}"
            "&contentType=application/dicom")  # "/" as is: Orthanc 1.10 does not decode %2F here


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def dataset_bytes(path: Path) -> bytes:
    """The data set of a Part-10 file (what C-STORE carries): the bytes after its meta group, whose
    length (0002,0000) follows the 128-byte preamble and "DICM"."""
    raw = path.read_bytes()
    meta_len = int.from_bytes(raw[140:144], "little")
    return raw[144 + meta_len:]


def wado_one(t: Target, sample: list[CorpusInstance]) -> dict[str, float]:
    """1 client. Each answer must be a Part-10 file ending in the data set sent: a C-STORE SCP
    writes a file meta group of its own (both servers do), so only the data set is compared."""
    expected = {i.sop_uid: dataset_bytes(i.path) for i in sample}
    conn = http.client.HTTPConnection("127.0.0.1", t.http_port, timeout=30)
    for i in sample[:20]:  # warm-up: the connection, the server's caches
        _get(t.http_port, wado_path(i), t.headers, conn)
    times, bad = [], 0
    for i in sample:
        t0 = time.perf_counter()
        status, body = _get(t.http_port, wado_path(i), t.headers, conn)
        times.append((time.perf_counter() - t0) * 1000)
        if status != 200 or body[128:132] != b"DICM" or not body.endswith(expected[i.sop_uid]):
            bad += 1
    conn.close()
    if bad:
        print(f"  {t.name}: WADO {bad} of {len(sample)} answers not the data set sent", file=sys.stderr)
    return {"wado_p50_ms": _pct(times, 0.5), "wado_p99_ms": _pct(times, 0.99), "wado_errors": bad}


def _wado_worker(port: int, headers: dict[str, str], paths: list[str], start: float, seconds: float, out: Any) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while time.time() < start:
        time.sleep(0.001)
    n = errors = 0
    end = start + seconds
    while time.time() < end:
        status, _ = _get(port, paths[n % len(paths)], headers, conn)
        n += 1
        errors += status != 200
    out.put((n, errors))


def wado_many(t: Target, sample: list[CorpusInstance], clients: int, seconds: float) -> dict[str, float]:
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    start = time.time() + 0.5
    procs = []
    for k in range(clients):
        paths = [wado_path(i) for i in sample[k::clients]] or [wado_path(sample[0])]
        p = ctx.Process(target=_wado_worker, args=(t.http_port, t.headers, paths, start, seconds, out))
        p.start()
        procs.append(p)
    results = [out.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join()
    total, errors = sum(n for n, _ in results), sum(e for _, e in results)
    if errors:
        print(f"  {t.name}: WADO x{clients}: {errors} errors", file=sys.stderr)
    return {"wado_rps": total / seconds, "wado_rps_errors": errors}


def qido(t: Target, corpus: Corpus, requests: int, rng: random.Random) -> dict[str, float]:
    ids = corpus.patient_ids
    conn = http.client.HTTPConnection("127.0.0.1", t.http_port, timeout=30)
    for pid in ids[:10]:
        _get(t.http_port, f"/dicom-web/studies?PatientID={pid}", t.headers, conn)
    times, bad = [], 0
    for _ in range(requests):
        pid = rng.choice(ids)
        t0 = time.perf_counter()
        status, body = _get(t.http_port, f"/dicom-web/studies?PatientID={pid}", t.headers, conn)
        times.append((time.perf_counter() - t0) * 1000)
        if status != 200 or len(json.loads(body)) != 1:
            bad += 1
    conn.close()
    if bad:
        print(f"  {t.name}: QIDO {bad} bad answers", file=sys.stderr)
    return {"qido_p50_ms": _pct(times, 0.5), "qido_p99_ms": _pct(times, 0.99), "qido_errors": bad}


def measure(start: Callable[[Path], Target], work: Path, corpus: Corpus, a: argparse.Namespace) -> dict[str, float]:
    t = start(work)
    try:
        rng = random.Random(a.seed)
        figures = ingest(t, corpus)
        sample = rng.sample(corpus.instances, min(a.wado_requests, len(corpus.instances)))
        figures |= wado_one(t, sample)
        figures |= wado_many(t, rng.sample(corpus.instances, min(800, len(corpus.instances))), a.clients, a.seconds)
        figures |= qido(t, corpus, a.qido_requests, rng)
        return figures
    finally:
        t.stop()


KEYS = ("store_ips", "wado_p50_ms", "wado_p99_ms", "wado_rps", "qido_p50_ms", "qido_p99_ms", "rss_before_mb", "rss_peak_mb",
        "rss_hwm_mb")


def _line(name: str, f: dict[str, float]) -> str:
    return (f"{name:8s} store {f['store_ips']:7.1f} inst/s | WADO p50 {f['wado_p50_ms']:6.2f} ms p99 {f['wado_p99_ms']:6.2f} ms"
            f" | WADO x8 {f['wado_rps']:7.1f} req/s | QIDO p50 {f['qido_p50_ms']:6.2f} ms p99 {f['qido_p99_ms']:6.2f} ms"
            f" | RSS {f['rss_before_mb']:5.1f} → peak {f['rss_peak_mb']:5.1f} MB (HWM {f['rss_hwm_mb']:5.1f})")


def _ratio(h: dict[str, float] | None, o: dict[str, float] | None, key: str) -> float | None:
    if not h or not o or not o.get(key):
        return None
    return round(h[key] / o[key], 3)


def main() -> int:
    ap = argparse.ArgumentParser(description="huren against Orthanc: C-STORE, WADO-URI, QIDO-RS, memory")
    ap.add_argument("--patients", type=int, default=100, help="patients in the corpus (one study each); issue: 300")
    ap.add_argument("--instances", type=int, default=10, help="instances per study")
    ap.add_argument("--rounds", type=int, default=2, help="rounds; each starts a fresh huren then a fresh Orthanc")
    ap.add_argument("--wado-requests", type=int, default=300, help="WADO-URI requests of the 1-client figure")
    ap.add_argument("--clients", type=int, default=8, help="client processes of the throughput figure")
    ap.add_argument("--seconds", type=float, default=4.0, help="duration of the throughput figure")
    ap.add_argument("--qido-requests", type=int, default=300)
    ap.add_argument("--only", choices=("huren", "orthanc"))
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, data)")
    a = ap.parse_args()
    if shutil.which("storescu") is None:
        print("storescu is missing (Debian package dcmtk)", file=sys.stderr)
        return 2
    servers: list[tuple[str, Callable[[Path], Target]]] = []
    if a.only != "orthanc":
        servers.append(("huren", start_huren))
    if a.only != "huren":
        reason = orthanc_missing()
        if reason:
            print(reason, file=sys.stderr)
            return 2
        servers.append(("orthanc", start_orthanc))

    tmp = Path(tempfile.mkdtemp(prefix="huren-bench-imaging-"))
    try:
        t0 = time.perf_counter()
        corpus = make_corpus(tmp / "corpus", a.patients, a.instances, a.seed)
        print(f"corpus: {len(corpus.instances)} instances of {len(corpus.patient_ids)} patients, "
              f"{corpus.total_bytes / 1e6:.1f} MB ({time.perf_counter() - t0:.1f} s to write)")
        runs: dict[str, list[dict[str, float]]] = {name: [] for name, _ in servers}
        for r in range(a.rounds):
            for name, start in servers:
                f = measure(start, tmp / f"{name}-{r}", corpus, a)
                runs[name].append(f)
                print(f"round {r + 1} " + _line(name, f), flush=True)
        med = {name: {k: round(statistics.median(f[k] for f in fs), 3) for k in KEYS} for name, fs in runs.items() if fs}
        for name, f in med.items():
            print("median  " + _line(name, f))
        h, o = med.get("huren"), med.get("orthanc")
        errors = {name: int(sum(f.get(k, 0) for f in fs for k in ("wado_errors", "wado_rps_errors", "qido_errors")))
                  + int(sum(len(corpus.instances) - f["stored"] for f in fs)) for name, fs in runs.items()}
        for name, n in errors.items():
            if n:
                print(f"{name}: {n} failed checks — its figures are not valid, no ratio is given", file=sys.stderr)
        if errors.get("huren") or errors.get("orthanc"):
            h_ok, o_ok = None, None
        else:
            h_ok, o_ok = h, o
        summary = {
            "corpus": {"patients": len(corpus.patient_ids), "instances": len(corpus.instances), "bytes": corpus.total_bytes},
            "rounds": a.rounds, "clients": a.clients, "huren": h, "orthanc": o, "errors": errors,
            "store_ratio": _ratio(h_ok, o_ok, "store_ips"), "wado_p50_ratio": _ratio(h_ok, o_ok, "wado_p50_ms"),
            "wado_rps_ratio": _ratio(h_ok, o_ok, "wado_rps"), "qido_p99_ratio": _ratio(h_ok, o_ok, "qido_p99_ms"),
            "rss_ratio": _ratio(h_ok, o_ok, "rss_peak_mb"),
        }
        print(json.dumps(summary, ensure_ascii=False))
        return 0
    finally:
        if a.keep:
            print(f"kept: {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
