"""Field sealing at rest (issue 10 §1.8): what one sealed field costs, and where an access-log row's
extra time goes.

1. ``seal`` / ``open`` / ``blind`` of one ID number, in µs, with SM4-GCM and with AES-256-GCM
   (``huren.crypto.aead.FieldCipher``).
2. Access-log rows written one per transaction into a fresh SQLite database with the platform's
   schema (``huren.store.tables.access_log``, WAL, ``synchronous=NORMAL`` as the log's non-durable
   writes): the ID number in clear (no blind index) against sealed plus its blind index, so the
   cost of the longer row and the second index shows apart from the cipher's.

Runs alternate (clear, sealed, clear, sealed …) so the machine's drift falls on both. Ends with one
JSON line: ``sm4_seal_us``, ``sm4_open_us``, ``aes_seal_us``, ``aes_open_us``, ``blind_us``,
``sm4_gmssl_18b_us`` / ``sm4_openssl_18b_us`` / ``sm4_gmssl_10kb_us`` / ``sm4_openssl_10kb_us`` (one
SM4-GCM seal by each library, for a field and for a 10 KB payload), ``log_clear_us``,
``log_sealed_us`` (per row, median of the rounds), ``log_sealed_pct``.

    python bench/aead.py [--rows 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path

from sqlalchemy import create_engine, event

from huren.crypto.aead import AES_256_GCM, SM4_GCM, FieldCipher, sm4_gcm_supported
from huren.store.tables import access_log, metadata

ID_NO = "650102199003071234"


def per_call_us(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def cipher_figures(n: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, alg in (("sm4", SM4_GCM), ("aes", AES_256_GCM)):
        if alg == SM4_GCM and not sm4_gcm_supported():
            continue
        f = FieldCipher({1: os.urandom(32)}, 1, os.urandom(32), algorithm=alg)
        token = f.seal_text(ID_NO, "access_log", "id_no")
        out[f"{name}_seal_us"] = per_call_us(partial(f.seal_text, ID_NO, "access_log", "id_no"), n)
        out[f"{name}_open_us"] = per_call_us(partial(f.open_text, token, "access_log", "id_no"), n)
        out["blind_us"] = per_call_us(partial(f.blind, ID_NO, "id_no"), n)
    return out


def sm4_paths(n: int) -> dict[str, float]:
    """µs per SM4-GCM seal of 18 bytes and of 10 KB through GmSSL's one call (what FieldCipher uses
    up to ``aead.SHORT`` bytes) and through OpenSSL's streaming Cipher (what it uses above)."""
    import gmssl_pyx  # type: ignore[import-untyped]
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key, ad = os.urandom(16), b"a" * 40
    out: dict[str, float] = {}
    for label, size in (("18b", 18), ("10kb", 10_000)):
        plain = os.urandom(size)
        calls = n if size < 1000 else max(200, n // 50)

        def openssl(plain: bytes = plain) -> None:
            enc = Cipher(algorithms.SM4(key), modes.GCM(os.urandom(12))).encryptor()
            enc.authenticate_additional_data(ad)
            enc.update(plain)
            enc.finalize()

        def gmssl(plain: bytes = plain) -> None:
            gmssl_pyx.sm4_gcm_encrypt(key, os.urandom(12), ad, plain)

        out[f"sm4_gmssl_{label}_us"] = per_call_us(gmssl, calls)
        out[f"sm4_openssl_{label}_us"] = per_call_us(openssl, calls)
    return out


def log_rows_us(path: Path, rows: int, fields: FieldCipher | None) -> float:
    """µs per access-log row, one row per transaction, ID numbers sealed when ``fields`` is given."""
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: object, _: object) -> None:
        cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    metadata.create_all(engine, tables=[access_log])
    ids = [f"6501021990{n % 10000:04d}{n % 97:03d}X"[:18] for n in range(rows)]
    start = time.perf_counter()
    with engine.connect() as conn:
        for i in ids:
            sealed, bidx = (fields.seal_text(i, "access_log", "id_no"), fields.blind(i, "id_no")) if fields else (i, None)
            with conn.begin():
                conn.execute(access_log.insert(), {
                    "at": datetime(2026, 12, 1, 9, 0), "org_code": "H0001", "username": "doc", "action": "exists_for_order",
                    "id_type_code": "01", "id_no": sealed, "id_no_bidx": bidx, "target": "3 reports", "remote_addr": "127.0.0.1",
                })
    elapsed = time.perf_counter() - start
    engine.dispose()
    return elapsed / rows * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--calls", type=int, default=20000)
    args = ap.parse_args()
    out = cipher_figures(args.calls) | sm4_paths(args.calls)
    fields = FieldCipher({1: os.urandom(32)}, 1, os.urandom(32))
    clear: list[float] = []
    sealed: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            clear.append(log_rows_us(Path(tmp) / f"clear{r}.db", args.rows, None))
            sealed.append(log_rows_us(Path(tmp) / f"sealed{r}.db", args.rows, fields))
            print(f"round {r + 1}: clear {clear[-1]:.1f} µs/row, sealed {sealed[-1]:.1f} µs/row")
    out["log_clear_us"] = statistics.median(clear)
    out["log_sealed_us"] = statistics.median(sealed)
    out["log_sealed_pct"] = (out["log_sealed_us"] / out["log_clear_us"] - 1) * 100
    print(json.dumps({k: round(v, 2) for k, v in out.items()}))


if __name__ == "__main__":
    main()
