"""Run the Alembic migrations shipped in the package (``huren db upgrade``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

if TYPE_CHECKING:
    from huren.crypto.aead import FieldCipher


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head", *, fields: FieldCipher | None = None) -> None:
    """Upgrade to ``revision``. ``fields``: the keyring's field cipher, for migrations that seal
    values already stored (0006: the access log's ID numbers); without it such a migration
    refuses a database that holds any."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        cfg.attributes["fields"] = fields
        command.upgrade(cfg, revision)


def head() -> str:
    """The revision the shipped migrations end at (what ``upgrade`` brings a database to)."""
    from alembic.script import ScriptDirectory

    rev = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert rev is not None
    return rev
