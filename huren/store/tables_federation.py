"""SQLAlchemy Core tables of federation (issue 13): the platform tree, the change feed of each
platform kept on this deployment, and the watermark of each child feed applied here. Re-exported
by ``huren.store.tables``."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from huren.store.tables_base import Id, metadata

#: The platform tree (huren.domain.platforms): region → cities (real or virtual) → institutions;
#: ``local`` platforms keep their data (and a feed) on this deployment.
platform = Table(
    "platform",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("level", String(16), nullable=False),  # city | region | cross
    Column("parent", String(64), ForeignKey("platform.code")),
    Column("division", String(12), nullable=False, default=""),
    Column("virtual", Boolean, nullable=False, default=False, server_default=false()),
    Column("local", Boolean, nullable=False, default=False, server_default=false()),
    #: the feed's sequencer: the last sequence number given in this platform's feed
    Column("last_seq", BigInteger, nullable=False, default=0, server_default="0"),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

#: The change feed (huren.store.changes): one row per change per feed it belongs to. ``seq`` is
#: given by the sequencer after the change committed (NULL until then), dense and increasing
#: within ``feed``, so a reader that saw seq N has seen every change up to N.
feed_change = Table(
    "feed_change",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("feed", String(64), nullable=False),
    Column("seq", BigInteger),
    Column("kind", String(16), nullable=False),  # lab | exam (a registration, resubmission or PDF) | void_lab | void_exam | daily | accept | quote | org
    Column("org_code", String(128), nullable=False),
    Column("entity_id", BigInteger),  # the report / record it is about (store id)
    Column("entity_key", String(700)),  # or its key, for what has no id (a daily count, an institution)
    Column("at", DateTime, nullable=False),  # when the change was written here
    UniqueConstraint("feed", "seq"),
    Index(None, "feed", "id"),
)

#: The child feeds applied on this deployment (a region's cities; the level above's regions): how
#: far each has been applied, and what its source said the last time it was read.
federation_peer = Table(
    "federation_peer",
    metadata,
    Column("platform", String(64), primary_key=True),  # the child platform whose feed is applied here
    Column("applied_seq", BigInteger, nullable=False, default=0, server_default="0"),
    Column("source_last_seq", BigInteger, nullable=False, default=0, server_default="0"),
    Column("source_at", DateTime),  # when the last applied change was written at its source
    Column("applied_at", DateTime),  # when it was applied here
    Column("applied_total", BigInteger, nullable=False, default=0, server_default="0"),
    Column("gaps", BigInteger, nullable=False, default=0, server_default="0"),  # batches refused for a sequence jump
    Column("last_error", Text),
    Column("updated_at", DateTime, nullable=False),
)
