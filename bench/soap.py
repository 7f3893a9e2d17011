"""SOAP profile benchmark (issue: the Xinjiang SOAP profile).

1. The same lab report with a 1 MB PDF is registered (resubmitted) N times over the SOAP profile
   (``ArchiveAutoReport``: SM4-ECB + Base64 payload and credential, SM2-wrapped key, through
   ``huren.client.HurenClient``) and N times over REST (``POST /api/v1/lab-reports``, JSON with the
   PDF as Base64), alternating, against one ``huren serve``. Times are end to end (client
   encryption included). In the same rounds, ``sm4_floor``: the SM4-ECB encryption (with its
   Base64) of the same report XML under a fresh key and its decryption, in this process — the
   work the protocol itself requires of the client and the server. Target (issue 13):
   ``soap_ratio`` = SOAP / (REST + sm4_floor) <= 1.3, medians; the plain SOAP / REST ratio is
   printed too.
2. strKey unwraps per second (SM2 decrypt of the SM4 key) with the cache off and on.

Last line: one JSON object of the figures.
Run: ``.venv/bin/python bench/soap.py [--rounds 30] [--pdf-mb 1]``.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import free_port, start_server
from huren.bootstrap import build
from huren.client import HurenClient
from huren.crypto import b64, envelope, keyfiles, sm2, sm4
from huren.settings import Settings
from tests import samples

SECRET = "bench-" + "k" * 40
ORG, USER, PASSWORD = samples.lab()["labmaster"]["org_code"], "his", "bench-password"


def big_pdf(megabytes: float) -> bytes:
    pad = b"%" + b"0" * 79 + b"\n"
    n = int(megabytes * 1024 * 1024) // len(pad)
    return samples.PDF_BYTES.replace(b"trailer", pad * n + b"trailer")


def lab_xml(payload: dict[str, Any]) -> str:
    def item(row: dict[str, str]) -> str:
        return "<item " + " ".join(f"{k}={quoteattr(v)}" for k, v in row.items()) + "/>"

    return (
        '<?xml version="1.0" encoding="UTF-8"?><root><labmaster>'
        + item(payload["labmaster"])
        + "</labmaster><lab_subitem>"
        + "".join(item(r) for r in payload["lab_subitem"])
        + "</lab_subitem></root>"
    )


def median_ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1000


def sm4_floor(xml: str) -> float:
    """Seconds for what the protocol makes both ends do to the payload: SM4-ECB encrypt + Base64
    under a fresh key (the client), Base64 decode + SM4-ECB decrypt (the server)."""
    plain = xml.encode("utf-8")
    key = secrets.token_bytes(sm4.SM4_KEY_SIZE)
    t0 = time.perf_counter()
    sent = b64.b64e(sm4.sm4_encrypt(key, plain))
    back = sm4.sm4_decrypt(key, b64.b64d(sent))
    took = time.perf_counter() - t0
    if back != plain:
        raise SystemExit("SM4 round trip changed the payload")
    return took


def bench_unwrap(n: int) -> dict[str, float]:
    key = sm2.generate_key()
    str_keys = [b64.b64e(sm2.sm2_encrypt(key.public, secrets.token_bytes(16))) for _ in range(64)]
    cold = envelope.KeyUnwrapper(key, "C1C3C2", 0)
    t0 = time.perf_counter()
    for i in range(n):
        cold.unwrap(str_keys[i % len(str_keys)])
    no_cache = n / (time.perf_counter() - t0)
    warm = envelope.KeyUnwrapper(key, "C1C3C2", 4096)
    for s in str_keys:
        warm.unwrap(s)
    t0 = time.perf_counter()
    for i in range(n * 50):
        warm.unwrap(str_keys[i % len(str_keys)])
    cached = n * 50 / (time.perf_counter() - t0)
    return {"unwrap_per_s_no_cache": no_cache, "unwrap_per_s_cached": cached}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--pdf-mb", type=float, default=1.0)
    ap.add_argument("--unwraps", type=int, default=2000)
    args = ap.parse_args()

    pdf = big_pdf(args.pdf_mb)
    payload = samples.lab()
    payload["labmaster"]["pdf"] = base64.b64encode(pdf).decode()
    xml = lab_xml(payload)
    body = json.dumps(payload, ensure_ascii=False).encode()

    with tempfile.TemporaryDirectory(prefix="huren-soap-bench-") as d:
        data_dir = Path(d)
        c = build(Settings(data_dir=data_dir, secret_key=SECRET), upgrade=True)
        c.directory.add_org(ORG, "基准医院", "650102", "3甲", user=USER, password=PASSWORD)
        key = keyfiles.init_platform_key(c.settings.key_dir)
        c.close()
        port = free_port()
        server = start_server(data_dir, port, env_extra={"HUREN_SECRET_KEY": SECRET})
        base = f"http://127.0.0.1:{port}"
        try:
            client = HurenClient(base, ORG, USER, PASSWORD, platform_key=key.public_hex, fresh_key_per_call=True)
            with httpx2.Client(base_url=base, timeout=60) as http:
                token = http.post(
                    "/api/v1/auth/token", json={"org_code": ORG, "username": USER, "password": PASSWORD}
                ).json()["access_token"]
                headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
                soap_t: list[float] = []
                rest_t: list[float] = []
                floor_t: list[float] = []
                for i in range(args.rounds + 2):  # two warm-up rounds
                    t0 = time.perf_counter()
                    answer = client.ArchiveAutoReport(xml)
                    t1 = time.perf_counter()
                    r = http.post("/api/v1/lab-reports", content=body, headers=headers)
                    t2 = time.perf_counter()
                    floor = sm4_floor(xml)
                    if answer != "ok" or r.status_code != 200:
                        raise SystemExit(f"failed: SOAP {answer[:200]!r}, REST {r.status_code} {r.text[:200]}")
                    if i >= 2:
                        soap_t.append(t1 - t0)
                        rest_t.append(t2 - t1)
                        floor_t.append(floor)
            client.close()
        finally:
            server.terminate()
            server.wait(10)

    soap_ms, rest_ms, floor_ms = median_ms(soap_t), median_ms(rest_t), median_ms(floor_t)
    ratio = soap_ms / rest_ms
    soap_ratio = soap_ms / (rest_ms + floor_ms)
    print(f"lab report + {len(pdf) / 1e6:.2f} MB PDF, {args.rounds} rounds each, alternating")
    print(f"SOAP ArchiveAutoReport (SM4+SM2, fresh key per call): median {soap_ms:7.1f} ms")
    print(f"REST POST /api/v1/lab-reports                       : median {rest_ms:7.1f} ms")
    print(f"SM4 floor (encrypt + decrypt of the {len(xml.encode()) / 1e6:.2f} MB XML)       : median {floor_ms:7.1f} ms")
    print(f"SOAP / REST                                         : {ratio:7.2f}")
    print(f"SOAP / (REST + SM4 floor)                           : {soap_ratio:7.2f}  "
          f"[{'ok' if soap_ratio <= 1.3 else 'MISS'} target <= 1.3]")
    unwrap = bench_unwrap(args.unwraps)
    print(f"SM2 strKey unwraps/s, no cache: {unwrap['unwrap_per_s_no_cache']:10,.0f}")
    print(f"SM2 strKey unwraps/s, cached  : {unwrap['unwrap_per_s_cached']:10,.0f}")
    print(json.dumps({
        "bench": "soap", "pdf_bytes": len(pdf), "rounds": args.rounds,
        "soap_median_ms": round(soap_ms, 2), "rest_median_ms": round(rest_ms, 2), "ratio": round(ratio, 3),
        "sm4_floor_ms": round(floor_ms, 2), "soap_ratio": round(soap_ratio, 3), "xml_bytes": len(xml.encode()),
        "unwrap_per_s_no_cache": round(unwrap["unwrap_per_s_no_cache"], 1),
        "unwrap_per_s_cached": round(unwrap["unwrap_per_s_cached"], 1),
    }))


if __name__ == "__main__":
    main()
