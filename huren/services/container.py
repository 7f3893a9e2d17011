"""The services a transport is handed: built by ``huren.bootstrap``, never imported from there."""

from __future__ import annotations

from dataclasses import dataclass

from huren.context import Clock
from huren.services.audit import AuditService
from huren.services.auth import AuthService
from huren.services.catalog import CatalogService
from huren.services.directory import DirectoryService
from huren.services.federation import FederationService
from huren.services.imaging import ImagingService
from huren.services.imaging_forward import ImageForwarder
from huren.services.imaging_keys import ImagingKeys
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
from huren.store.blobs import BlobStore
from huren.store.database import Database
from huren.store.keys import Keyring


@dataclass
class Container:
    settings: Settings
    db: Database
    blobs: BlobStore
    clock: Clock
    auth: AuthService
    audit: AuditService
    registry: RegistryService
    query: QueryService
    quality: QualityService
    directory: DirectoryService
    catalog: CatalogService
    masterdata: MasterDataService
    recognition: RecognitionService
    statistics: StatisticsService
    transport: TransportService
    links: LinkService
    keys: Keyring
    #: report ids as they cross a transport (opaque refs; issue 10 §1.11)
    refs: Refs
    #: the image archive (issue 12): ingest, commit, query, retrieve; ``imaging.nodes``: AE titles
    imaging: ImagingService
    #: the image keys (XC-E7…E11, YB-4.3): the same object as ``imaging`` (its key methods)
    imaging_keys: ImagingKeys
    #: the platform tree, the change feeds and the applying of child platforms' feeds (issue 13)
    federation: FederationService
    #: XC-E-note: reads of studies not held relayed to the fallback platform (None: not configured)
    imaging_forward: ImageForwarder | None = None

    def close(self) -> None:
        self.db.dispose()
        for held in (self.imaging_forward, self.imaging.archive):  # their HTTP clients
            close = getattr(held, "close", None)
            if close is not None:
                close()
