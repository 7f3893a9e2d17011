"""SM4 (GB/T 32907) block cipher for the Xinjiang SOAP envelope and the encrypted REST transport.

SM4-ECB with PKCS#7 padding through ``cryptography`` (OpenSSL); unpadding validates the padding.
Every failure raises :class:`~huren.crypto.errors.GmError`.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from huren.crypto.errors import GmError

__all__ = ["SM4_BLOCK", "SM4_KEY_SIZE", "sm4_decrypt", "sm4_encrypt"]

SM4_KEY_SIZE = 16
SM4_BLOCK = 16


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
