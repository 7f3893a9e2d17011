"""The imaging archive's own costs, in-process (no Orthanc, no HTTP): what ``bench/imaging.py``'s
C-STORE figure is made of on huren's side.

- ``store_instance_ms``: ``ImagingService.store_instance`` per instance (header read, sealed
  streamed copy, index transaction) over the corpus of ``bench/corpus.py`` (default 100 patients ×
  10 instances; the first 50 not timed), SQLite and the local blob store in a temporary directory,
  ``check_media=True`` as the DICOM AE calls it;
- ``association_ms``: p50 of one pynetdicom association against the platform's AE in this process
  (associate, C-ECHO, release), 30 times after 3 not timed;
- ``contexts_copy_ms`` / ``contexts_deepcopy_ms``: copying the AE's supported presentation contexts
  for one accepted association, as huren does (``huren.dimse.contexts``) and as pynetdicom would
  (``copy.deepcopy``), p50 of 10.

Run ``.venv/bin/python bench/imaging_ingest.py [--patients 100] [--instances 10]``; the last line is
one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import make_corpus
from huren.bootstrap import build
from huren.dimse.server import DicomServer, build_ae
from huren.services.imaging import Sender
from huren.settings import Settings

ORG = "BENCH01"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=100)
    ap.add_argument("--instances", type=int, default=10)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corpus = make_corpus(work / "corpus", patients=a.patients, instances=a.instances)
        c = build(Settings(data_dir=work / "data", secret_key="b" * 40, password_hash_n=2**10), upgrade=True)
        try:
            c.directory.add_org(ORG, "基准医院", "650102", "3甲", user="bench", password="p" * 12)
            sender = Sender(org_code=ORG, actor="bench", channel="dimse")
            paths = [i.path for i in corpus.instances]
            warm, timed = paths[:50], paths[50:]
            for p in warm:
                c.imaging.store_instance(sender, p, check_media=True)
            t0 = time.perf_counter()
            for p in timed:
                c.imaging.store_instance(sender, p, check_media=True)
            store_ms = (time.perf_counter() - t0) / len(timed) * 1000

            from pynetdicom import AE

            server = DicomServer(c.imaging, aet="HUREN", port=0)
            port = server.start()
            try:
                ae = AE(ae_title=ORG)
                ae.add_requested_context("1.2.840.10008.1.1")
                times = []
                for k in range(33):
                    t0 = time.perf_counter()
                    assoc = ae.associate("127.0.0.1", port, ae_title="HUREN")
                    if not assoc.is_established or assoc.send_c_echo().Status != 0:
                        raise RuntimeError("C-ECHO association failed")
                    assoc.release()
                    if k >= 3:
                        times.append((time.perf_counter() - t0) * 1000)
            finally:
                server.stop()
            supported = build_ae("HUREN").supported_contexts
            try:  # the code before huren.dimse.contexts existed (a side-by-side run): deepcopy only
                from huren.dimse.contexts import copy_contexts
            except ImportError:
                copy_contexts = copy.deepcopy
            fast, deep = [], []
            for _ in range(10):
                t0 = time.perf_counter()
                copy_contexts(supported)
                fast.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                copy.deepcopy(supported)
                deep.append((time.perf_counter() - t0) * 1000)
        finally:
            c.close()
    figures = {
        "instances": len(timed), "store_instance_ms": round(store_ms, 3),
        "association_ms": round(statistics.median(times), 2),
        "contexts": len(supported),
        "contexts_copy_ms": round(statistics.median(fast), 3), "contexts_deepcopy_ms": round(statistics.median(deep), 2),
    }
    print(f"store_instance {store_ms:.3f} ms/instance ({len(timed)} timed) | association (C-ECHO) p50 "
          f"{figures['association_ms']} ms | {len(supported)} contexts copied {figures['contexts_copy_ms']} ms "
          f"(deepcopy {figures['contexts_deepcopy_ms']} ms)")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
