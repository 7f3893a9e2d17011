"""SM2 (GB/T 32918): keys, public-key encryption and SM3withSM2 signatures.

* Encryption, signatures and key generation through ``gmssl-pyx`` (a C binding of GmSSL 3.2: k comes
  from the system CSPRNG and decryption verifies C3).
* Ciphertexts are accepted as raw C1‖C3‖C2 (C1 as ``04‖x‖y``, bare ``x‖y`` or compressed
  ``02/03‖x``), as raw C1‖C2‖C3 when so configured, and as ASN.1 DER
  ``SEQUENCE {INTEGER x, INTEGER y, OCTET STRING C3, OCTET STRING C2}`` (OpenSSL, GmSSL, BouncyCastle).
  Every plausible reading is tried; only one whose C3 verifies is believed.
* Private keys are read and written as unencrypted PKCS#8 PEM exactly as ``openssl genpkey -algorithm
  SM2`` writes it (id-ecPublicKey + curve OID 1.2.156.10197.1.301, public key included), so OpenSSL and
  GmSSL read it; SEC1 ``EC PRIVATE KEY`` (``SM2 PRIVATE KEY`` from ``openssl ec``) is also read.
  Public keys: hex ``04‖x‖y`` (also bare or compressed) or SPKI PEM. The platform's key files are
  :mod:`huren.crypto.keyfiles`.

Every failure raises :class:`~huren.crypto.errors.GmError` (a ``ValueError``) with an English message
fit to show a caller.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Literal

import gmssl_pyx as _gmssl  # type: ignore[import-untyped]

from huren.crypto import asn1
from huren.crypto.errors import GmError
from huren.crypto.sm3 import sm3

__all__ = [
    "DEFAULT_UID",
    "SM2_MAX_PLAINTEXT",
    "CipherOrder",
    "Sm2Key",
    "Sm2Public",
    "check_order",
    "generate_key",
    "load_public",
    "sm2_decrypt",
    "sm2_encrypt",
    "sm2_sign",
    "sm2_verify",
]

CipherOrder = Literal["C1C3C2", "C1C2C3"]
DEFAULT_UID = b"1234567812345678"  # the default signer ID of GM/T 0009
SM2_MAX_PLAINTEXT = 255  # GmSSL's limit; an SM4 key is 16

# the SM2 curve (GM/T 0003.5): y² = x³ + ax + b over F_p, order n, cofactor 1
_P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
_A = _P - 3
_B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
_N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123

# DER contents of the object identifiers
_OID_EC_PUBLIC_KEY = bytes.fromhex("2a8648ce3d0201")  # 1.2.840.10045.2.1
_OID_SM2 = bytes.fromhex("2a811ccf5501822d")  # 1.2.156.10197.1.301
_ALG_ID = bytes.fromhex("301306072a8648ce3d020106082a811ccf5501822d")


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
        return asn1.der(0x30, _ALG_ID + asn1.der(0x03, b"\x00\x04" + self.point))

    def to_pem(self) -> str:
        return asn1.pem("PUBLIC KEY", self.to_der())


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
        ec_key = asn1.der(
            0x30,
            asn1.der(0x02, b"\x01")
            + asn1.der(0x04, self.private)
            + asn1.der(0xA1, asn1.der(0x03, b"\x00\x04" + self.public.point)),
        )
        info = asn1.der(0x30, asn1.der(0x02, b"\x00") + _ALG_ID + asn1.der(0x04, ec_key))
        return asn1.pem("PRIVATE KEY", info)

    @classmethod
    def from_pem(cls, text: str | bytes) -> Sm2Key:
        """Read PKCS#8 ``PRIVATE KEY`` or SEC1 ``EC``/``SM2 PRIVATE KEY`` PEM of an SM2 key (with its public key)."""
        blocks = asn1.pem_blocks(text)
        if "ENCRYPTED PRIVATE KEY" in blocks:
            raise GmError("encrypted private keys are not supported; decrypt it first (openssl pkey)")
        if "PRIVATE KEY" in blocks:
            items = asn1.der_items(blocks["PRIVATE KEY"])
            if len(items) < 3 or items[0] != (0x02, b"\x00") or items[1][0] != 0x30 or items[2][0] != 0x04:
                raise GmError("not a PKCS#8 private key")
            _check_algorithm(items[1][1])
            return _from_ec_private_key(items[2][1])
        for label in ("EC PRIVATE KEY", "SM2 PRIVATE KEY"):  # SEC1; `openssl ec` labels SM2 keys so
            if label in blocks:
                return _from_ec_private_key(blocks[label])
        raise GmError("no PRIVATE KEY, EC PRIVATE KEY or SM2 PRIVATE KEY PEM block found")


def _check_algorithm(alg_id: bytes) -> None:
    """AlgorithmIdentifier content: id-ecPublicKey with the SM2 curve, or the bare SM2 OID."""
    items = [(t, c) for t, c in asn1.der_items(asn1.der(0x30, alg_id)) if t != 0x05]  # ignore NULL
    if items == [(0x06, _OID_EC_PUBLIC_KEY), (0x06, _OID_SM2)] or items == [(0x06, _OID_SM2)]:
        return
    raise GmError("the key is not an SM2 key (curve 1.2.156.10197.1.301 expected)")


def _from_ec_private_key(der: bytes) -> Sm2Key:
    """SEC1 ECPrivateKey {1, d, [0] curve?, [1] public?} → key pair, checked to belong together."""
    items = asn1.der_items(der)
    if len(items) < 2 or items[0] != (0x02, b"\x01") or items[1][0] != 0x04:
        raise GmError("not an EC private key")
    d = int.from_bytes(items[1][1], "big")
    if not 1 <= d < _N - 1 or len(items[1][1]) > 32:
        raise GmError("SM2 private key out of range")
    point: bytes | None = None
    for tag, content in items[2:]:
        if tag == 0xA0 and content != asn1.der(0x06, _OID_SM2):
            raise GmError("the key is not an SM2 key (curve 1.2.156.10197.1.301 expected)")
        if tag == 0xA1:
            t, s, e = asn1.tlv(content, 0)
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
        blocks = asn1.pem_blocks(text)
        if "PUBLIC KEY" in blocks:
            return _from_spki(blocks["PUBLIC KEY"])
        return Sm2Key.from_pem(text).public
    try:
        data = bytes.fromhex("".join(text.split()))
    except ValueError as exc:
        raise GmError("SM2 public key is neither hex nor PEM") from exc
    return Sm2Public(_point(data))


def _from_spki(der: bytes) -> Sm2Public:
    items = asn1.der_items(der)
    if len(items) != 2 or items[0][0] != 0x30 or items[1][0] != 0x03 or items[1][1][:1] != b"\x00":
        raise GmError("not a SubjectPublicKeyInfo")
    _check_algorithm(items[0][1])
    return Sm2Public(_point(items[1][1][1:]))


# ------------------------------------------------------------------------------ SM2 encryption


def _public_of(public: Sm2Public | Sm2Key) -> Sm2Public:
    return public.public if isinstance(public, Sm2Key) else public


def _ct_der(x: int, y: int, c3: bytes, c2: bytes) -> bytes:
    return asn1.der(0x30, asn1.der_int(x) + asn1.der_int(y) + asn1.der(0x04, c3) + asn1.der(0x04, c2))


def _ct_from_der(data: bytes) -> tuple[int, int, bytes, bytes]:
    items = asn1.der_items(data)
    tags = [t for t, _ in items]
    if tags != [0x02, 0x02, 0x04, 0x04] or len(items[2][1]) != 32 or not items[3][1]:
        raise GmError("not an SM2 DER ciphertext")
    return asn1.uint(items[0][1]), asn1.uint(items[1][1]), items[2][1], items[3][1]


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


def check_order(order: str) -> None:
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
    check_order(order)
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
    check_order(order)
    for x, y, c3, c2 in _ct_candidates(bytes(ciphertext), order):
        try:
            return bytes(_gmssl.sm2_decrypt(key.private, _ct_der(x, y, c3, c2)))
        except _gmssl.GmsslInnerError:
            continue  # C3 mismatch: a wrong reading, a wrong key or a tampered ciphertext
    raise GmError("SM2 decryption failed: wrong key, wrong format or tampered ciphertext")


# ------------------------------------------------------------------------------ signatures


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
        items = asn1.der_items(bytes(signature))
        if [t for t, _ in items] == [0x02, 0x02]:
            candidates.append((asn1.uint(items[0][1]), asn1.uint(items[1][1])))
    if len(signature) == 64:
        candidates.append((int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")))
    point = _public_of(public).point
    digest = _digest(point, data, uid)
    for r, s in candidates:
        if not (1 <= r < _N and 1 <= s < _N):
            continue
        try:
            if _gmssl.sm2_verify_sm3_digest(point, digest, asn1.der(0x30, asn1.der_int(r) + asn1.der_int(s))):
                return True
        except _gmssl.GmsslInnerError:
            continue
    return False
