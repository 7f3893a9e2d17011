"""What the gateway keeps at rest is sealed (issue 10 §1.8): the outbox's payloads, keys, reasons
and attachments, and the preload cache's answers and decisions hold no ID number and no name in
clear; rows are found by a keyed blind index.

**Keys.** The gateway's data keys are one file in ``keys/`` beside its outbox (``keys/data.keys``,
0600, directory 0700, generated on first start), in the platform's format
(:mod:`huren.crypto.datakeys`); ``huren gateway keys rotate-data`` adds a key and re-seals.
Back the file up with the outbox: without it, nothing queued can be read.

**Algorithm.** ``[outbox] cipher`` in the gateway's TOML: ``"aes-256-gcm"`` (the default) or
``"sm4-gcm"`` (:mod:`huren.crypto.aead`; the envelope names its algorithm, so a file written under
one reads under the other, and ``keys rotate-data`` moves everything to the configured one).
AES-256-GCM by default because the outbox is on the hospital's write path: a lab report's JSON is
about 10 KB, sealing it with SM4-GCM (no hardware help, ~100 MB/s) costs more than the whole
outbox write did before (~70 µs), while AES-GCM with AES-NI costs ~7 µs — the platform's rule
(SM4 unless it costs a throughput target, ``docs/security.md``) applied. Under SM4-GCM a JSON value
is compressed first (zlib level 1; ~8x smaller, which makes compressing and sealing cheaper than
sealing alone); under AES-GCM it is not (compressing would cost more than sealing). Attachments
(PDFs, already compressed) are sealed as they are.

**Binding.** Every value is sealed with associated data naming its table, column and row
(:func:`huren.crypto.aead.column_ad`): a value copied to another row or column does not open.

Ground floor and gateway only: no platform module.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path
from typing import Final

from huren.crypto import aead
from huren.crypto.datakeys import FILE_NAME, DataKeys

KEY_DIR: Final = "keys"
GUARDS: Final = "出站队列中的待上传记录与预加载缓存"
ALGORITHMS: Final = {"aes-256-gcm": aead.AES_256_GCM, "sm4-gcm": aead.SM4_GCM}
DEFAULT_CIPHER: Final = "aes-256-gcm"
_LEVEL: Final = 1  # zlib: fast; a report's JSON still shrinks ~8x
_ZLIB: Final = 0x78  # the first byte of a zlib stream; a JSON document never starts with it


def data_keys(beside: str | Path, cipher: str = DEFAULT_CIPHER) -> DataKeys:
    """The gateway's data-key file: ``keys/data.keys`` in the directory ``beside`` (the
    outbox's directory), sealing with ``cipher`` (a name of :data:`ALGORITHMS`)."""
    return DataKeys(Path(beside) / KEY_DIR / FILE_NAME, algorithm=ALGORITHMS[cipher], guards=GUARDS)


def cipher_beside(path: str | Path, cipher: str = DEFAULT_CIPHER) -> aead.FieldCipher:
    """The field cipher over the data keys beside the file at ``path`` (created on first use)."""
    return data_keys(Path(path).parent, cipher).cipher()


class Sealer:
    """Sealing of the gateway's rows under one field cipher."""

    def __init__(self, cipher: aead.FieldCipher) -> None:
        self.cipher = cipher
        # a keyed digest: the outbox's content digests reveal nothing to whoever guesses a payload
        self._digest_key = cipher.derive_secret("gateway/outbox-digest")
        self._prefixes: dict[tuple[str, str], bytes] = {}
        self._index_keys: dict[str, bytes] = {}

    def ad(self, table: str, column: str, row: str) -> bytes:
        """``aead.column_ad(table, column, row)``, its constant part computed once (a row's id
        changes with every value)."""
        prefix = self._prefixes.get((table, column))
        if prefix is None:
            prefix = self._prefixes[(table, column)] = aead.column_ad(table, column)[: -2]  # without the empty context
        r = row.encode()
        return prefix + struct.pack(">H", len(r)) + r

    # -- blind indexes -----------------------------------------------------------------------
    def index(self, value: str, domain: str) -> str:
        """The exact blind index of ``value`` in ``domain`` (hex, 32 characters): keyed BLAKE2b
        (a MAC, ~0.5 µs; it is on the outbox's write path) under a key derived for the domain
        from the index secret (``FieldCipher.derive_secret``), which never rotates. Unlike the
        platform's lookups it does not normalise case or width: two different strings never
        share an index."""
        key = self._index_keys.get(domain)
        if key is None:
            key = self._index_keys[domain] = self.cipher.derive_secret(f"gateway/blind-index/{domain}")
        return hashlib.blake2b(value.encode(), digest_size=16, key=key).hexdigest()

    def digest(self, raw: bytes) -> bytes:
        """A content digest keyed by the index secret (stable across data-key rotations)."""
        return hashlib.blake2b(raw, digest_size=16, key=self._digest_key).digest()

    # -- values ------------------------------------------------------------------------------
    def seal(self, data: bytes, table: str, column: str, row: str) -> bytes:
        return self.cipher.seal(data, self.ad(table, column, row))

    def open(self, envelope: bytes, table: str, column: str, row: str) -> bytes:
        return self.cipher.open(envelope, self.ad(table, column, row))

    def _pack(self, data: bytes) -> bytes:
        return zlib.compress(data, _LEVEL) if self.cipher.algorithm == aead.SM4_GCM else data

    @staticmethod
    def _unpack(data: bytes) -> bytes:
        return zlib.decompress(data) if data[:1] == bytes([_ZLIB]) else data

    def seal_json(self, data: bytes, table: str, column: str, row: str) -> bytes:
        """A JSON document (bytes) sealed; compressed first under SM4-GCM."""
        return self.seal(self._pack(data), table, column, row)

    def open_json(self, envelope: bytes, table: str, column: str, row: str) -> bytes:
        return self._unpack(self.open(envelope, table, column, row))

    def seal_keyed(self, key: str, data: bytes, table: str, column: str, row: str) -> bytes:
        """A record's key and its JSON document in one envelope (one seal per record on the
        outbox's write path): ``len(key) (4) | key | document``."""
        k = key.encode()
        return self.seal(struct.pack(">I", len(k)) + k + self._pack(data), table, column, row)

    def open_keyed(self, envelope: bytes, table: str, column: str, row: str) -> tuple[str, bytes]:
        data = self.open(envelope, table, column, row)
        (n,) = struct.unpack_from(">I", data)
        return data[4 : 4 + n].decode(), self._unpack(data[4 + n :])

    def seal_text(self, text: str | None, table: str, column: str, row: str) -> bytes | None:
        return None if text is None else self.seal(text.encode(), table, column, row)

    def open_text(self, envelope: bytes | str | None, table: str, column: str, row: str) -> str | None:
        if envelope is None:
            return None
        if isinstance(envelope, str):  # written before the outbox was sealed (never left after conversion)
            return envelope
        return self.open(envelope, table, column, row).decode()

    def reseal(self, envelope: bytes, table: str, column: str, row: str) -> bytes | None:
        """The value sealed again under the active key, or None when it already is."""
        if not self.cipher.needs_rekey(envelope):
            return None
        ad = aead.column_ad(table, column, row)
        return self.cipher.seal(self.cipher.open(envelope, ad), ad)


def is_sealed(value: object) -> bool:
    """Whether a stored value is an envelope (bytes starting with the envelope version)."""
    return isinstance(value, bytes) and len(value) > aead.HEADER_LEN and value[0] == aead.VERSION
