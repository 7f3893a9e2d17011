"""The one place that wires settings, store and services together."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from huren.context import Clock
from huren.services.audit import AuditService
from huren.services.auth import AuthService
from huren.services.catalog import CatalogService
from huren.services.container import Container
from huren.services.directory import DirectoryService
from huren.services.masterdata import MasterDataService
from huren.services.quality import QualityService
from huren.services.query import QueryService
from huren.services.recognition import RecognitionService
from huren.services.registry import RegistryService
from huren.services.statistics import StatisticsService
from huren.services.transport import TransportService
from huren.settings import Settings
from huren.store import migrate
from huren.store.blobs import BlobStore
from huren.store.database import Database, make_engine

if TYPE_CHECKING:
    from fastapi import FastAPI


def token_secret(settings: Settings) -> bytes:
    """The token signing secret: HUREN_SECRET_KEY, or one generated once into keys/token.key (0600)."""
    if settings.secret_key:
        return settings.secret_key.encode()
    path: Path = settings.key_dir / "token.key"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        # write a temporary file, then link it into place: a reader never sees a half-written key,
        # and of two processes racing, the first link wins and both use its key
        tmp = path.with_name(f".token.key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_hex(32).encode())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    value = path.read_bytes().strip()
    if len(value) < 32:
        raise RuntimeError(f"{path} holds no usable secret (at least 32 bytes); delete it or set HUREN_SECRET_KEY")
    return value


def build(settings: Settings | None = None, *, clock: Clock | None = None, upgrade: bool = False) -> Container:
    settings = settings or Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(make_engine(settings.db_url))
    if upgrade:
        migrate.upgrade(db.engine)
    blobs = BlobStore(settings.blob_dir)
    clock = clock or Clock(settings.timezone)
    audit = AuditService(db, clock)
    registry = RegistryService(db, blobs, clock, settings.max_pdf_bytes)
    recognition = RecognitionService(db, blobs, clock, audit, registry.reject)
    secret = token_secret(settings)
    transport = TransportService(
        db, blobs, clock, audit, secret, settings.key_dir,
        cipher_order=settings.sm2_cipher_order, key_cache=settings.sm2_key_cache,
    )
    return Container(
        settings=settings,
        db=db,
        blobs=blobs,
        clock=clock,
        auth=AuthService(db, secret, clock, settings.token_ttl_seconds),
        audit=audit,
        registry=registry,
        query=QueryService(db, blobs, clock, audit),
        quality=QualityService(db, blobs, clock),
        directory=DirectoryService(db, clock),
        catalog=CatalogService(db, clock, on_change=recognition.invalidate),
        masterdata=MasterDataService(db, clock, audit, registry.reject),
        recognition=recognition,
        statistics=StatisticsService(db, clock),
        transport=transport,
    )


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` worker processes: settings from ``HUREN_*``."""
    from huren.api.app import create_app

    return create_app(build())
