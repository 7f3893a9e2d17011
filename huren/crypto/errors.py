"""The one error of the GM primitives (``sm2``, ``sm3``, ``sm4``, ``asn1``, ``b64``, ``envelope``,
``keyfiles``).

A ``ValueError``, not a :class:`huren.errors.HurenError`: the primitives know nothing of callers, and
each transport turns it into the answer its protocol gives (as ``aead.SealError`` for field
encryption).
"""

from __future__ import annotations


class GmError(ValueError):
    """Any failure of the GM crypto layer: bad input, wrong key, tampered data, missing key file."""
