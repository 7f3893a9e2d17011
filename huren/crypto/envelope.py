"""The Xinjiang SOAP envelope's ``strKey``: the request's SM4 key, SM2-encrypted to the platform key.

:class:`KeyUnwrapper` turns one into the SM4 key, with an LRU cache so that a client reusing its key
pays the SM2 decryption once. Failures raise :class:`~huren.crypto.errors.GmError`.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

from huren.crypto.b64 import b64d
from huren.crypto.errors import GmError
from huren.crypto.sm2 import CipherOrder, Sm2Key, check_order, sm2_decrypt
from huren.crypto.sm4 import SM4_KEY_SIZE

__all__ = ["KeyUnwrapper", "UnwrapStats"]


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
        check_order(order)
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
