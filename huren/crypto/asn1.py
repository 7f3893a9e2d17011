"""The few DER (X.690) and PEM (RFC 7468) pieces the SM2 key files and ciphertexts need: short tags
and definite lengths only. Every failure raises :class:`~huren.crypto.errors.GmError`."""

from __future__ import annotations

import base64
import re

from huren.crypto.b64 import b64d
from huren.crypto.errors import GmError

__all__ = ["der", "der_int", "der_items", "pem", "pem_blocks", "tlv", "uint"]


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def der(tag: int, content: bytes) -> bytes:
    """One element: tag, definite length, content."""
    return bytes([tag]) + _der_len(len(content)) + content


def der_int(value: int) -> bytes:
    """A non-negative INTEGER in its minimal (canonical) encoding."""
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")  # one spare byte keeps it positive
    if len(body) > 1 and body[0] == 0 and body[1] < 0x80:
        body = body[1:]
    return der(0x02, body)


def tlv(buf: bytes, pos: int) -> tuple[int, int, int]:
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


def der_items(buf: bytes, tag: int = 0x30) -> list[tuple[int, bytes]]:
    """The children (tag, content) of the one constructed element ``tag`` that fills ``buf``."""
    t, start, end = tlv(buf, 0)
    if t != tag or end != len(buf):
        raise GmError("unexpected DER structure")
    items = []
    pos = start
    while pos < end:
        t, s, e = tlv(buf, pos)
        items.append((t, buf[s:e]))
        pos = e
    return items


def uint(content: bytes) -> int:
    """The value of a non-negative INTEGER's content."""
    if not content or content[0] & 0x80:
        raise GmError("DER INTEGER is empty or negative")
    return int.from_bytes(content, "big")


def pem_blocks(text: str | bytes) -> dict[str, bytes]:
    """The DER of every PEM block in ``text``, by label."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    blocks = {}
    for m in re.finditer(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", text, re.S):
        blocks[m.group(1)] = b64d(m.group(2))
    return blocks


def pem(label: str, der: bytes) -> str:
    """PEM armour: lines of 64 Base64 characters between BEGIN and END ``label``."""
    body = base64.encodebytes(der).decode("ascii").replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"

