"""What the gateway keeps at rest is sealed (issue 10 §1.8): the outbox's payloads, keys, reasons
and attachments, and the preload cache's answers and decisions hold no ID number and no name in
clear; rows are found by a keyed blind index.

**Keys.** The gateway's data keys are one file in ``keys/`` beside its outbox (``keys/data.keys``,
0600, directory 0700, generated on first start), in the platform's format
(:mod:`huren.crypto.datakeys`); ``huren gateway keys rotate-data`` adds a key and re-seals.
Back the file up with the outbox: without it, nothing queued can be read.

**Algorithm.** SM4-GCM (:mod:`huren.crypto.aead`, as on the platform; AES-256-GCM where the
OpenSSL lacks SM4). A JSON value (a payload, a cached answer) is compressed (zlib, level 1)
before it is sealed: SM4 has no hardware help here, and a report's JSON shrinks about eight-fold,
so compressing and sealing cost less than sealing alone and the file is smaller. Attachments
(PDFs, already compressed) are sealed as they are.

**Binding.** Every value is sealed with associated data naming its table, column and row
(:func:`huren.crypto.aead.column_ad`): a value copied to another row or column does not open.

Ground floor and gateway only: no platform module.
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path
from typing import Final

from huren.crypto import aead
from huren.crypto.datakeys import FILE_NAME, DataKeys

KEY_DIR: Final = "keys"
GUARDS: Final = "出站队列中的待上传记录与预加载缓存"
_LEVEL: Final = 1  # zlib: fast; a report's JSON still shrinks ~8x


def data_keys(beside: str | Path) -> DataKeys:
    """The gateway's data-key file: ``keys/data.keys`` in the directory ``beside`` (the
    outbox's directory)."""
    return DataKeys(Path(beside) / KEY_DIR / FILE_NAME, guards=GUARDS)


def cipher_beside(path: str | Path) -> aead.FieldCipher:
    """The field cipher over the data keys beside the file at ``path`` (created on first use)."""
    return data_keys(Path(path).parent).cipher()


class Sealer:
    """Sealing of the gateway's rows under one field cipher."""

    def __init__(self, cipher: aead.FieldCipher) -> None:
        self.cipher = cipher
        # a keyed digest: the outbox's content digests reveal nothing to whoever guesses a payload
        self._digest_key = bytes.fromhex(cipher.blind("outbox", "gateway.digest-key"))

    # -- blind indexes -----------------------------------------------------------------------
    def index(self, value: str, domain: str) -> str:
        """The exact blind index of ``value``: unlike the platform's lookups (which normalise
        case and width), two different strings never share an index (hex is what is indexed)."""
        return self.cipher.blind(value.encode().hex(), domain)

    def digest(self, raw: bytes) -> bytes:
        """A content digest keyed by the index secret (stable across data-key rotations)."""
        return hashlib.blake2b(raw, digest_size=16, key=self._digest_key).digest()

    # -- values ------------------------------------------------------------------------------
    def seal(self, data: bytes, table: str, column: str, row: str) -> bytes:
        return self.cipher.seal(data, aead.column_ad(table, column, row))

    def open(self, envelope: bytes, table: str, column: str, row: str) -> bytes:
        return self.cipher.open(envelope, aead.column_ad(table, column, row))

    def seal_json(self, data: bytes, table: str, column: str, row: str) -> bytes:
        """A JSON document (bytes), compressed then sealed."""
        return self.seal(zlib.compress(data, _LEVEL), table, column, row)

    def open_json(self, envelope: bytes, table: str, column: str, row: str) -> bytes:
        return zlib.decompress(self.open(envelope, table, column, row))

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
