"""Field encryption at rest: an AEAD in a versioned envelope, and a keyed blind index for lookups.

**Algorithm.** SM4-GCM (SM4 block cipher, GB/T 32907, in GCM mode as in RFC 8998; 128-bit key,
96-bit random nonce, 128-bit tag), through ``cryptography``'s ``Cipher(algorithms.SM4, modes.GCM)``
— ``cryptography`` has no SM4 class among its one-shot AEADs, but its GCM mode over SM4 is the same
construction, and the OpenSSL it is built on here supports it. SM4 because the platform's other
cryptography is already GM (SM2 / SM3 / SM4, the seeds' envelope) and Chinese health-data rules
expect national algorithms for data at rest. Where the OpenSSL lacks SM4 (some FIPS builds),
AES-256-GCM is used instead; the envelope names its algorithm, so both stay readable. AES-256-GCM
values go through ``cryptography``'s one-shot ``AESGCM``, and SM4-GCM values up to :data:`SHORT`
bytes (the fields) through GmSSL's one-call SM4-GCM (``gmssl-pyx``, already the SM2 / SM3
library): the same envelope either way, tested against the streaming construction both ways. What a
field costs with each is measured by ``bench/aead.py`` (``docs/performance.md``): SM4 has no AES-NI,
so large payloads seal an order of magnitude slower with it.

**Envelope** (bytes): ``version (1) | algorithm (1) | key id (4, big-endian) | nonce (12) |
ciphertext ‖ tag (16)``. The header is authenticated together with the associated data, which binds
a value to where it lives (``table``/``column``, see :func:`column_ad`): a ciphertext moved to
another column, or given another key id, does not open. Text columns hold
``"enc1:" + base64url(envelope)`` (:meth:`FieldCipher.seal_text`).

**Keys.** Each data key is a 32-byte secret with an integer key id (the keyring keeps them in
``keys/``, mode 0600, see ``huren.store.keys``); the cipher key is derived from it with HKDF-SHA256,
so a secret is never used directly. New values are sealed under the active key id; every known key
id still opens (so ``huren keys rotate-data`` can re-encrypt in batches). The blind index uses a
separate secret that does not rotate with the data key (rotation must not break lookups), with one
derived key per *domain* (``id_no``, ``name`` …): equal values in one domain give equal indexes,
across domains they do not.  Other secrets that must outlive data-key rotation (the opaque report
refs of ``huren.crypto.opaque``) are derived from it per purpose (:meth:`FieldCipher.derive_secret`).

Limits: a random 96-bit nonce keeps GCM safe for about 2^32 values per key — rotate well before
that; the blind index reveals which rows share a value (equality), by design, to whoever reads the
table — nothing about the value itself without the index secret.
"""

from __future__ import annotations

import hmac
import os
import re
import struct
import unicodedata
from collections.abc import Callable, Mapping
from typing import Final

import gmssl_pyx as _gmssl  # type: ignore[import-untyped]
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.backends.openssl import backend
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from huren.crypto import b64url

__all__ = [
    "AES_256_GCM",
    "SM4_GCM",
    "FieldCipher",
    "SealError",
    "column_ad",
    "default_algorithm",
    "is_sealed_text",
    "normalise",
]

VERSION: Final = 1
SM4_GCM: Final = 1
AES_256_GCM: Final = 2
NAMES: Final = {SM4_GCM: "SM4-GCM", AES_256_GCM: "AES-256-GCM"}
_KEY_LEN: Final = {SM4_GCM: 16, AES_256_GCM: 32}
NONCE_LEN: Final = 12
TAG_LEN: Final = 16
_HEADER: Final = struct.Struct(">BBI")
HEADER_LEN: Final = _HEADER.size + NONCE_LEN
TEXT_PREFIX: Final = "enc1:"
SECRET_LEN: Final = 32
#: values of 1 to this many bytes are sealed and opened with GmSSL's SM4-GCM (one C call, ~2x cheaper
#: for a field than cryptography's streaming Cipher), longer ones with OpenSSL's (faster in bulk)
SHORT: Final = 4096
BLIND_LEN: Final = 16  # bytes of HMAC-SHA256 kept: 128 bits, collisions out of reach
_WS = re.compile(r"\s+")


class SealError(ValueError):
    """A value that does not open: tampered with, moved, under an unknown key, or not an envelope."""


def sm4_gcm_supported() -> bool:
    return bool(backend.cipher_supported(algorithms.SM4(b"\0" * 16), modes.GCM(b"\0" * NONCE_LEN)))


def default_algorithm() -> int:
    """SM4-GCM where this OpenSSL supports it, else AES-256-GCM."""
    return SM4_GCM if sm4_gcm_supported() else AES_256_GCM


def column_ad(table: str, column: str, context: str = "") -> bytes:
    """The associated data of a value stored in ``table.column`` (plus an optional context, such as
    an institution code, that must also match when it is opened)."""
    parts = [p.encode() for p in (table, column, context)]
    return b"huren/field/v1" + b"".join(struct.pack(">H", len(p)) + p for p in parts)  # unambiguous


def normalise(value: str) -> str:
    """What the blind index sees: NFKC (full-width digits and letters become ASCII), outer
    whitespace removed, inner runs of whitespace made one space, letters upper-cased (an ID number's
    ``x`` is ``X``)."""
    if value.isascii() and value.isalnum():  # the common case (an ID number): NFKC leaves it alone
        return value.upper()
    return _WS.sub(" ", unicodedata.normalize("NFKC", value)).strip().upper()


def _hkdf(secret: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(secret)


class FieldCipher:
    """Seals and opens values under the data keys, and computes blind indexes.

    ``keys`` maps key id → 32-byte secret; ``active`` is the key id new values are sealed under;
    ``index_secret`` (32 bytes) keys the blind index. ``resolve`` is asked for the secret of a key
    id this cipher does not know (a key added by a rotation in another process)."""

    def __init__(
        self,
        keys: Mapping[int, bytes],
        active: int,
        index_secret: bytes,
        *,
        algorithm: int | None = None,
        resolve: Callable[[int], bytes | None] | None = None,
    ) -> None:
        if active not in keys:
            raise SealError(f"active data key {active} is not among the keys")
        if any(len(s) != SECRET_LEN for s in keys.values()) or len(index_secret) != SECRET_LEN:
            raise SealError(f"data and index secrets must be {SECRET_LEN} bytes")
        if any(not 0 < k < 2**32 for k in keys):
            raise SealError("key ids are 1 … 2^32-1")
        self.algorithm = default_algorithm() if algorithm is None else algorithm
        if self.algorithm not in NAMES:
            raise SealError(f"unknown algorithm {self.algorithm}")
        self.active = active
        self._secrets = dict(keys)
        self._resolve = resolve
        self._derived: dict[tuple[int, int], algorithms.SM4 | algorithms.AES] = {}
        self._aesgcm: dict[int, AESGCM] = {}  # one-shot AES-GCM per key id: the same bytes, ~3x cheaper per value
        self._ads: dict[tuple[str, str, str], bytes] = {}
        self._index_secret = bytes(index_secret)
        self._blind_keys: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return f"FieldCipher({NAMES[self.algorithm]}, active key {self.active}, keys {sorted(self._secrets)})"

    @property
    def key_ids(self) -> list[int]:
        return sorted(self._secrets)

    def _key(self, algorithm: int, kid: int) -> algorithms.SM4 | algorithms.AES:
        """The block cipher keyed for ``kid`` (derived once, kept: sealing a field is on hot paths)."""
        k = self._derived.get((algorithm, kid))
        if k is None:
            secret = self._secrets.get(kid)
            if secret is None and self._resolve is not None:
                secret = self._resolve(kid)
                if secret is not None:
                    if len(secret) != SECRET_LEN:
                        raise SealError(f"data key {kid} is not {SECRET_LEN} bytes")
                    self._secrets[kid] = secret
            if secret is None:
                raise SealError(f"unknown data key id {kid}")
            info = b"huren/aead/v1/" + NAMES[algorithm].encode()
            k = self._derived[(algorithm, kid)] = _algorithm(algorithm, _hkdf(secret, info, _KEY_LEN[algorithm]))
        return k

    # -- bytes ----------------------------------------------------------------------------------
    def seal(self, plaintext: bytes, ad: bytes) -> bytes:
        """The envelope of ``plaintext`` under the active key, bound to ``ad``."""
        nonce = os.urandom(NONCE_LEN)
        header = _HEADER.pack(VERSION, self.algorithm, self.active) + nonce
        if self.algorithm == AES_256_GCM:
            return header + self._aes(self.active).encrypt(nonce, plaintext, header + ad)
        key = self._key(self.algorithm, self.active)
        if 0 < len(plaintext) <= SHORT:  # a field: one C call of GmSSL's SM4-GCM, the same bytes
            body, tag = _gmssl.sm4_gcm_encrypt(key.key, nonce, header + ad, plaintext)
            return header + bytes(body) + bytes(tag)
        enc = Cipher(key, modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(header + ad)
        body = enc.update(plaintext) + enc.finalize()
        return header + body + enc.tag

    def open(self, envelope: bytes, ad: bytes) -> bytes:
        """The plaintext of an envelope sealed with the same ``ad``; SealError otherwise."""
        version, algorithm, kid = self.header(envelope)
        if version != VERSION or algorithm not in NAMES:
            raise SealError(f"unknown envelope version {version} / algorithm {algorithm}")
        if len(envelope) < HEADER_LEN + TAG_LEN:
            raise SealError("envelope too short")
        if algorithm == AES_256_GCM:
            try:
                return self._aes(kid).decrypt(envelope[_HEADER.size : HEADER_LEN], envelope[HEADER_LEN:], envelope[:HEADER_LEN] + ad)
            except InvalidTag:
                raise SealError("value does not open: tampered with, moved to another column, or wrong key") from None
        key = self._key(algorithm, kid)
        header, body, tag = envelope[:HEADER_LEN], envelope[HEADER_LEN:-TAG_LEN], envelope[-TAG_LEN:]
        if 0 < len(body) <= SHORT:
            try:
                return bytes(_gmssl.sm4_gcm_decrypt(key.key, header[_HEADER.size :], header + ad, body, tag))
            except _gmssl.GmsslInnerError:  # authentication failed (InvalidValueError) or a malformed value
                raise SealError("value does not open: tampered with, moved to another column, or wrong key") from None
        dec = Cipher(key, modes.GCM(header[_HEADER.size :], tag)).decryptor()
        dec.authenticate_additional_data(header + ad)
        try:
            return dec.update(body) + dec.finalize()
        except InvalidTag:
            raise SealError("value does not open: tampered with, moved to another column, or wrong key") from None

    def _aes(self, kid: int) -> AESGCM:
        a = self._aesgcm.get(kid)
        if a is None:
            a = self._aesgcm[kid] = AESGCM(self._key(AES_256_GCM, kid).key)
        return a

    @staticmethod
    def header(envelope: bytes) -> tuple[int, int, int]:
        """(version, algorithm, key id) of an envelope, without opening it."""
        if len(envelope) < HEADER_LEN:
            raise SealError("not an envelope (too short)")
        version, algorithm, kid = _HEADER.unpack_from(envelope)
        return int(version), int(algorithm), int(kid)

    def needs_rekey(self, envelope: bytes) -> bool:
        """Whether a value is sealed under another key or algorithm than new values are."""
        _, algorithm, kid = self.header(envelope)
        return kid != self.active or algorithm != self.algorithm

    # -- text columns ---------------------------------------------------------------------------
    def _ad(self, table: str, column: str, context: str) -> bytes:
        ad = self._ads.get((table, column, context))
        if ad is None:
            ad = column_ad(table, column, context)
            if len(self._ads) < 1024:  # contexts (institution codes) are few; never unbounded
                self._ads[(table, column, context)] = ad
        return ad

    def seal_text(self, value: str, table: str, column: str, context: str = "") -> str:
        return TEXT_PREFIX + b64url.encode(self.seal(value.encode(), self._ad(table, column, context)))

    def open_text(self, token: str, table: str, column: str, context: str = "") -> str:
        if not is_sealed_text(token):
            raise SealError(f"{table}.{column} holds no sealed value")
        try:
            envelope = b64url.decode(token[len(TEXT_PREFIX) :])
        except ValueError:
            raise SealError(f"{table}.{column}: damaged envelope") from None
        try:
            return self.open(envelope, self._ad(table, column, context)).decode()
        except UnicodeDecodeError:  # cannot happen for a value that authenticated; kept explicit
            raise SealError(f"{table}.{column}: not UTF-8") from None

    # -- blind index ----------------------------------------------------------------------------
    def blind(self, value: str, domain: str) -> str:
        """The keyed blind index of ``value`` in ``domain`` (hex, 32 characters): HMAC-SHA256 of the
        normalised value under a key derived for the domain from the index secret."""
        key = self._blind_keys.get(domain)
        if key is None:
            key = self._blind_keys[domain] = _hkdf(self._index_secret, b"huren/blind-index/v1/" + domain.encode(), 32)
        return hmac.digest(key, normalise(value).encode(), "sha256")[:BLIND_LEN].hex()

    def derive_secret(self, purpose: str) -> bytes:
        """A 32-byte secret for ``purpose`` (e.g. ``report-refs``), derived with HKDF from the
        blind-index secret under its own label: stable across data-key and token-secret rotation,
        unrelated to the blind-index keys and to every other purpose's secret."""
        if not purpose:
            raise SealError("a derived secret needs a purpose")
        return _hkdf(self._index_secret, b"huren/derived-secret/v1/" + purpose.encode(), SECRET_LEN)


def is_sealed_text(value: str) -> bool:
    return value.startswith(TEXT_PREFIX)


def _algorithm(algorithm: int, key: bytes) -> algorithms.SM4 | algorithms.AES:
    return algorithms.SM4(key) if algorithm == SM4_GCM else algorithms.AES(key)
