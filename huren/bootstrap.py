"""The one place that wires settings, store and services together."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from huren.context import Clock
from huren.crypto.opaque import RefCodec
from huren.files import private_dir, private_sqlite, private_umask
from huren.services.audit import AuditService
from huren.services.auth import AuthService, PasswordHasher
from huren.services.catalog import CatalogService
from huren.services.container import Container
from huren.services.directory import DirectoryService
from huren.services.federation import FederationService
from huren.services.imaging import ImagingService
from huren.services.imaging_archive import open_archive
from huren.services.imaging_forward import forwarder_for
from huren.services.links import LinkService
from huren.services.masterdata import MasterDataService
from huren.services.quality import QualityService
from huren.services.query import QueryService
from huren.services.recognition import RecognitionService
from huren.services.refs import Refs
from huren.services.registry import RegistryService
from huren.services.statistics import StatisticsService
from huren.services.transport import TransportService
from huren.settings import Settings
from huren.store import migrate, partitions
from huren.store.blob_backends import open_blob_store
from huren.store.database import Database, make_engine
from huren.store.keys import Keyring

if TYPE_CHECKING:
    from fastapi import FastAPI


def keyring(settings: Settings) -> Keyring:
    """The keyring of an installation: the files under ``settings.key_dir`` (and HUREN_SECRET_KEY)."""
    return Keyring(
        settings.key_dir,
        secret_key=settings.secret_key,
        cipher_order=settings.sm2_cipher_order,
        key_cache=settings.sm2_key_cache,
    )


def token_secret(settings: Settings) -> bytes:
    """The token signing secret: HUREN_SECRET_KEY, or one generated once into keys/token.key (0600)."""
    return keyring(settings).token_secret()


def report_refs(keys: Keyring) -> Refs:
    """The installation's report refs: keyed by a secret derived from the blind-index secret, so
    they outlive data-key and token-secret rotation (URLs in records and the HIS keep working)."""
    return Refs(RefCodec(keys.fields().derive_secret("report-refs")))


def private_database(url: str) -> None:
    """An SQLite database file is made 0600 before SQLite opens it (its -wal/-shm follow its mode)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:" and not u.database.startswith("file:"):
        private_sqlite(u.database)


def build(settings: Settings | None = None, *, clock: Clock | None = None, upgrade: bool = False) -> Container:
    settings = settings or Settings()
    private_dir(settings.data_dir)
    private_database(settings.db_url)
    keys = keyring(settings)  # the one keyring: transport, SOAP, tokens, the blob store and the store's sealed rows take their keys from it
    db = Database(make_engine(settings.db_url), fields=keys.fields())  # patient identity sealed in every table (huren.store.sealing)
    if upgrade:
        migrate.upgrade(db.engine, fields=keys.fields())  # 0006 seals the ID numbers already stored
    blobs = open_blob_store(settings, keys.fields())  # PDFs, kept payloads, DICOM: sealed, in blob_dir or a bucket (HUREN_BLOB_BACKEND)
    refs = report_refs(keys)
    clock = clock or Clock(settings.timezone)
    if upgrade:  # PostgreSQL: this month's and the next month's partitions exist (huren.store.partitions)
        with db.write() as conn:
            partitions.ensure_ahead(conn, clock.now())
    audit = AuditService(
        db, clock, read_per_minute=settings.read_rate_per_minute, system_read_per_minute=settings.system_read_rate_per_minute,
        fields=keys.fields(),
    )
    registry = RegistryService(
        db, blobs, clock, settings.max_pdf_bytes, refs,
        rejected_keep_bytes=settings.rejected_keep_bytes, rejected_quota_bytes=settings.rejected_quota_bytes,
    )
    recognition = RecognitionService(db, blobs, clock, audit, registry.reject, refs)
    secret = keys.token_secret()
    auth = AuthService(
        db, secret, clock, settings.token_ttl_seconds, audit=audit, hasher=PasswordHasher(settings.password_hash_n),
        page_max=settings.page_token_max_seconds,
    )
    transport = TransportService(db, clock, audit, keys)
    links = LinkService(db, blobs, clock, audit, secret, refs, accounts=auth)
    archive = open_archive(  # the instances' bytes: the blob store, or an Orthanc (HUREN_IMAGING_ARCHIVE)
        settings.imaging_archive, blobs, url=settings.orthanc_url, username=settings.orthanc_username,
        password=settings.orthanc_password, timeout=settings.orthanc_timeout_seconds,
    )
    imaging = ImagingService(
        db, blobs, clock, audit, refs, max_instance_bytes=settings.max_instance_bytes, public_base=settings.public_base,
        archive=archive,
        key_ttl={
            "viewer": settings.viewer_key_ttl_seconds, "download": settings.download_key_ttl_seconds,
            "film": settings.film_key_ttl_seconds,
        },
    )
    return Container(
        settings=settings,
        db=db,
        blobs=blobs,
        clock=clock,
        auth=auth,
        audit=audit,
        registry=registry,
        query=QueryService(db, blobs, clock, audit, refs),
        quality=QualityService(db, blobs, clock, audit, refs, rectify_days=settings.rectify_days),
        directory=DirectoryService(db, clock, hasher=auth.hasher, on_change=auth.forget),
        catalog=CatalogService(db, clock, on_change=recognition.invalidate, audit=audit),
        masterdata=MasterDataService(db, clock, audit, registry.reject, fields=keys.fields()),
        recognition=recognition,
        statistics=StatisticsService(db, clock),
        transport=transport,
        links=links,
        keys=keys,
        refs=refs,
        imaging=imaging,
        imaging_keys=imaging,
        federation=FederationService(db, blobs, clock, registry, audit, settings.max_pdf_bytes),
        imaging_forward=forwarder_for(  # XC-E-note: studies not held, asked of another platform
            settings.imaging_fallback_url, audit, clock, public_root=settings.public_base + "/dicom-web",
            name=settings.imaging_fallback_name, token=settings.imaging_fallback_token,
            username=settings.imaging_fallback_username, password=settings.imaging_fallback_password,
            timeout=settings.imaging_fallback_timeout_seconds, failover=settings.imaging_fallback_failover,
            spool_dir=settings.data_dir / "tmp",  # instances relayed to a C-MOVE / C-GET, one at a time
        ),
    )


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` worker processes: settings from ``HUREN_*``. Also an
    entry point of its own (``uvicorn huren.bootstrap:app_from_env --factory``), so it sets the
    private umask as the CLI does."""
    from huren.api.app import create_app

    private_umask()
    return create_app(build())
