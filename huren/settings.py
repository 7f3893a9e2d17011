"""Settings: one typed object, from ``HUREN_*`` environment variables or matching CLI options."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_SOURCE = re.compile(
    r"^(?:'self'|'none'|\*|[a-z][a-z0-9+.-]*:|(?:[a-z][a-z0-9+.-]*://)?(?:\*\.)?[a-z0-9.-]+(?::(?:\d{1,5}|\*))?(?:/[^\s;,']*)?)$",
    re.I,
)


def check_frame_ancestors(value: str) -> str:
    """``value`` when every item is a CSP source expression ('self', 'none', a scheme, a host
    source); ValueError otherwise (a ``;`` or a newline would smuggle in another directive)."""
    items = value.split()
    if not items or any(not _SOURCE.match(i) for i in items) or ("'none'" in items and len(items) > 1):
        raise ValueError("HUREN_FRAME_ANCESTORS: space-separated CSP sources, e.g. \"'self' https://his.example.org\" (or 'none')")
    return " ".join(items)


def check_base_url(value: str) -> str:
    """An http(s) URL with a host and no query, fragment or credentials, without a trailing slash."""
    u = urlsplit(value.strip())
    if u.scheme not in ("http", "https") or not u.hostname or u.query or u.fragment or u.username or any(c.isspace() for c in value.strip()):
        raise ValueError("HUREN_PUBLIC_BASE_URL: an http(s) address such as https://huren.example.gov.cn (no query or credentials)")
    return value.strip().rstrip("/")


def check_origin(value: str) -> str:
    """An exact web origin ``scheme://host[:port]`` (http or https, no path, no wildcard)."""
    u = urlsplit(value.strip())
    if (
        u.scheme not in ("http", "https") or not u.hostname or "*" in value or u.path not in ("", "/")
        or u.query or u.fragment or u.username or u.password is not None
    ):
        raise ValueError("HUREN_HIS_ORIGINS: space-separated origins such as https://his.example.org (no path or wildcard)")
    port = f":{u.port}" if u.port else ""
    return f"{u.scheme}://{u.hostname}{port}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUREN_", extra="ignore")

    data_dir: Path = Field(default=Path("./data"), description="database, blobs and keys live here")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite under data_dir")
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(default=1, ge=1, le=64, description="uvicorn worker processes")
    #: Secret for signing access tokens. Outside demo mode it must be given, or is generated once
    #: into ``data_dir/keys/token.key`` (mode 0600) — never a built-in default.
    secret_key: str | None = None
    demo: bool = False
    token_ttl_seconds: int = 7200
    #: scrypt cost (N, a power of two) of new password hashes; tests pass a cheap one. Stored hashes
    #: are checked at the cost they were made with.
    password_hash_n: int = Field(default=2**14, ge=2, le=2**20)
    #: browser sessions of the pages: expire after this long unused, and this long after login
    web_session_idle_seconds: int = Field(default=1800, ge=60)
    web_session_max_seconds: int = Field(default=8 * 3600, ge=60)
    #: the supervisor's overview (huren.services.overview): 完整率 / 及时率 below the red per cent
    #: are red, below the yellow one yellow; 互认率 likewise; open rectifications from
    #: ``overview_open_red`` on are red, any open one yellow; an institution without a report
    #: received for ``overview_silent_hours`` is highlighted as silent (also on the quality pages)
    overview_rate_red: float = Field(default=80, ge=0, le=100)
    overview_rate_yellow: float = Field(default=95, ge=0, le=100)
    overview_recognition_red: float = Field(default=30, ge=0, le=100)
    overview_recognition_yellow: float = Field(default=60, ge=0, le=100)
    overview_open_red: int = Field(default=10, ge=1)
    overview_silent_hours: float = Field(default=24, gt=0, le=24 * 366)
    #: reads of patient data per minute and account (doctors, administrators, supervisors), and
    #: per system account (``hospital``: a HIS or gateway reading for many doctors); 0 = no limit
    read_rate_per_minute: int = Field(default=120, ge=0)
    system_read_rate_per_minute: int = Field(default=0, ge=0)
    max_pdf_bytes: int = 20 * 1024 * 1024
    max_request_bytes: int = 64 * 1024 * 1024
    #: rejected submissions: each kept to this many bytes (with the whole's size and SHA-256), and
    #: at most this many kept bytes per institution; past it only the problems are kept
    rejected_keep_bytes: int = Field(default=256 * 1024, ge=0)
    rejected_quota_bytes: int = Field(default=512 * 1024 * 1024, ge=0)
    #: days an institution has to rectify a rejected submission: the deadline on the rectification page
    rectify_days: int = Field(default=7, ge=1, le=365)
    timezone: str = "Asia/Shanghai"
    #: SM2 ciphertext layout of the SOAP ``strKey`` when raw (DER is always accepted): the
    #: GM/T 0003-2012 order C1C3C2, or the older C1C2C3
    sm2_cipher_order: Literal["C1C3C2", "C1C2C3"] = "C1C3C2"
    #: unwrapped SM4 keys kept in memory, keyed by the SHA-256 of the strKey (0 turns it off)
    sm2_key_cache: int = Field(default=4096, ge=0)
    #: the platform's address as its users reach it (scheme, host, port, any path prefix of a
    #: reverse proxy), e.g. ``https://huren.example.gov.cn``. The WSDL's soap:address, signed
    #: viewing links and the HIS embedding notes are built from it, never from a request's Host
    #: header (which a caller chooses). Unset: ``http://{host}:{port}``.
    public_base_url: str | None = None
    #: who may show the pages in a frame (CSP ``frame-ancestors``): space-separated sources, e.g.
    #: ``'self' https://his.example.org`` for a HIS that embeds the doctor's pages; ``'none'``: nobody
    frame_ancestors: str = "'self'"
    #: the HIS pages (exact origins, space-separated, e.g. ``https://his.example.org``) the doctor's
    #: pages send their decisions to by ``window.postMessage`` (never to ``"*"``). Unset: the
    #: explicit ``scheme://host[:port]`` sources of ``frame_ancestors``
    his_origins: str | None = None
    #: the longest a page token (``POST /api/v1/auth/page-token``) may live, seconds
    page_token_max_seconds: int = Field(default=3600, ge=60, le=8 * 3600)
    # -- imaging (issue 12) ---------------------------------------------------------------------
    #: the DICOM SCP (C-ECHO / C-STORE / C-FIND / C-MOVE / C-GET): started by ``huren serve`` when
    #: a port is given, with this AE title, on this address (like ``host``: loopback by default)
    dicom_port: int | None = Field(default=None, ge=1, le=65535)
    dicom_aet: str = Field(default="HUREN", min_length=1, max_length=16)
    dicom_host: str = "127.0.0.1"
    #: the largest DICOM file (one instance) accepted, bytes
    max_instance_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    #: lifetimes of image keys: a viewing hospital's viewerKey, a downloadKey, a patient's cloud-film link
    viewer_key_ttl_seconds: int = Field(default=1800, ge=60, le=366 * 86400)
    download_key_ttl_seconds: int = Field(default=900, ge=60, le=366 * 86400)
    film_key_ttl_seconds: int = Field(default=30 * 86400, ge=60, le=366 * 86400)
    #: another conforming imaging platform asked for studies the platform does not hold (XC-E-note)
    imaging_fallback_url: str | None = None
    #: the name the doctor is shown for images relayed from it (影像来源：…), and how huren signs in
    #: there: a bearer token, or a user name and password (HTTP basic, e.g. an Orthanc's RegisteredUsers)
    imaging_fallback_name: str = Field(default="备用影像平台", min_length=1, max_length=64)
    imaging_fallback_token: str | None = None
    imaging_fallback_username: str | None = None
    imaging_fallback_password: str | None = None
    imaging_fallback_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    #: also relay studies held here while their archive cannot give the files (huren.services.imaging_forward)
    imaging_fallback_failover: bool = False
    #: where the instances' bytes live: ``local`` (the blob store under data_dir) or ``orthanc`` (an
    #: existing Orthanc's REST API at ``orthanc_url``, with one of its RegisteredUsers)
    imaging_archive: Literal["local", "orthanc"] = "local"
    orthanc_url: str | None = None
    orthanc_username: str | None = None
    orthanc_password: str | None = None
    orthanc_timeout_seconds: float = Field(default=30.0, gt=0, le=600)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.password_hash_n & (self.password_hash_n - 1):
            raise ValueError("HUREN_PASSWORD_HASH_N must be a power of two")
        if self.secret_key is not None and len(self.secret_key) < 32:
            raise ValueError("HUREN_SECRET_KEY must be at least 32 characters")
        if self.public_base_url is not None:
            self.public_base_url = check_base_url(self.public_base_url)
        self.frame_ancestors = check_frame_ancestors(self.frame_ancestors)
        if self.imaging_archive == "orthanc" and not self.orthanc_url:
            raise ValueError("HUREN_IMAGING_ARCHIVE=orthanc needs HUREN_ORTHANC_URL (Orthanc's HTTP root, e.g. http://pacs:8042)")
        if not re.fullmatch(r"[\x20-\x5b\x5d-\x7e]{1,16}", self.dicom_aet) or not self.dicom_aet.strip():
            raise ValueError("HUREN_DICOM_AET: 1–16 printable ASCII characters without a backslash (e.g. HUREN)")
        self.dicom_aet = self.dicom_aet.strip()
        if self.his_origins is not None:
            self.his_origins = " ".join(check_origin(o) for o in self.his_origins.split())
        return self

    @property
    def his_origin_list(self) -> tuple[str, ...]:
        """The HIS origins the pages post their decisions to (see ``his_origins``)."""
        if self.his_origins is not None:
            return tuple(self.his_origins.split())
        out = []
        for src in self.frame_ancestors.split():
            try:
                out.append(check_origin(src))
            except ValueError:  # 'self', a scheme, a wildcard or a path: not one origin
                continue
        return tuple(dict.fromkeys(out))

    @property
    def public_base(self) -> str:
        """Where users reach the platform, without a trailing slash (see ``public_base_url``)."""
        return self.public_base_url or f"http://{self.host}:{self.port}"

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'huren.db').resolve()}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def key_dir(self) -> Path:
        return self.data_dir / "keys"
