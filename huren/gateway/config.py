"""The gateway's one TOML file (``huren gateway run --config gateway.toml``); see
``docs/gateway.example.toml`` for an annotated example.

``[platform]`` where and as whom to upload; ``[outbox]`` the durable SQLite queue; ``[schedule]``
daily counts and accept / quote pushes; ``[[source]]`` one table per hospital source, handed as a
dict to ``huren.gateway.sources.build`` (or, with ``factory = "module:callable"``, to that
callable); ``[preload]`` kept as a dict for the preload cache; ``[pacs_views]`` (one table, or
``[[pacs_views]]`` several: the PACS's imaging views, ``huren.gateway.sources.pacs_views``) and
``[imaging]`` (the spool, the study pusher and the YB endpoints, ``huren.gateway.imaging_api``)
kept as dicts likewise; ``[pacs_text]`` (or ``[[pacs_text]]``: YB-4.1.1 report text,
``huren.gateway.sources.pacs_text``, built among the sources) and ``[pacs_dimse]`` (YB-4.2 image
pull by C-MOVE or HTTP, ``huren.gateway.dicom_pull``) likewise; ``[mapping]`` (local codes → standard, see
``huren.gateway.mapping``) likewise; ``[log]`` the log level. ``[[sources]]`` is read as
``[[source]]``.
Relative paths (the outbox) are taken from the config file's directory.
"""

from __future__ import annotations

import importlib
import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import time as dtime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huren.gateway.model import Source, os_reason

if TYPE_CHECKING:
    from huren.client import HurenClient


class ConfigError(ValueError):
    """The configuration file is missing, malformed or incomplete; the message names the key."""


@dataclass(frozen=True, slots=True)
class Platform:
    base_url: str
    org_code: str
    username: str
    password: str
    timeout_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class OutboxConf:
    path: Path
    batch_size: int = 200
    max_backoff_seconds: float = 300.0
    max_batch_bytes: int = 32 * 1024 * 1024
    keep_done_days: int = 7
    cipher: str = "aes-256-gcm"  # what seals the outbox and the preload cache (huren.gateway.sealing)


@dataclass(frozen=True, slots=True)
class Schedule:
    daily_at: dtime = dtime(3, 0)
    daily_counts: str = "computed"  # computed | source | off
    push_every_seconds: float = 300.0
    poll_every_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    platform: Platform
    outbox: OutboxConf
    schedule: Schedule = field(default_factory=Schedule)
    sources: tuple[dict[str, Any], ...] = ()
    preload: dict[str, Any] = field(default_factory=dict)
    mapping: dict[str, Any] = field(default_factory=dict)
    pacs_views: tuple[dict[str, Any], ...] = ()
    imaging: dict[str, Any] = field(default_factory=dict)
    pacs_text: tuple[dict[str, Any], ...] = ()  # YB-4.1.1 (huren.gateway.sources.pacs_text)
    pacs_dimse: dict[str, Any] = field(default_factory=dict)  # YB-4.2 (huren.gateway.dicom_pull)
    log_level: str = "INFO"
    base_dir: Path = field(default_factory=Path.cwd)


def _table(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] 应为一个表（TOML table）")
    return value


def _str(t: dict[str, Any], section: str, key: str, default: str | None = None) -> str:
    value = t.get(key, default)
    if not isinstance(value, str) or (default is None and not value):
        raise ConfigError(f"[{section}] 缺少 {key}：应为非空字符串")
    return value


def _num(t: dict[str, Any], section: str, key: str, default: float, minimum: float) -> float:
    value = t.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise ConfigError(f"[{section}] {key} 应为不小于 {minimum:g} 的数")
    return float(value)


def _password(t: dict[str, Any]) -> str:
    if "password_env" in t:
        name = _str(t, "platform", "password_env")
        value = os.environ.get(name)
        if not value:
            raise ConfigError(f"[platform] password_env：环境变量 {name} 未设置或为空")
        return value
    return _str(t, "platform", "password")


def _daily_at(value: Any) -> dtime:
    if isinstance(value, dtime):
        return value
    try:
        hh, mm = str(value).split(":")
        return dtime(int(hh), int(mm))
    except ValueError:
        raise ConfigError('[schedule] daily_at 应为 "HH:MM" 格式的时刻，如 "03:00"') from None


def _cipher(t: dict[str, Any]) -> str:
    value = _str(t, "outbox", "cipher", "aes-256-gcm").lower()
    if value not in ("aes-256-gcm", "sm4-gcm"):
        raise ConfigError('[outbox] cipher 应为 "aes-256-gcm" 或 "sm4-gcm"（出站队列与预加载缓存的加密算法）')
    return value


def parse(doc: dict[str, Any], base_dir: Path) -> GatewayConfig:
    """A ``GatewayConfig`` from the parsed TOML document; relative paths against ``base_dir``."""
    p = _table(doc, "platform")
    platform = Platform(
        base_url=_str(p, "platform", "base_url").rstrip("/"),
        org_code=_str(p, "platform", "org_code"),
        username=_str(p, "platform", "username"),
        password=_password(p),
        timeout_seconds=_num(p, "platform", "timeout_seconds", 60.0, 1.0),
    )
    o = _table(doc, "outbox")
    path = Path(_str(o, "outbox", "path", "gateway-outbox.db"))
    outbox = OutboxConf(
        path=path if path.is_absolute() else base_dir / path,
        batch_size=int(_num(o, "outbox", "batch_size", 200, 1)),
        max_backoff_seconds=_num(o, "outbox", "max_backoff_seconds", 300.0, 1.0),
        max_batch_bytes=int(_num(o, "outbox", "max_batch_bytes", 32 * 1024 * 1024, 1024)),
        keep_done_days=int(_num(o, "outbox", "keep_done_days", 7, 0)),
        cipher=_cipher(o),
    )
    s = _table(doc, "schedule")
    daily_counts = _str(s, "schedule", "daily_counts", "computed")
    if daily_counts not in ("computed", "source", "off"):
        raise ConfigError('[schedule] daily_counts 应为 "computed"、"source" 或 "off"')
    schedule = Schedule(
        daily_at=_daily_at(s.get("daily_at", "03:00")),
        daily_counts=daily_counts,
        push_every_seconds=_num(s, "schedule", "push_every_seconds", 300.0, 0.1),
        poll_every_seconds=_num(s, "schedule", "poll_every_seconds", 10.0, 0.1),
    )
    raw_sources = [*doc.get("source", []), *doc.get("sources", [])]  # either spelling
    if not all(isinstance(x, dict) for x in raw_sources):
        raise ConfigError("[[source]] 应为表数组（每个来源一个 [[source]] 表）")
    names: set[str] = set()
    for i, src in enumerate(raw_sources):
        name = _str(src, f"source #{i + 1}", "name")
        if "type" not in src and "factory" not in src:
            raise ConfigError(f"[[source]] {name}：缺少 type（或 factory）")
        if name in names:
            raise ConfigError(f"[[source]] name = \"{name}\" 重复：每个来源的 name 应唯一")
        names.add(name)
    raw_views = _named_tables(doc, "pacs_views", "每个 PACS / 区域影像云一个 [[pacs_views]] 表", names)
    raw_text = _named_tables(doc, "pacs_text", "每个 PACS 检查文字视图一个 [[pacs_text]] 表", names)
    dimse = dict(_table(doc, "pacs_dimse"))
    if dimse:
        dname = dimse.setdefault("name", "pacs_dimse")
        if not isinstance(dname, str) or not dname or dname in names:
            raise ConfigError(f"[pacs_dimse] name = \"{dname}\" 应为非空且与其他来源不重名")
    log = _table(doc, "log")
    return GatewayConfig(
        platform=platform,
        outbox=outbox,
        schedule=schedule,
        sources=tuple(dict(x) for x in raw_sources),
        preload=dict(_table(doc, "preload")),
        mapping=dict(_table(doc, "mapping")),
        pacs_views=tuple(dict(x) for x in raw_views),
        imaging=dict(_table(doc, "imaging")),
        pacs_text=tuple(dict(x) for x in raw_text),
        pacs_dimse=dimse,
        log_level=_str(log, "log", "level", "INFO").upper(),
        base_dir=base_dir,
    )


def _named_tables(doc: dict[str, Any], section: str, hint: str, names: set[str]) -> list[dict[str, Any]]:
    """``[section]`` (one table) or ``[[section]]`` (several), each with a unique ``name`` (default:
    the section's name when there is one table)."""
    raw = doc.get(section, [])
    raw = [raw] if isinstance(raw, dict) else raw
    if not isinstance(raw, list) or not all(isinstance(x, dict) for x in raw):
        raise ConfigError(f"[{section}] 应为一个表，或表数组（{hint}）")
    for i, src in enumerate(raw):
        name = src.get("name", section if len(raw) == 1 else "")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"[[{section}]] 第 {i + 1} 个表缺少 name（有多个时每个都须命名）")
        if name in names:
            raise ConfigError(f"[{section}] name = \"{name}\" 与其他来源重名：每个来源的 name 应唯一")
        names.add(name)
        src.setdefault("name", name)
    return raw


def load(path: str | Path) -> GatewayConfig:
    """Read and check the TOML file at ``path``."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"无法读取配置文件 {path}：{os_reason(exc)}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"配置文件 {path} 不是 UTF-8 编码") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"配置文件 {path} 不是合法的 TOML：{toml_position(exc)}有语法错误") from exc
    return parse(doc, path.resolve().parent)


def toml_position(exc: tomllib.TOMLDecodeError) -> str:
    """Where the TOML parser stopped ("第 3 行第 7 列"), from its message (Python 3.11 keeps no
    line / column attributes)."""
    found = re.search(r"line (\d+), column (\d+)", str(exc))
    return f"第 {found[1]} 行第 {found[2]} 列" if found else ""


def build_source(conf: dict[str, Any], *, base_dir: Path | None = None, mapper: Any = None) -> Source:
    """The source a ``[[source]]`` table describes: ``factory = "module:callable"`` (a site's own
    source, called with the table) or one of huren's source types (``huren.gateway.sources.build``,
    with the config file's directory for relative paths and the code ``mapper``)."""
    factory = conf.get("factory")
    if factory:
        module, _, attr = str(factory).partition(":")
        where = f"[[source]] {conf.get('name')}：无法加载 factory = \"{factory}\""
        try:
            fn = getattr(importlib.import_module(module), attr)
        except ImportError as exc:
            raise ConfigError(f"{where}：找不到模块 {exc.name or module}") from exc
        except AttributeError as exc:
            raise ConfigError(f"{where}：模块 {module} 中没有 {attr or '（冒号后应写函数名）'}") from exc
        source: Source = fn(conf)
        return source
    from huren.gateway import sources

    try:
        built: Source = sources.build(conf, base_dir=base_dir, mapper=mapper)
    except ValueError as exc:  # the sources' own ConfigError included
        raise ConfigError(str(exc)) from exc
    return built


def build_sources(config: GatewayConfig, client: HurenClient | None = None) -> list[Source]:
    """Every configured source; with ``[mapping]``, one code mapper shared by them (``client``
    fetches the platform's table when ``source = "platform"``)."""
    mapper = None
    if config.mapping:
        from huren.gateway.mapping import from_config

        try:
            mapper = from_config(config.mapping, client=client, base_dir=config.base_dir)
        except ValueError as exc:
            text = str(exc)
            raise ConfigError(text if text.startswith("[mapping]") else f"[mapping] {text}") from exc
    built = [build_source(c, base_dir=config.base_dir, mapper=mapper) for c in config.sources]
    if config.pacs_text:
        from huren.gateway.sources import pacs_text

        for raw in config.pacs_text:
            try:
                built.append(pacs_text.build(raw, org_code=config.platform.org_code, base_dir=config.base_dir, mapper=mapper))
            except ValueError as exc:  # the sources' ConfigError names the key as sources[<name>].<key>
                raise ConfigError(str(exc).replace("sources[", "pacs_text[", 1)) from exc
    return built
