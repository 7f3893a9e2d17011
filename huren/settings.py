"""Settings: one typed object, from ``HUREN_*`` environment variables or matching CLI options.

A wrong setting is refused with :class:`SettingsError` (a ``HurenError``, and a ``ValueError``):
one Chinese sentence per wrong setting naming its variable, what it should be and (unless it is a
secret) what it is, e.g. ``HUREN_PORT 应为 1 到 65535 之间的整数，现为“80x”`` — the CLI prints
it as ``错误：…`` and exits 2 instead of a pydantic traceback in English.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from huren.errors import HurenError, Problem

_SOURCE = re.compile(
    r"^(?:'self'|'none'|\*|[a-z][a-z0-9+.-]*:|(?:[a-z][a-z0-9+.-]*://)?(?:\*\.)?[a-z0-9.-]+(?::(?:\d{1,5}|\*))?(?:/[^\s;,']*)?)$",
    re.I,
)


def check_frame_ancestors(value: str) -> str:
    """``value`` when every item is a CSP source expression ('self', 'none', a scheme, a host
    source); ValueError otherwise (a ``;`` or a newline would smuggle in another directive)."""
    items = value.split()
    if not items or any(not _SOURCE.match(i) for i in items) or ("'none'" in items and len(items) > 1):
        raise ValueError(
            "HUREN_FRAME_ANCESTORS 应为以空格分隔的 CSP 来源，例如 \"'self' https://his.example.org\"（或 'none' 表示不允许任何页面嵌入）"
        )
    return " ".join(items)


def check_base_url(value: str) -> str:
    """An http(s) URL with a host and no query, fragment or credentials, without a trailing slash."""
    u = urlsplit(value.strip())
    if u.scheme not in ("http", "https") or not u.hostname or u.query or u.fragment or u.username or any(c.isspace() for c in value.strip()):
        raise ValueError("HUREN_PUBLIC_BASE_URL 应为 http(s) 地址，例如 https://huren.example.gov.cn（不带查询参数或用户名密码）")
    return value.strip().rstrip("/")


def check_origin(value: str) -> str:
    """An exact web origin ``scheme://host[:port]`` (http or https, no path, no wildcard)."""
    u = urlsplit(value.strip())
    if (
        u.scheme not in ("http", "https") or not u.hostname or "*" in value or u.path not in ("", "/")
        or u.query or u.fragment or u.username or u.password is not None
    ):
        raise ValueError("HUREN_HIS_ORIGINS 应为以空格分隔的来源“协议://主机[:端口]”，例如 https://his.example.org（不带路径或通配符）")
    port = f":{u.port}" if u.port else ""
    return f"{u.scheme}://{u.hostname}{port}"


def check_http_url(value: str, var: str, example: str, credentials: str) -> str:
    """``value`` when it is an http(s) URL with a host and no query, fragment or credentials;
    ValueError naming ``var`` otherwise."""
    u = urlsplit(value.strip())
    try:
        u.port  # noqa: B018 - a port out of range or not a number raises here
    except ValueError:
        raise ValueError(f"{var} 中的端口无效（应为 1 到 65535），例如 {example}") from None
    if u.scheme not in ("http", "https") or not u.hostname or u.query or u.fragment or any(c.isspace() for c in value.strip()):
        raise ValueError(f"{var} 应为 http(s) 地址，例如 {example}（不带查询参数）")
    if u.username or u.password is not None:
        raise ValueError(f"{var} 中不应写用户名或密码（地址会出现在日志里）：请用 {credentials} 设置")
    return value


class SettingsError(HurenError, ValueError):
    """Settings are wrong. Made from one problem per setting whose message is a sentence starting
    with the variable (``HUREN_PORT 应为…``); ``problems`` keep the variable as the field and the
    rest as the message (the CLI prints ``错误：设置有误…`` then ``  - HUREN_PORT: 应为…``), and
    ``str()`` is the whole sentences (a log or a traceback names the variables too)."""

    code = "bad_setting"
    status = 500

    def __init__(self, problems: list[Problem]) -> None:
        self.sentences = [p.message for p in problems]
        reasons = [
            Problem(p.field, p.rule, p.message[len(p.field):].lstrip() if p.message.startswith(p.field) else p.message)
            for p in problems
        ]
        names = "、".join(dict.fromkeys(p.field for p in problems))
        super().__init__(f"设置有误（{names}），请改正后再运行" if names else "设置有误，请改正后再运行", reasons)
        self._full = problems

    def __str__(self) -> str:
        return "；".join(self.sentences) or self.message


def env_name(field: str) -> str:
    """The environment variable of a settings field: ``dicom_aet`` → ``HUREN_DICOM_AET``."""
    return f"HUREN_{field.upper()}"


#: settings whose value is never repeated in a message (it is a secret, or holds one)
_SECRET = re.compile(r"secret|password|token|database_url", re.I)
#: what a field should be, where its type and bounds alone do not say it well
_EXPECT = {
    "data_dir": "数据目录的路径，例如 /srv/huren/data",
    "dicom_aet": "1 到 16 个可打印 ASCII 字符（不含反斜杠，不能全是空格），例如 HUREN",
    "timezone": "IANA 时区名，例如 Asia/Shanghai",
}


def _bounds(meta: list[Any]) -> tuple[Any, Any, str, str]:
    lo = hi = None
    lo_op = hi_op = ""
    for m in meta:
        for attr, op in (("ge", "≥"), ("gt", ">")):
            if getattr(m, attr, None) is not None:
                lo, lo_op = getattr(m, attr), op
        for attr, op in (("le", "≤"), ("lt", "<")):
            if getattr(m, attr, None) is not None:
                hi, hi_op = getattr(m, attr), op
    return lo, hi, lo_op, hi_op


def _expected(field: str) -> str:
    """What the field should be, in Chinese, from its type and its bounds."""
    if field in _EXPECT:
        return _EXPECT[field]
    info = Settings.model_fields[field]
    ann = info.annotation
    args = [a for a in typing.get_args(ann) if a is not type(None)] if isinstance(ann, types.UnionType) else [ann]
    base = args[0] if len(args) == 1 else ann
    if typing.get_origin(base) is Literal:
        return "、".join(str(a) for a in typing.get_args(base)) + " 之一"
    lo, hi, lo_op, hi_op = _bounds(list(info.metadata))
    if base is bool:
        return "true 或 false（也可写 1/0、yes/no、on/off）"
    if base in (int, float):
        kind = "整数" if base is int else "数"
        if lo is not None and hi is not None and lo_op == "≥" and hi_op == "≤":
            return f"{lo:g} 到 {hi:g} 之间的{kind}" if isinstance(lo, float) or isinstance(hi, float) else f"{lo} 到 {hi} 之间的{kind}"
        parts = [f"{op} {v}" for v, op in ((lo, lo_op), (hi, hi_op)) if v is not None]
        return f"{kind}（{'，'.join(parts)}）" if parts else kind
    min_len = next((m.min_length for m in info.metadata if getattr(m, "min_length", None) is not None), None)
    max_len = next((m.max_length for m in info.metadata if getattr(m, "max_length", None) is not None), None)
    if min_len is not None and max_len is not None:
        return f"{min_len} 到 {max_len} 个字符的文本"
    return "文本"


def _should_be(expected: str) -> str:
    return f"应为 {expected}" if expected[:1].isascii() else f"应为{expected}"


def _shown(field: str, value: Any) -> str:
    if _SECRET.search(field) or isinstance(value, dict):
        return ""
    text = str(value)
    return f"，现为“{text[:64]}{'…' if len(text) > 64 else ''}”"


def _problems(exc: ValidationError) -> list[Problem]:
    """The pydantic errors as Chinese problems, one per setting (field: its variable)."""
    out: dict[str, Problem] = {}
    for err in exc.errors():
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, SettingsError):  # the cross-field checks: already in Chinese
            for p in cause._full:
                out.setdefault(p.field, p)
            continue
        loc = err.get("loc") or ()
        field = str(loc[0]) if loc else ""
        if field not in Settings.model_fields:
            text = str(cause) if isinstance(cause, ValueError) else "设置有误"
            out.setdefault(field or "settings", Problem(field or "settings", "invalid", text))
            continue
        var = env_name(field)
        if isinstance(cause, ValueError) and err.get("type") == "value_error":  # a field validator's own sentence
            text = str(cause)
            text = text if text.startswith(var) else f"{var} {text}"
        else:
            text = f"{var} {_should_be(_expected(field))}{_shown(field, err.get('input'))}"
        out.setdefault(var, Problem(var, "invalid", text))
    return list(out.values())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUREN_", extra="ignore")

    data_dir: Path = Field(default=Path("./data"), description="database, blobs and keys live here")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite under data_dir")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
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
    # -- files on S3-compatible object storage (issue 13 §6) ------------------------------------
    #: where report PDFs, kept rejected payloads and DICOM instances live: ``local`` (``blob_dir``)
    #: or ``s3`` (a bucket shared by every platform node; ``blob_dir`` then only spools incoming files)
    blob_backend: Literal["local", "s3"] = "local"
    #: the S3 API's address (SeaweedFS, MinIO, Ceph RGW, a cloud's object storage), e.g. http://s3:8333;
    #: unset: the AWS endpoint of ``s3_region``
    s3_endpoint_url: str | None = None
    s3_bucket: str | None = None
    #: the access key pair (unset both: boto3's own chain — AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, an instance role)
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str = Field(default="us-east-1", min_length=1, max_length=64)
    #: object keys start with this (e.g. ``city-650100/``), so several deployments may share a bucket
    s3_prefix: str = Field(default="", max_length=200)
    #: connect / read timeout of one S3 request, and how many times a failed request is retried
    s3_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    s3_retries: int = Field(default=3, ge=0, le=10)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError(_problems(exc)) from None

    @field_validator("data_dir", mode="before")
    @classmethod
    def _data_dir_given(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():  # HUREN_DATA_DIR="": never the current directory
            raise ValueError(
                "HUREN_DATA_DIR 已设置但为空：请给出数据目录的路径（例如 /srv/huren/data），"
                "或不设置它（默认为 ./data）；空值不会被当作当前目录"
            )
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        problems: list[Problem] = []

        def bad(var: str, text: str) -> None:
            problems.append(Problem(var, "invalid", text))

        def attempt(var: str, check: Any) -> Any:
            try:
                return check()
            except ValueError as exc:
                bad(var, str(exc))
                return None

        if self.password_hash_n & (self.password_hash_n - 1):
            bad("HUREN_PASSWORD_HASH_N", f"HUREN_PASSWORD_HASH_N 应为 2 的幂（例如 16384），现为“{self.password_hash_n}”")
        if self.secret_key is not None and len(self.secret_key) < 32:
            bad("HUREN_SECRET_KEY", "HUREN_SECRET_KEY 至少应有 32 个字符（不设则首次启动时生成到数据目录的 keys/token.key）")
        if self.public_base_url is not None:
            self.public_base_url = attempt("HUREN_PUBLIC_BASE_URL", lambda: check_base_url(self.public_base_url or "")) or self.public_base_url
        self.frame_ancestors = attempt("HUREN_FRAME_ANCESTORS", lambda: check_frame_ancestors(self.frame_ancestors)) or self.frame_ancestors
        if self.his_origins is not None:
            origins = attempt("HUREN_HIS_ORIGINS", lambda: " ".join(check_origin(o) for o in (self.his_origins or "").split()))
            self.his_origins = origins if origins is not None else self.his_origins
        if self.orthanc_url:
            attempt("HUREN_ORTHANC_URL", lambda: check_http_url(
                self.orthanc_url or "", "HUREN_ORTHANC_URL", "http://pacs:8042", "HUREN_ORTHANC_USERNAME 与 HUREN_ORTHANC_PASSWORD"))
        if self.imaging_fallback_url:
            attempt("HUREN_IMAGING_FALLBACK_URL", lambda: check_http_url(
                self.imaging_fallback_url or "", "HUREN_IMAGING_FALLBACK_URL", "https://pacs.example.org/dicom-web",
                "HUREN_IMAGING_FALLBACK_TOKEN，或 HUREN_IMAGING_FALLBACK_USERNAME 与 HUREN_IMAGING_FALLBACK_PASSWORD"))
        if self.imaging_archive == "orthanc" and not self.orthanc_url:
            bad("HUREN_ORTHANC_URL", "HUREN_IMAGING_ARCHIVE=orthanc 时须设置 HUREN_ORTHANC_URL（Orthanc 的 HTTP 地址，例如 http://pacs:8042）")
        self._check_s3(bad, attempt)
        if not re.fullmatch(r"[\x20-\x5b\x5d-\x7e]{1,16}", self.dicom_aet) or not self.dicom_aet.strip():
            bad("HUREN_DICOM_AET", f"HUREN_DICOM_AET {_should_be(_EXPECT['dicom_aet'])}{_shown('dicom_aet', self.dicom_aet)}")
        self.dicom_aet = self.dicom_aet.strip()
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            bad("HUREN_TIMEZONE", f"HUREN_TIMEZONE {_should_be(_EXPECT['timezone'])}{_shown('timezone', self.timezone)}")
        if self.database_url:
            from sqlalchemy.engine import make_url
            from sqlalchemy.exc import ArgumentError

            try:
                make_url(self.database_url)
            except (ArgumentError, ValueError):
                bad("HUREN_DATABASE_URL", "HUREN_DATABASE_URL 不是有效的数据库 URL（例如 postgresql+psycopg://用户@主机/库名，或不设置以使用数据目录下的 SQLite）")
        if problems:
            raise SettingsError(problems)
        return self

    def _check_s3(self, bad: Any, attempt: Any) -> None:
        """The S3 settings: complete when ``blob_backend=s3``, and well formed whenever given."""
        if self.s3_endpoint_url:
            attempt("HUREN_S3_ENDPOINT_URL", lambda: check_http_url(
                self.s3_endpoint_url or "", "HUREN_S3_ENDPOINT_URL", "http://s3.example.org:8333", "HUREN_S3_ACCESS_KEY 与 HUREN_S3_SECRET_KEY"))
        if self.s3_bucket is not None and not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", self.s3_bucket):
            bad("HUREN_S3_BUCKET", f"HUREN_S3_BUCKET 应为 3 到 63 个小写字母、数字、点或连字符（首尾为字母或数字），例如 huren-files{_shown('s3_bucket', self.s3_bucket)}")
        if (self.s3_access_key is None) != (self.s3_secret_key is None):
            unset = "HUREN_S3_SECRET_KEY" if self.s3_secret_key is None else "HUREN_S3_ACCESS_KEY"
            bad(unset, f"{unset} 未设置：HUREN_S3_ACCESS_KEY 与 HUREN_S3_SECRET_KEY 须同时设置（或都不设置，使用 AWS_ACCESS_KEY_ID 等标准凭据）")
        if self.s3_prefix and not re.fullmatch(r"[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*/?", self.s3_prefix):
            bad("HUREN_S3_PREFIX", f"HUREN_S3_PREFIX 应为以斜杠分隔的字母、数字、点、下划线或连字符（不以斜杠开头），例如 city-650100/{_shown('s3_prefix', self.s3_prefix)}")
        elif self.s3_prefix and not self.s3_prefix.endswith("/"):
            self.s3_prefix += "/"
        if self.blob_backend == "s3" and not self.s3_bucket:
            bad("HUREN_S3_BUCKET", "HUREN_BLOB_BACKEND=s3 时须设置 HUREN_S3_BUCKET（存放文件的桶，例如 huren-files）与 HUREN_S3_ENDPOINT_URL（对象存储地址）")

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
