"""The platform SM2 key pair on disk, under ``settings.key_dir``: written and read here, kept by the
keyring (:mod:`huren.store.keys`).

    sm2_private.pem   PKCS#8 PEM, mode 0600 (the layout of ``openssl genpkey -algorithm SM2``)
    sm2_public.txt    hex 04‖x‖y, 0600 too

Every failure raises :class:`~huren.crypto.errors.GmError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

from huren.crypto.errors import GmError
from huren.crypto.sm2 import Sm2Key, generate_key
from huren.files import atomic_write

__all__ = ["PRIVATE_KEY_FILE", "PUBLIC_KEY_FILE", "init_platform_key", "load_platform_key"]

PRIVATE_KEY_FILE = "sm2_private.pem"
PUBLIC_KEY_FILE = "sm2_public.txt"


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
        atomic_write(path, key.to_pem().encode("ascii"), replace=force)
        atomic_write(key_dir / PUBLIC_KEY_FILE, (key.public_hex + "\n").encode("ascii"), replace=True)
    except FileExistsError as exc:
        raise GmError(
            f"{path} 已存在；如需替换请加 --force（替换后各医院需要改用新的平台公钥）"
        ) from exc
    except OSError as exc:
        raise GmError(f"无法在 {key_dir} 下写入密钥：{exc.strerror or exc}") from exc
    return key


def load_platform_key(key_dir: Path) -> Sm2Key:
    """The platform SM2 key pair from ``key_dir/sm2_private.pem``."""
    path = key_dir / PRIVATE_KEY_FILE
    try:
        text = path.read_bytes()
    except FileNotFoundError as exc:
        raise GmError(f"{path} 处没有平台SM2密钥，请先运行 huren keys init 生成") from exc
    except OSError as exc:
        raise GmError(f"无法读取 {path}：{exc.strerror or exc}") from exc
    try:
        return Sm2Key.from_pem(text)
    except GmError as exc:
        raise GmError(f"{path} 不是有效的SM2私钥文件：{exc}") from exc
