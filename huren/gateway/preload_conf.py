"""``[preload]`` of the gateway's TOML file: the local API's listener, its cache and its tokens.

The local API answers patients' results and takes doctors' decisions, so it is never open:
``api_token`` (at least 24 characters) is required whenever ``[preload]`` is enabled, and the
listener answers only requests whose ``Host`` names it (the configured ``listen`` address, a
loopback name with its port, or a name listed in ``hosts``) — a web page in the doctor's browser
can neither guess the token nor reach the API through a rebound DNS name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huren.gateway.config import ConfigError
from huren.settings import check_origin

WINDOWS = (30, 90)
MIN_TOKEN = 24
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


@dataclass(frozen=True, slots=True)
class PreloadConf:
    """``[preload]`` of the gateway's TOML file, checked."""

    api_token: str
    listen: str = "127.0.0.1:8765"
    path: Path = Path("preload.db")
    ttl_seconds: float = 600.0
    days: int = 90
    keep_seconds: float = 86400.0
    retry_seconds: float = 30.0
    timeout_seconds: float = 10.0
    page_token: str = ""
    hosts: tuple[str, ...] = field(default=())
    #: exact HIS origins the doctor's pages post their decisions to (window.postMessage), never "*"
    his_origins: tuple[str, ...] = field(default=())

    def allowed_hosts(self) -> frozenset[str]:
        return allowed_hosts(self.listen, self.hosts)


def parse_listen(text: str) -> tuple[str, int]:
    """``"127.0.0.1:8765"`` → (host, port); ``"[::1]:8765"`` for IPv6."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"[preload] listen 应为“主机:端口”，而不是“{text}”")
    return host.strip("[]") or "127.0.0.1", int(port)


def allowed_hosts(listen: str, extra: tuple[str, ...] = ()) -> frozenset[str]:
    """The ``Host`` header values the local API answers: the listen address, the loopback names
    and the names of ``extra`` — each with the listen port (and bare, when the port is 80)."""
    host, port = parse_listen(listen)
    names = {*LOOPBACK_NAMES, f"[{host}]" if ":" in host else host, *(h.lower() for h in extra)}
    out = {f"{n.lower()}:{port}" for n in names}
    if port == 80:
        out |= {n.lower() for n in names}
    return frozenset(out)


def preload_conf(table: dict[str, Any], outbox_path: Path, base_dir: Path) -> PreloadConf:
    """Check ``[preload]``: ``api_token`` (required, ≥ 24 characters: the HIS sends it with every
    call), ``listen`` (host:port), ``hosts`` (further names the HIS may reach the listener by),
    ``path`` (default ``preload.db`` beside the outbox; relative to the config file),
    ``ttl_seconds``, ``days`` (30 / 90), ``keep_seconds``, ``retry_seconds``, ``timeout_seconds``,
    ``page_token`` (serves the doctor's pages under /ui). ConfigError naming the key."""

    def num(key: str, default: float, minimum: float) -> float:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            raise ConfigError(f"[preload] {key} 须为不小于 {minimum} 的数字")
        return float(value)

    listen = table.get("listen", "127.0.0.1:8765")
    try:
        parse_listen(str(listen))
    except ValueError:
        raise ConfigError('[preload] listen 须为“主机:端口”，例如 "127.0.0.1:8765"') from None
    days = table.get("days", 90)
    if days not in WINDOWS:
        raise ConfigError("[preload] days 只能是 30 或 90（平台的近期时间窗）")
    raw = table.get("path")
    if raw is not None and (not isinstance(raw, str) or not raw):
        raise ConfigError("[preload] path 须为文件路径")
    path = Path(raw) if raw else outbox_path.parent / "preload.db"
    page_token = table.get("page_token", "")
    if not isinstance(page_token, str) or (page_token and len(page_token) < MIN_TOKEN):
        raise ConfigError(f"[preload] page_token 须为至少 {MIN_TOKEN} 个字符的字符串（它用于打开医生端页面）")
    api_token = table.get("api_token", "")
    if not isinstance(api_token, str) or not api_token:
        raise ConfigError(
            f"[preload] 缺少 api_token：前置机本地接口必须设置接口令牌（至少 {MIN_TOKEN} 个字符，HIS 每次调用以 "
            "Authorization: Bearer <api_token> 携带），否则医生浏览器中的任何网页都能伪造互认提交或读取患者结果；"
            "可用 python -c \"import secrets; print(secrets.token_urlsafe(32))\" 生成"
        )
    if len(api_token) < MIN_TOKEN:
        raise ConfigError(f"[preload] api_token 过短：至少 {MIN_TOKEN} 个字符（HIS 每次调用都携带它）")
    hosts = table.get("hosts", [])
    if not isinstance(hosts, list) or not all(isinstance(h, str) and h and ":" not in h and "/" not in h for h in hosts):
        raise ConfigError('[preload] hosts 须为不带端口的主机名列表，例如 ["his-gw.hospital.local"]')
    raw_origins = table.get("his_origins", [])
    if not isinstance(raw_origins, list) or not all(isinstance(o, str) for o in raw_origins):
        raise ConfigError('[preload] his_origins 须为 HIS 页面来源的列表，例如 ["https://his.hospital.local"]')
    try:
        his_origins = tuple(check_origin(o) for o in raw_origins)
    except ValueError:
        raise ConfigError(
            '[preload] his_origins 中的每一项须为确切的来源“协议://主机[:端口]”（http 或 https，不带路径或通配符），'
            '例如 "https://his.hospital.local"'
        ) from None
    host = parse_listen(str(listen))[0]
    if host in ("0.0.0.0", "::") and not hosts:
        raise ConfigError(
            f"[preload] listen ({listen}) 监听所有网卡时须在 hosts 中列出 HIS 访问前置机所用的主机名"
            '（例如 hosts = ["his-gw.hospital.local"]）：其他 Host 的请求一律拒绝'
        )
    return PreloadConf(
        api_token=api_token,
        listen=str(listen),
        path=path if path.is_absolute() else base_dir / path,
        ttl_seconds=num("ttl_seconds", 600.0, 1.0),
        days=int(days),
        keep_seconds=num("keep_seconds", 86400.0, 0.0),
        retry_seconds=num("retry_seconds", 30.0, 0.0),
        timeout_seconds=num("timeout_seconds", 10.0, 0.5),
        page_token=page_token,
        hosts=tuple(hosts),
        his_origins=his_origins,
    )
