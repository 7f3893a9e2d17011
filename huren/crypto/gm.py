"""Chinese national (GM) cryptography for the Xinjiang SOAP envelope: SM4, SM2, SM3.

* SM4-ECB with PKCS#7 padding through ``cryptography`` (OpenSSL); unpadding validates the padding.
* SM2 public-key encryption, SM3withSM2 signatures, SM3 and key generation through ``gmssl-pyx``
  (a C binding of GmSSL 3.2: k comes from the system CSPRNG and decryption verifies C3).
* SM2 ciphertexts are accepted as raw C1‖C3‖C2 (C1 as ``04‖x‖y``, bare ``x‖y`` or compressed
  ``02/03‖x``), as raw C1‖C2‖C3 when so configured, and as ASN.1 DER
  ``SEQUENCE {INTEGER x, INTEGER y, OCTET STRING C3, OCTET STRING C2}`` (OpenSSL, GmSSL, BouncyCastle).
  Every plausible reading is tried; only one whose C3 verifies is believed.
* Keys on disk: the private key as unencrypted PKCS#8 PEM exactly as ``openssl genpkey -algorithm SM2``
  writes it (id-ecPublicKey + curve OID 1.2.156.10197.1.301, public key included), so OpenSSL and
  GmSSL read it; SEC1 ``EC PRIVATE KEY`` (``SM2 PRIVATE KEY`` from ``openssl ec``) is also read.
  Public keys: hex ``04‖x‖y`` (also bare or compressed) or SPKI PEM.

Every failure raises :class:`GmError` (a ``ValueError``) with an English message fit to show a caller.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import gmssl_pyx as _gmssl  # type: ignore[import-untyped]
import pybase64
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "DEFAULT_UID",
    "PRIVATE_KEY_FILE",
    "PUBLIC_KEY_FILE",
    "CipherOrder",
    "GmError",
    "KeyUnwrapper",
    "Sm2Key",
    "Sm2Public",
    "UnwrapStats",
    "b64d",
    "b64e",
    "generate_key",
    "init_platform_key",
    "load_platform_key",
    "load_public",
    "sm2_decrypt",
    "sm2_encrypt",
    "sm2_sign",
    "sm2_verify",
    "sm3",
    "sm4_decrypt",
    "sm4_encrypt",
]

CipherOrder = Literal["C1C3C2", "C1C2C3"]
DEFAULT_UID = b"1234567812345678"  # the default signer ID of GM/T 0009
SM4_KEY_SIZE = 16
SM4_BLOCK = 16
SM2_MAX_PLAINTEXT = 255  # GmSSL's limit; an SM4 key is 16
PRIVATE_KEY_FILE = "sm2_private.pem"
PUBLIC_KEY_FILE = "sm2_public.txt"

# the SM2 curve (GM/T 0003.5): y² = x³ + ax + b over F_p, order n, cofactor 1
_P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
_A = _P - 3
_B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
_N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123

# DER contents of the object identifiers
_OID_EC_PUBLIC_KEY = bytes.fromhex("2a8648ce3d0201")  # 1.2.840.10045.2.1
_OID_SM2 = bytes.fromhex("2a811ccf5501822d")  # 1.2.156.10197.1.301
_ALG_ID = bytes.fromhex("301306072a8648ce3d020106082a811ccf5501822d")


class GmError(ValueError):
    """Any failure of the GM crypto layer: bad input, wrong key, tampered data, missing key file."""


# ----------------------------------------------------------------------------------------- SM4


def _check_sm4_key(key: bytes) -> None:
    if not isinstance(key, bytes | bytearray) or len(key) != SM4_KEY_SIZE:
        raise GmError(f"SM4 key must be {SM4_KEY_SIZE} bytes")


def _sm4_ecb(key: bytes, data: bytes, *, encrypt: bool) -> bytes:
    """SM4-ECB on whole blocks, no padding."""
    _check_sm4_key(key)
    if len(data) % SM4_BLOCK:
        raise GmError(f"SM4 data length {len(data)} is not a multiple of {SM4_BLOCK}")
    cipher = Cipher(algorithms.SM4(bytes(key)), modes.ECB())
    ctx = cipher.encryptor() if encrypt else cipher.decryptor()
    return ctx.update(data) + ctx.finalize()


def sm4_encrypt(key: bytes, plaintext: bytes) -> bytes:
    """SM4-ECB with PKCS#7 padding (always 1..16 pad bytes)."""
    pad = SM4_BLOCK - len(plaintext) % SM4_BLOCK
    return _sm4_ecb(key, bytes(plaintext) + bytes([pad]) * pad, encrypt=True)


def sm4_decrypt(key: bytes, ciphertext: bytes) -> bytes:
    """Inverse of :func:`sm4_encrypt`; the padding must be exact PKCS#7."""
    if not ciphertext or len(ciphertext) % SM4_BLOCK:
        raise GmError(f"SM4 ciphertext length {len(ciphertext)} is not a positive multiple of {SM4_BLOCK}")
    plain = _sm4_ecb(key, ciphertext, encrypt=False)
    pad = plain[-1]
    if not 1 <= pad <= SM4_BLOCK or plain[-pad:] != bytes([pad]) * pad:
        raise GmError("SM4 decryption failed: bad padding (wrong key or corrupted data)")
    return plain[:-pad]


# -------------------------------------------------------------------------------------- Base64


def b64e(data: bytes) -> str:
    """Standard Base64 with padding, no line breaks. pybase64 (SIMD): the standard library's
    binascii spent as long on the envelope's Base64 as SM4 on its encryption (bench/sm2.py)."""
    return pybase64.b64encode_as_string(data)


def b64d(text: str) -> bytes:
    """Strict standard Base64: whitespace (line breaks) ignored, anything else must be valid."""
    try:
        return pybase64.b64decode(text, validate=True)  # the usual case: one unbroken line
    except (ValueError, TypeError):
        pass
    try:
        return pybase64.b64decode("".join(text.split()), validate=True)
    except (ValueError, TypeError) as exc:  # binascii.Error is a ValueError; non-ASCII text too
        raise GmError("invalid Base64") from exc


# ------------------------------------------------------------------------------------- DER bits


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_len(len(content)) + content


def _der_int(value: int) -> bytes:
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")  # one spare byte keeps it positive
    if len(body) > 1 and body[0] == 0 and body[1] < 0x80:
        body = body[1:]
    return _der(0x02, body)


def _tlv(buf: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start, end) of the element at ``pos``; short tags and definite lengths only."""
    if pos + 2 > len(buf):
        raise GmError("truncated DER")
    tag, first = buf[pos], buf[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if not 1 <= count <= 3 or pos + count > len(buf):
            raise GmError("bad DER length")
        length = int.from_bytes(buf[pos : pos + count], "big")
        pos += count
    if pos + length > len(buf):
        raise GmError("truncated DER")
    return tag, pos, pos + length


def _der_items(buf: bytes, tag: int = 0x30) -> list[tuple[int, bytes]]:
    """The children (tag, content) of the one constructed element ``tag`` that fills ``buf``."""
    t, start, end = _tlv(buf, 0)
    if t != tag or end != len(buf):
        raise GmError("unexpected DER structure")
    items = []
    pos = start
    while pos < end:
        t, s, e = _tlv(buf, pos)
        items.append((t, buf[s:e]))
        pos = e
    return items


def _uint(content: bytes) -> int:
    if not content or content[0] & 0x80:
        raise GmError("DER INTEGER is empty or negative")
    return int.from_bytes(content, "big")


# ---------------------------------------------------------------------------------- SM2 keys


def _on_curve(x: int, y: int) -> bool:
    return 0 <= x < _P and 0 <= y < _P and (y * y - (x * x * x + _A * x + _B)) % _P == 0


def _decompress(prefix: int, x: int) -> int | None:
    """y of the point with this x and parity prefix (02 even, 03 odd), or None."""
    if x >= _P:
        return None
    rhs = (x * x * x + _A * x + _B) % _P
    y = pow(rhs, (_P + 1) // 4, _P)  # p ≡ 3 (mod 4)
    if y * y % _P != rhs:
        return None
    return y if y % 2 == prefix - 2 else _P - y


def _point(data: bytes) -> bytes:
    """A public point as the 64 bytes x‖y, from 04‖x‖y, x‖y or 02/03‖x; must lie on the curve."""
    if len(data) == 65 and data[0] == 4:
        data = data[1:]
    if len(data) == 64:
        x, y = int.from_bytes(data[:32], "big"), int.from_bytes(data[32:], "big")
    elif len(data) == 33 and data[0] in (2, 3):
        x = int.from_bytes(data[1:], "big")
        found = _decompress(data[0], x)
        if found is None:
            raise GmError("SM2 public key is not a point on the curve")
        y = found
    else:
        raise GmError("SM2 public key must be 04||x||y (65 bytes), x||y (64) or compressed (33)")
    if not _on_curve(x, y):
        raise GmError("SM2 public key is not a point on the curve")
    return x.to_bytes(32, "big") + y.to_bytes(32, "big")


def _pem_blocks(text: str | bytes) -> dict[str, bytes]:
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    blocks = {}
    for m in re.finditer(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", text, re.S):
        blocks[m.group(1)] = b64d(m.group(2))
    return blocks


@dataclass(frozen=True)
class Sm2Public:
    """An SM2 public key: ``point`` is x‖y (64 bytes), already checked to lie on the curve."""

    point: bytes

    @property
    def hex(self) -> str:
        """Uncompressed ``04‖x‖y`` as 130 lowercase hex digits."""
        return "04" + self.point.hex()

    def to_der(self) -> bytes:
        """SubjectPublicKeyInfo (what ``openssl pkey -pubout -outform DER`` writes)."""
        return _der(0x30, _ALG_ID + _der(0x03, b"\x00\x04" + self.point))

    def to_pem(self) -> str:
        return _pem("PUBLIC KEY", self.to_der())


@dataclass(frozen=True, repr=False)
class Sm2Key:
    """An SM2 key pair: ``private`` is the 32-byte scalar d, ``public`` its point d·G."""

    private: bytes
    public: Sm2Public

    def __repr__(self) -> str:
        return f"Sm2Key(public={self.public.hex[:18]}…)"

    @property
    def public_hex(self) -> str:
        return self.public.hex

    def to_pem(self) -> str:
        """Unencrypted PKCS#8 PEM, byte for byte the layout of ``openssl genpkey -algorithm SM2``."""
        ec_key = _der(
            0x30,
            _der(0x02, b"\x01") + _der(0x04, self.private) + _der(0xA1, _der(0x03, b"\x00\x04" + self.public.point)),
        )
        info = _der(0x30, _der(0x02, b"\x00") + _ALG_ID + _der(0x04, ec_key))
        return _pem("PRIVATE KEY", info)

    @classmethod
    def from_pem(cls, text: str | bytes) -> Sm2Key:
        """Read PKCS#8 ``PRIVATE KEY`` or SEC1 ``EC``/``SM2 PRIVATE KEY`` PEM of an SM2 key (with its public key)."""
        blocks = _pem_blocks(text)
        if "ENCRYPTED PRIVATE KEY" in blocks:
            raise GmError("encrypted private keys are not supported; decrypt it first (openssl pkey)")
        if "PRIVATE KEY" in blocks:
            items = _der_items(blocks["PRIVATE KEY"])
            if len(items) < 3 or items[0] != (0x02, b"\x00") or items[1][0] != 0x30 or items[2][0] != 0x04:
                raise GmError("not a PKCS#8 private key")
            _check_algorithm(items[1][1])
            return _from_ec_private_key(items[2][1])
        for label in ("EC PRIVATE KEY", "SM2 PRIVATE KEY"):  # SEC1; `openssl ec` labels SM2 keys so
            if label in blocks:
                return _from_ec_private_key(blocks[label])
        raise GmError("no PRIVATE KEY, EC PRIVATE KEY or SM2 PRIVATE KEY PEM block found")


def _pem(label: str, der: bytes) -> str:
    body = base64.encodebytes(der).decode("ascii").replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def _check_algorithm(alg_id: bytes) -> None:
    """AlgorithmIdentifier content: id-ecPublicKey with the SM2 curve, or the bare SM2 OID."""
    items = [(t, c) for t, c in _der_items(_der(0x30, alg_id)) if t != 0x05]  # ignore NULL
    if items == [(0x06, _OID_EC_PUBLIC_KEY), (0x06, _OID_SM2)] or items == [(0x06, _OID_SM2)]:
        return
    raise GmError("the key is not an SM2 key (curve 1.2.156.10197.1.301 expected)")


def _from_ec_private_key(der: bytes) -> Sm2Key:
    """SEC1 ECPrivateKey {1, d, [0] curve?, [1] public?} → key pair, checked to belong together."""
    items = _der_items(der)
    if len(items) < 2 or items[0] != (0x02, b"\x01") or items[1][0] != 0x04:
        raise GmError("not an EC private key")
    d = int.from_bytes(items[1][1], "big")
    if not 1 <= d < _N - 1 or len(items[1][1]) > 32:
        raise GmError("SM2 private key out of range")
    point: bytes | None = None
    for tag, content in items[2:]:
        if tag == 0xA0 and content != _der(0x06, _OID_SM2):
            raise GmError("the key is not an SM2 key (curve 1.2.156.10197.1.301 expected)")
        if tag == 0xA1:
            t, s, e = _tlv(content, 0)
            if t != 0x03 or e != len(content) or content[s] != 0:
                raise GmError("bad public key in the private key file")
            point = _point(content[s + 1 : e])
    if point is None:
        raise GmError("the private key file does not include the public key; re-export it with openssl pkey")
    key = Sm2Key(d.to_bytes(32, "big"), Sm2Public(point))
    # d·G must be the stored point: a signature made with d verifies under it only if so
    probe = b"huren key check"
    if not sm2_verify(key.public, probe, sm2_sign(key, probe)):
        raise GmError("the public key in the key file does not belong to its private key")
    return key


def generate_key() -> Sm2Key:
    """A fresh SM2 key pair from GmSSL (system CSPRNG)."""
    public, private = _gmssl.sm2_key_generate()
    return Sm2Key(bytes(private), Sm2Public(_point(bytes(public))))


def load_public(hex_or_pem: str | bytes) -> Sm2Public:
    """A public key from hex (``04‖x‖y``, ``x‖y`` or compressed), SPKI PEM, a private key PEM, or raw bytes."""
    if isinstance(hex_or_pem, bytes | bytearray) and b"-----BEGIN" not in hex_or_pem:
        data = bytes(hex_or_pem)
        if data[:1] == b"\x30":
            return _from_spki(data)
        return Sm2Public(_point(data))
    text = hex_or_pem.decode("ascii", "replace") if isinstance(hex_or_pem, bytes | bytearray) else hex_or_pem
    if "-----BEGIN" in text:
        blocks = _pem_blocks(text)
        if "PUBLIC KEY" in blocks:
            return _from_spki(blocks["PUBLIC KEY"])
        return Sm2Key.from_pem(text).public
    try:
        data = bytes.fromhex("".join(text.split()))
    except ValueError as exc:
        raise GmError("SM2 public key is neither hex nor PEM") from exc
    return Sm2Public(_point(data))


def _from_spki(der: bytes) -> Sm2Public:
    items = _der_items(der)
    if len(items) != 2 or items[0][0] != 0x30 or items[1][0] != 0x03 or items[1][1][:1] != b"\x00":
        raise GmError("not a SubjectPublicKeyInfo")
    _check_algorithm(items[0][1])
    return Sm2Public(_point(items[1][1][1:]))


# ------------------------------------------------------------------------------ SM2 encryption


def _public_of(public: Sm2Public | Sm2Key) -> Sm2Public:
    return public.public if isinstance(public, Sm2Key) else public


def _ct_der(x: int, y: int, c3: bytes, c2: bytes) -> bytes:
    return _der(0x30, _der_int(x) + _der_int(y) + _der(0x04, c3) + _der(0x04, c2))


def _ct_from_der(data: bytes) -> tuple[int, int, bytes, bytes]:
    items = _der_items(data)
    tags = [t for t, _ in items]
    if tags != [0x02, 0x02, 0x04, 0x04] or len(items[2][1]) != 32 or not items[3][1]:
        raise GmError("not an SM2 DER ciphertext")
    return _uint(items[0][1]), _uint(items[1][1]), items[2][1], items[3][1]


def _ct_candidates(data: bytes, order: str) -> list[tuple[int, int, bytes, bytes]]:
    """Every reading of ``data`` as (x, y, C3, C2) with C1 on the curve; C3 decides among them."""
    out: list[tuple[int, int, bytes, bytes]] = []
    if data[:1] == b"\x30":
        with contextlib.suppress(GmError):
            out.append(_ct_from_der(data))
    for c1_len in (65, 64, 33):
        if len(data) <= c1_len + 32:
            continue
        c1, rest = data[:c1_len], data[c1_len:]
        if (c1_len == 65 and c1[0] != 4) or (c1_len == 33 and c1[0] not in (2, 3)):
            continue
        if c1_len == 33:
            x = int.from_bytes(c1[1:], "big")
            found = _decompress(c1[0], x)
            if found is None:
                continue
            y = found
        else:
            x, y = int.from_bytes(c1[-64:-32], "big"), int.from_bytes(c1[-32:], "big")
        c3, c2 = (rest[:32], rest[32:]) if order == "C1C3C2" else (rest[-32:], rest[:-32])
        out.append((x, y, c3, c2))
    return [(x, y, c3, c2) for x, y, c3, c2 in out if _on_curve(x, y) and 1 <= len(c2) <= SM2_MAX_PLAINTEXT]


def _check_order(order: str) -> None:
    if order not in ("C1C3C2", "C1C2C3"):
        raise GmError(f"unknown SM2 ciphertext order {order!r}; use C1C3C2 or C1C2C3")


def sm2_encrypt(
    public: Sm2Public | Sm2Key,
    plaintext: bytes,
    order: CipherOrder = "C1C3C2",
    prefix: bool = True,
    *,
    der: bool = False,
) -> bytes:
    """SM2-encrypt 1..255 bytes: raw C1‖C3‖C2 (or C1‖C2‖C3), C1 with the 04 prefix unless
    ``prefix=False``; or, with ``der=True``, the ASN.1 DER form OpenSSL ``pkeyutl`` reads."""
    _check_order(order)
    if not 1 <= len(plaintext) <= SM2_MAX_PLAINTEXT:
        raise GmError(f"SM2 plaintext must be 1..{SM2_MAX_PLAINTEXT} bytes")
    try:
        out = bytes(_gmssl.sm2_encrypt(_public_of(public).point, bytes(plaintext)))
    except _gmssl.GmsslInnerError as exc:
        raise GmError("SM2 encryption failed") from exc
    x, y, c3, c2 = _ct_from_der(out)
    if der:
        return _ct_der(x, y, c3, c2)  # canonical re-encoding (GmSSL's is too, this makes it certain)
    c1 = (b"\x04" if prefix else b"") + x.to_bytes(32, "big") + y.to_bytes(32, "big")
    return c1 + (c3 + c2 if order == "C1C3C2" else c2 + c3)


def sm2_decrypt(key: Sm2Key, ciphertext: bytes, order: CipherOrder = "C1C3C2") -> bytes:
    """Decrypt raw (C1 as 04‖x‖y, x‖y or 02/03‖x; C3 and C2 in ``order``) or DER; C3 is verified."""
    _check_order(order)
    for x, y, c3, c2 in _ct_candidates(bytes(ciphertext), order):
        try:
            return bytes(_gmssl.sm2_decrypt(key.private, _ct_der(x, y, c3, c2)))
        except _gmssl.GmsslInnerError:
            continue  # C3 mismatch: a wrong reading, a wrong key or a tampered ciphertext
    raise GmError("SM2 decryption failed: wrong key, wrong format or tampered ciphertext")


# ------------------------------------------------------------------------- SM3, signatures


def sm3(data: bytes) -> bytes:
    """The SM3 digest (32 bytes)."""
    return bytes(_gmssl.sm3_hash(bytes(data)))


_A_B_G = (
    _A.to_bytes(32, "big")
    + _B.to_bytes(32, "big")
    + bytes.fromhex(
        "32c4ae2c1f1981195f9904466a39c9948fe30bbff2660be1715a4589334c74c7"
        "bc3736a2f4f6779c59bdcee36b692153d0a9877cc62a474002df32e52139f0a0"
    )
)


def _digest(point: bytes, data: bytes, uid: bytes) -> bytes:
    """e = SM3(Z ‖ M), Z = SM3(ENTL ‖ ID ‖ a ‖ b ‖ G ‖ public key) (GM/T 0003.2 §5.5)."""
    if len(uid) >= 8192:
        raise GmError("SM2 signer ID too long")
    z = sm3((len(uid) * 8).to_bytes(2, "big") + bytes(uid) + _A_B_G + point)
    return sm3(z + bytes(data))


def sm2_sign(key: Sm2Key, data: bytes, uid: bytes = DEFAULT_UID) -> bytes:
    """SM3withSM2 over ``data`` with signer ID ``uid`` (Z included); DER ``SEQUENCE {r, s}``.

    ``uid`` defaults to GM/T 0009's 1234567812345678 (GmSSL, BouncyCastle, Hutool). OpenSSL 3.0's
    ``dgst``/``pkeyutl`` use an EMPTY ID unless given ``-sigopt distid:1234567812345678``: ``uid=b""``
    matches them.
    """
    try:
        return bytes(_gmssl.sm2_sign_sm3_digest(key.private, _digest(key.public.point, data, uid)))
    except _gmssl.GmsslInnerError as exc:
        raise GmError("SM2 signing failed") from exc


def sm2_verify(public: Sm2Public | Sm2Key, data: bytes, signature: bytes, uid: bytes = DEFAULT_UID) -> bool:
    """Whether ``signature`` (DER, or raw r‖s of 64 bytes) is a valid SM3withSM2 signature of ``data``."""
    candidates: list[tuple[int, int]] = []
    with contextlib.suppress(GmError):
        items = _der_items(bytes(signature))
        if [t for t, _ in items] == [0x02, 0x02]:
            candidates.append((_uint(items[0][1]), _uint(items[1][1])))
    if len(signature) == 64:
        candidates.append((int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")))
    point = _public_of(public).point
    digest = _digest(point, data, uid)
    for r, s in candidates:
        if not (1 <= r < _N and 1 <= s < _N):
            continue
        try:
            if _gmssl.sm2_verify_sm3_digest(point, digest, _der(0x30, _der_int(r) + _der_int(s))):
                return True
        except _gmssl.GmsslInnerError:
            continue
    return False


# ---------------------------------------------------------------------------- strKey unwrap


@dataclass(frozen=True)
class UnwrapStats:
    hits: int
    misses: int
    size: int
    capacity: int


class KeyUnwrapper:
    """Turns a request's ``strKey`` (Base64 SM2 ciphertext of the 16-byte SM4 key) into the SM4 key.

    Results are kept in a thread-safe LRU of ``cache_size`` entries keyed by the SHA-256 of the
    strKey text (whitespace removed): a client that reuses its key pays the SM2 decryption once.
    ``cache_size=0`` turns the cache off. Failures are never cached.
    """

    def __init__(self, key: Sm2Key, order: str = "C1C3C2", cache_size: int = 4096) -> None:
        _check_order(order)
        if cache_size < 0:
            raise GmError("cache size must be >= 0")
        self._key = key
        self._order: CipherOrder = "C1C3C2" if order == "C1C3C2" else "C1C2C3"
        self._capacity = cache_size
        self._cache: OrderedDict[bytes, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def unwrap(self, str_key_b64: str) -> bytes:
        text = "".join(str_key_b64.split())
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
        with self._lock:
            found = self._cache.get(digest)
            if found is not None:
                self._cache.move_to_end(digest)
                self._hits += 1
                return found
            self._misses += 1
        sm4_key = sm2_decrypt(self._key, b64d(text), self._order)
        if len(sm4_key) != SM4_KEY_SIZE:
            raise GmError(f"strKey must decrypt to a {SM4_KEY_SIZE}-byte SM4 key, got {len(sm4_key)} bytes")
        if self._capacity:
            with self._lock:
                self._cache[digest] = sm4_key
                self._cache.move_to_end(digest)
                while len(self._cache) > self._capacity:
                    self._cache.popitem(last=False)
        return sm4_key

    @property
    def stats(self) -> UnwrapStats:
        with self._lock:
            return UnwrapStats(self._hits, self._misses, len(self._cache), self._capacity)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


# ------------------------------------------------------------------------------ key storage


def _write_new(path: Path, data: bytes, mode: int, *, replace: bool) -> None:
    """Write ``path`` atomically: a reader never sees half a file. Without ``replace`` an existing
    file wins (FileExistsError)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def init_platform_key(key_dir: Path, *, force: bool = False) -> Sm2Key:
    """Generate the platform SM2 key pair: ``key_dir/sm2_private.pem`` (PKCS#8, mode 0600) and
    ``key_dir/sm2_public.txt`` (hex 04‖x‖y, 0600 too: every file huren writes is private; `huren keys
    public` prints it). Refuses to replace an existing key unless ``force``."""
    path = key_dir / PRIVATE_KEY_FILE
    try:
        key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.exists() and not force:
            raise FileExistsError(path)
        key = generate_key()
        _write_new(path, key.to_pem().encode("ascii"), 0o600, replace=force)
        _write_new(key_dir / PUBLIC_KEY_FILE, (key.public_hex + "\n").encode("ascii"), 0o600, replace=True)
    except FileExistsError as exc:
        raise GmError(
            f"{path} already exists; use --force to replace it (hospitals then need the new public key)"
        ) from exc
    except OSError as exc:
        raise GmError(f"cannot write the key under {key_dir}: {exc.strerror or exc}") from exc
    return key


def load_platform_key(key_dir: Path) -> Sm2Key:
    """The platform SM2 key pair from ``key_dir/sm2_private.pem``."""
    path = key_dir / PRIVATE_KEY_FILE
    try:
        text = path.read_bytes()
    except FileNotFoundError as exc:
        raise GmError(f"no platform SM2 key at {path}; create one with `huren keys init`") from exc
    except OSError as exc:
        raise GmError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return Sm2Key.from_pem(text)
    except GmError as exc:
        raise GmError(f"{path}: {exc}") from exc
