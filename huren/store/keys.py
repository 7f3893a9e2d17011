"""The keyring: every key of the platform, from the files under ``settings.key_dir`` (``keys/``, mode
0700, each file 0600). Built once, in ``huren.bootstrap``, and handed to whoever needs a key: the
signed REST transport and the SOAP profile (the platform SM2 key, and one strKey unwrapper with its
cache), the token codecs (the token secret) and field encryption (the data keys).

    keys/sm2_private.pem   platform SM2 key pair (PKCS#8)       huren keys init
    keys/sm2_public.txt    its public key, hex 04‖x‖y            huren keys public
    keys/token.key         secret of access tokens, sessions and links (unless HUREN_SECRET_KEY)
    keys/data.keys         data keys of field encryption, by key id, and the blind-index secret
                           (the file format: huren.crypto.datakeys, shared with the gateway)

A missing platform key is one error everywhere: :class:`huren.errors.NotConfigured` with
:data:`PLATFORM_KEY_MISSING`. Keys are read on first use (``huren keys init`` on a running platform
takes effect without a restart) and then kept for the life of the process.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
from pathlib import Path
from typing import Any

from huren.crypto import aead, datakeys, envelope, keyfiles, sm2
from huren.crypto.errors import GmError
from huren.errors import NotConfigured
from huren.files import atomic_write, private_dir

log = logging.getLogger("huren.keys")

PLATFORM_KEY_MISSING = "平台SM2密钥未配置，请平台管理员运行 huren keys init 生成平台密钥"
TOKEN_FILE = "token.key"
DATA_FILE = datakeys.FILE_NAME


class Keyring:
    def __init__(
        self,
        key_dir: Path,
        *,
        secret_key: str | None = None,
        cipher_order: str = "C1C3C2",
        key_cache: int = 4096,
        data_algorithm: int | None = None,
    ) -> None:
        self.key_dir = Path(key_dir)
        self._secret_key = secret_key
        self._cipher_order = cipher_order
        self._key_cache = key_cache
        self._data_algorithm = data_algorithm
        self._lock = threading.Lock()
        self._platform: sm2.Sm2Key | None = None
        self._unwrapper: envelope.KeyUnwrapper | None = None
        self._token: bytes | None = None
        self._fields: aead.FieldCipher | None = None
        self._data = datakeys.DataKeys(
            self.key_dir / DATA_FILE, algorithm=data_algorithm, guards="已加密保存的报告PDF、被拒提交原文与影像文件"
        )

    def __repr__(self) -> str:
        return f"Keyring({self.key_dir})"

    # -- the platform SM2 key ----------------------------------------------------------------
    def platform_key(self) -> sm2.Sm2Key:
        """The platform SM2 key pair; NotConfigured (one message) when there is none."""
        if self._platform is None:
            try:
                key = keyfiles.load_platform_key(self.key_dir)
            except GmError as exc:
                log.error("platform SM2 key: %s", exc)
                raise NotConfigured(PLATFORM_KEY_MISSING) from exc
            with self._lock:
                if self._platform is None:
                    self._platform = key
                    self._unwrapper = envelope.KeyUnwrapper(key, self._cipher_order, self._key_cache)
        return self._platform

    def platform_public_hex(self) -> str | None:
        """The platform's public key (04‖x‖y hex), or None when none is configured."""
        try:
            return self.platform_key().public_hex
        except NotConfigured:
            return None

    def unwrapper(self) -> envelope.KeyUnwrapper:
        """The one strKey / X-Huren-Key unwrapper of this process (SM2 decryption + its cache)."""
        self.platform_key()
        assert self._unwrapper is not None
        return self._unwrapper

    def init_platform_key(self, *, force: bool = False) -> sm2.Sm2Key:
        """Generate the platform key pair (GmError if one exists and not ``force``)."""
        private_dir(self.key_dir)
        key = keyfiles.init_platform_key(self.key_dir, force=force)
        with self._lock:
            self._platform = key
            self._unwrapper = envelope.KeyUnwrapper(key, self._cipher_order, self._key_cache)
        return key

    # -- the token secret ---------------------------------------------------------------------
    def token_secret(self) -> bytes:
        """HUREN_SECRET_KEY, or the secret generated once into ``keys/token.key`` (0600)."""
        if self._secret_key:
            return self._secret_key.encode()
        if self._token is None:
            path = self.key_dir / TOKEN_FILE
            if not path.exists():
                # of two processes racing, the first link wins and both read its secret
                with contextlib.suppress(FileExistsError):
                    atomic_write(path, secrets.token_hex(32).encode(), replace=False)
            value = path.read_bytes().strip()
            if len(value) < 32:
                log.error("%s holds no usable secret (at least 32 bytes)", path)
                raise NotConfigured(
                    f"令牌密钥文件 {path} 不可用：应至少含32字节的密钥；请修复，或删除它让平台重新生成"
                    "（已签发的令牌和登录会话随之失效），或设置 HUREN_SECRET_KEY"
                )
            self._token = value
        return self._token

    # -- data keys (field encryption) ---------------------------------------------------------
    def fields(self) -> aead.FieldCipher:
        """The field cipher over the data keys (generated into ``keys/data.keys`` on first use)."""
        if self._fields is None:
            with self._lock:
                if self._fields is None:
                    self._fields = self._load_fields(create=True)
        return self._fields

    def reload_fields(self) -> aead.FieldCipher:
        """Re-read ``keys/data.keys`` (after a rotation by another process)."""
        with self._lock:
            self._fields = self._load_fields(create=True)
        return self._fields

    def rotate_data_key(self) -> int:
        """Add a new data key and make it the active one; returns its key id. Values sealed under
        the older keys still open (re-encrypting them is ``huren keys rotate-data``'s work)."""
        with self._lock:
            kid, self._fields = self._data.rotate()
        return kid

    def _load_fields(self, *, create: bool) -> aead.FieldCipher:
        return self._data.cipher(self._data.read(create=create))

    def _read_data(self, *, create: bool) -> dict[str, Any]:
        return self._data.read(create=create)

    def _cipher(self, doc: dict[str, Any]) -> aead.FieldCipher:
        return self._data.cipher(doc)

    def _resolve(self, kid: int) -> bytes | None:
        """A data key added since this process read the file (a rotation elsewhere): re-read it.
        New values keep being sealed under the key that was active at start until a restart."""
        return self._data.resolve(kid)
