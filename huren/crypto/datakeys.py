"""The data-key file (``keys/data.keys``): the secrets of field encryption, one format for the
platform (``<data_dir>/keys/``, through ``huren.store.keys.Keyring``) and the hospital gateway
(``keys/`` beside its outbox).

The file is JSON, mode 0600 in a 0700 directory, written atomically::

    {"format": 1, "active": 2, "keys": {"1": "<64 hex>", "2": "<64 hex>"}, "index": "<64 hex>"}

``keys`` maps a key id to a 32-byte data secret; ``active`` is the key id new values are sealed
under; ``index`` keys the blind index and never rotates (lookups must survive a rotation). It is
generated on first use (of two processes racing, the first link wins and both use its keys); a
rotation adds a key and makes it active, and every older key stays, so values sealed under them
still open until they are re-sealed. A file that cannot be read is never replaced: that would
make everything sealed under it unreadable.

Ground floor: imports only ``huren.crypto``, ``huren.errors`` and ``huren.files``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import threading
from pathlib import Path
from typing import Any, Final

from huren.crypto import aead
from huren.errors import NotConfigured
from huren.files import atomic_write

log = logging.getLogger("huren.keys")

FILE_NAME: Final = "data.keys"
FORMAT: Final = 1


class DataKeys:
    """The data-key file at ``path``: read (created on first use), rotated, turned into the
    :class:`~huren.crypto.aead.FieldCipher` over it. ``guards`` names, for the operator, what is
    sealed under these keys (the message when the file is unusable says it would be lost)."""

    def __init__(self, path: str | Path, *, algorithm: int | None = None, guards: str = "已加密保存的数据") -> None:
        self.path = Path(path)
        self.algorithm = algorithm
        self.guards = guards
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DataKeys({self.path})"

    def read(self, *, create: bool) -> dict[str, Any]:
        """The file's document, checked; generated first when ``create`` and it does not exist.
        NotConfigured naming the file when it is unusable."""
        if create and not self.path.exists():
            first = {
                "format": FORMAT,
                "active": 1,
                "keys": {"1": secrets.token_hex(aead.SECRET_LEN)},
                "index": secrets.token_hex(aead.SECRET_LEN),
            }
            with contextlib.suppress(FileExistsError):  # another process was first: use its keys
                atomic_write(self.path, _dump(first), replace=False)
        try:
            doc = json.loads(self.path.read_bytes())
            if doc["format"] != FORMAT or str(doc["active"]) not in doc["keys"]:
                raise _Unusable("格式不是本系统的数据密钥文件，或缺少当前密钥")
            for v in (*doc["keys"].values(), doc["index"]):
                if len(bytes.fromhex(v)) != aead.SECRET_LEN:
                    raise _Unusable(f"其中的密钥不是 {aead.SECRET_LEN} 字节")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("%s: unusable data key file (%s)", self.path, exc)
            why = "文件无法读取" if isinstance(exc, OSError) else str(exc) if isinstance(exc, _Unusable) else "内容不是有效的密钥文件"
            raise NotConfigured(
                f"数据密钥文件 {self.path} 无法读取（{why}）：请从备份恢复。切勿删除或重新生成它，"
                f"否则{self.guards}将无法读取"
            ) from exc
        return dict(doc)

    def cipher(self, doc: dict[str, Any] | None = None) -> aead.FieldCipher:
        """The field cipher over ``doc`` (default: the file, created on first use); a key id it
        does not know is looked up in the file again (:meth:`resolve`)."""
        doc = self.read(create=True) if doc is None else doc
        keys = {int(k): bytes.fromhex(v) for k, v in doc["keys"].items()}
        return aead.FieldCipher(
            keys, int(doc["active"]), bytes.fromhex(doc["index"]), algorithm=self.algorithm, resolve=self.resolve
        )

    def rotate(self) -> tuple[int, aead.FieldCipher]:
        """Add a new data key and make it the active one: (its key id, the cipher sealing under
        it). Values sealed under the older keys still open; re-sealing them is the caller's work."""
        with self._lock:
            doc = self.read(create=True)
            kid = max(int(k) for k in doc["keys"]) + 1
            doc["keys"][str(kid)] = secrets.token_hex(aead.SECRET_LEN)
            doc["active"] = kid
            atomic_write(self.path, _dump(doc), replace=True)
        log.warning("data key %d is now active (%s)", kid, self.path)
        return kid, self.cipher(doc)

    def resolve(self, kid: int) -> bytes | None:
        """The secret of a key added since this process read the file (a rotation elsewhere), read
        again from the file; None when it is not there. New values keep being sealed under the key
        that was active when the cipher was built."""
        try:
            secret = self.read(create=False)["keys"].get(str(kid))
        except NotConfigured:
            return None
        if secret is None:
            return None
        log.warning("data key %d added since start: read from %s", kid, self.path)
        return bytes.fromhex(secret)


def _dump(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()


class _Unusable(ValueError):
    """A key file that parses but is not a usable one (its message is the operator's, in Chinese)."""
