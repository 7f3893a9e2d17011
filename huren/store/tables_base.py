"""What every table module of ``huren.store`` shares: the one ``MetaData`` (its naming convention),
the id type, the sealed-text column length and the columns of a seed table (``huren.store.tables``
re-exports them; Alembic's ``env.py`` reads ``huren.store.tables.metadata``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.types import TypeEngine

from huren.domain.fields import Field

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: Auto-increment 64-bit ids (SQLite needs INTEGER for its rowid alias).
Id = BigInteger().with_variant(Integer, "sqlite")

#: A sealed text column (huren.crypto.aead.FieldCipher.seal_text) of a value up to 128 characters:
#: "enc1:" + base64url of 34 + up to 512 bytes = at most 733 characters.
SEALED_LEN = 768


def _type(f: Field) -> TypeEngine[Any]:
    if f.kind == "dt":
        return DateTime()
    if f.kind == "date":
        return Date()
    if f.kind == "num":
        return BigInteger() if f.size > 9 else Integer()
    return String(f.size) if f.size <= 512 else Text()


def _columns(spec: Sequence[Field], skip: Sequence[str] = (), sealed: Sequence[str] = ()) -> list[Column[Any]]:
    """The columns of a seed table; those in ``sealed`` hold sealed text (huren.store.sealing), and
    a sealed ``id_no`` is followed by ``id_no_bidx``, its blind index."""
    out: list[Column[Any]] = []
    for f in spec:
        if f.name in skip:
            continue
        out.append(Column(f.name, String(SEALED_LEN) if f.name in sealed else _type(f), nullable=not f.required))
        if f.name == "id_no" and f.name in sealed:
            out.append(Column("id_no_bidx", String(32)))
    return out


def PLATFORM() -> Column[Any]:
    """The platform a row was written in (its institution's, ``huren.domain.platforms``; "" in a
    deployment without a platform tree)."""
    return Column("platform", String(64), nullable=False, default="", server_default="")
