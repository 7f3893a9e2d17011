"""GM crypto micro-benchmark (issue: Xinjiang SOAP profile, envelope crypto).

Measures, single-threaded, on this machine:

  1. SM2 encrypt+decrypt of a 16-byte SM4 key per second through ``huren.crypto.sm2`` (gmssl-pyx:
     raw C1C3C2 and DER), and the bare library calls; for comparison, when importable, Tongsuo via
     tongsuopy (its SM2 encryption is reachable only through the private cffi binding) and
     pure-Python gmalg;
  2. strKey unwraps per second: without the cache (every call an SM2 decryption) and with it
     (the same strKey again, as a client reusing its key does);
  3. SM4-ECB + PKCS#7 throughput in MB/s on a 1 MB payload, encrypt and decrypt, and with Base64.

Prints human lines; the last line is one JSON object of figures.
Run: ``.venv/bin/python bench/sm2.py [--seconds 2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from typing import Any

from huren.crypto import b64, envelope, sm2, sm4


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``fn`` over about ``seconds`` (after a short warm-up)."""
    for _ in range(3):
        fn()
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(10):
            fn()
        n += 10
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def tongsuo_pair(plain: bytes) -> Callable[[], object] | None:
    try:
        from tongsuopy.backends.tongsuo import backend  # type: ignore[import-not-found]
        from tongsuopy.crypto.asymciphers import ec  # type: ignore[import-not-found]
    except ImportError:
        return None
    lib, ffi = backend._lib, backend._ffi
    priv = ec.generate_private_key(ec.SM2())
    pub = priv.public_key()

    def run(init: Any, op: Any, pkey: Any, data: bytes) -> bytes:
        ctx = ffi.gc(lib.EVP_PKEY_CTX_new(pkey, ffi.NULL), lib.EVP_PKEY_CTX_free)
        assert init(ctx) == 1
        size = ffi.new("size_t *")
        assert op(ctx, ffi.NULL, size, data, len(data)) == 1
        buf = ffi.new("unsigned char[]", size[0])
        assert op(ctx, buf, size, data, len(data)) == 1
        return bytes(ffi.buffer(buf)[: size[0]])

    def pair() -> object:
        ct = run(lib.EVP_PKEY_encrypt_init, lib.EVP_PKEY_encrypt, pub._evp_pkey, plain)
        assert run(lib.EVP_PKEY_decrypt_init, lib.EVP_PKEY_decrypt, priv._evp_pkey, ct) == plain
        return ct

    return pair


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    args = ap.parse_args()
    sec = args.seconds
    out: dict[str, float] = {}

    import gmssl_pyx  # type: ignore[import-untyped]

    key = sm2.generate_key()
    plain = os.urandom(16)

    def huren_raw() -> object:
        return sm2.sm2_decrypt(key, sm2.sm2_encrypt(key.public, plain))

    def huren_der() -> object:
        return sm2.sm2_decrypt(key, sm2.sm2_encrypt(key.public, plain, der=True))

    def bare() -> object:
        return gmssl_pyx.sm2_decrypt(key.private, gmssl_pyx.sm2_encrypt(key.public.point, plain))

    out["sm2_pair_per_s_huren_raw"] = rate(huren_raw, sec)
    out["sm2_pair_per_s_huren_der"] = rate(huren_der, sec)
    out["sm2_pair_per_s_gmssl_pyx_bare"] = rate(bare, sec)
    ct = sm2.sm2_encrypt(key.public, plain)
    out["sm2_decrypt_per_s_huren"] = rate(lambda: sm2.sm2_decrypt(key, ct), sec)
    out["sm2_encrypt_per_s_huren"] = rate(lambda: sm2.sm2_encrypt(key.public, plain), sec)
    print(f"SM2 encrypt+decrypt (gmssl-pyx via huren, raw C1C3C2): {out['sm2_pair_per_s_huren_raw']:8.0f} /s")
    print(f"SM2 encrypt+decrypt (gmssl-pyx via huren, DER):        {out['sm2_pair_per_s_huren_der']:8.0f} /s")
    print(f"SM2 encrypt+decrypt (gmssl-pyx, bare calls):           {out['sm2_pair_per_s_gmssl_pyx_bare']:8.0f} /s")
    print(
        f"SM2 decrypt alone / encrypt alone (huren):             {out['sm2_decrypt_per_s_huren']:8.0f} /s"
        f" / {out['sm2_encrypt_per_s_huren']:.0f} /s"
    )

    tongsuo = tongsuo_pair(plain)
    if tongsuo is not None:
        out["sm2_pair_per_s_tongsuopy"] = rate(tongsuo, sec)
        print(f"SM2 encrypt+decrypt (tongsuopy, private binding, DER): {out['sm2_pair_per_s_tongsuopy']:8.0f} /s")
    else:
        print("SM2 encrypt+decrypt (tongsuopy): not installed, skipped")
    try:
        import gmalg  # type: ignore[import-untyped]

        peer = gmalg.SM2(sk=key.private, pk=bytes.fromhex(key.public_hex))
        out["sm2_pair_per_s_gmalg"] = rate(lambda: peer.decrypt(peer.encrypt(plain)), min(sec, 2.0))
        print(f"SM2 encrypt+decrypt (gmalg, pure Python):              {out['sm2_pair_per_s_gmalg']:8.1f} /s")
    except ImportError:
        print("SM2 encrypt+decrypt (gmalg): not installed, skipped")

    str_key = b64.b64e(sm2.sm2_encrypt(key.public, plain))
    cold = envelope.KeyUnwrapper(key, "C1C3C2", 0)
    warm = envelope.KeyUnwrapper(key, "C1C3C2", 4096)
    out["unwrap_per_s_no_cache"] = rate(lambda: cold.unwrap(str_key), sec)
    out["unwrap_per_s_cached"] = rate(lambda: warm.unwrap(str_key), sec)
    print(f"strKey unwraps without cache:                          {out['unwrap_per_s_no_cache']:8.0f} /s")
    print(f"strKey unwraps with cache (same strKey):               {out['unwrap_per_s_cached']:8.0f} /s")

    sm4_key = os.urandom(16)
    payload = os.urandom(1024 * 1024)
    enc = sm4.sm4_encrypt(sm4_key, payload)
    text = b64.b64e(enc)
    mb = len(payload) / 1e6
    out["sm4_encrypt_mb_s"] = mb * rate(lambda: sm4.sm4_encrypt(sm4_key, payload), sec)
    out["sm4_decrypt_mb_s"] = mb * rate(lambda: sm4.sm4_decrypt(sm4_key, enc), sec)
    out["sm4_b64_encrypt_mb_s"] = mb * rate(lambda: b64.b64e(sm4.sm4_encrypt(sm4_key, payload)), sec)
    out["sm4_b64_decrypt_mb_s"] = mb * rate(lambda: sm4.sm4_decrypt(sm4_key, b64.b64d(text)), sec)
    print(
        f"SM4-ECB+PKCS#7 encrypt / decrypt (1 MB):               {out['sm4_encrypt_mb_s']:8.1f}"
        f" / {out['sm4_decrypt_mb_s']:.1f} MB/s"
    )
    print(
        f"  with Base64 (encrypt+b64e / b64d+decrypt):           {out['sm4_b64_encrypt_mb_s']:8.1f}"
        f" / {out['sm4_b64_decrypt_mb_s']:.1f} MB/s"
    )
    print(json.dumps({k: round(v, 1) for k, v in out.items()}))


if __name__ == "__main__":
    main()
