"""``huren federation run --config FILE``: which platform's feed, read where, applied where.

    platform = "XJ-6501"          # the child platform whose feed is synced upward
    [source]                      # the platform that keeps the feed (the city)
    base_url = "https://city.example/"   org_code = "XJ-6501"   username = "sync"   password_env = "CITY_PW"
    [target]                      # the platform above (the region), with the child platform's account there
    base_url = "https://region.example/" org_code = "XJ-6501"   username = "sync"   password_env = "REGION_PW"
    [sync]
    batch = 1000                  # changes per batch (at most 5000)
    wait_seconds = 10             # long poll: how long one read of the feed waits for a change
    max_backoff_seconds = 60      # the longest pause after a failure (doubling from 1 s)
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """The configuration file is missing, malformed or incomplete; the message names the key."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    base_url: str
    org_code: str
    username: str
    password: str
    timeout_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class FederationConfig:
    platform: str
    source: Endpoint
    target: Endpoint
    batch: int = 1000
    wait_seconds: float = 10.0
    max_backoff_seconds: float = 60.0


def _str(t: dict[str, Any], section: str, key: str) -> str:
    v = t.get(key)
    if not isinstance(v, str) or not v.strip():
        raise ConfigError(f"[{section}] 缺少 {key}：应为非空字符串")
    return v.strip()


def _num(t: dict[str, Any], section: str, key: str, default: float, low: float, high: float) -> float:
    v = t.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int | float) or not low <= v <= high:
        raise ConfigError(f"[{section}] {key} 应为 {low:g} 到 {high:g} 之间的数")
    return float(v)


def _endpoint(doc: dict[str, Any], name: str) -> Endpoint:
    t = doc.get(name)
    if not isinstance(t, dict):
        raise ConfigError(f"缺少 [{name}] 表（{'保存变更订阅的下级平台' if name == 'source' else '应用变更的上级平台'}）")
    if "password_env" in t:
        env = _str(t, name, "password_env")
        password = os.environ.get(env, "")
        if not password:
            raise ConfigError(f"[{name}] password_env：环境变量 {env} 未设置或为空")
    else:
        password = _str(t, name, "password")
    url = _str(t, name, "base_url").rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"[{name}] base_url 应为 http(s) 地址")
    return Endpoint(url, _str(t, name, "org_code"), _str(t, name, "username"), password, _num(t, name, "timeout_seconds", 60.0, 1.0, 3600.0))


def load(path: str | Path) -> FederationConfig:
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"配置文件不存在：{path}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"配置文件不是合法的 TOML：{exc}") from exc
    sync = doc.get("sync", {})
    if not isinstance(sync, dict):
        raise ConfigError("[sync] 应为一个表（TOML table）")
    return FederationConfig(
        platform=_str(doc, "顶层", "platform"),
        source=_endpoint(doc, "source"),
        target=_endpoint(doc, "target"),
        batch=int(_num(sync, "sync", "batch", 1000, 1, 5000)),
        wait_seconds=_num(sync, "sync", "wait_seconds", 10.0, 0.0, 30.0),
        max_backoff_seconds=_num(sync, "sync", "max_backoff_seconds", 60.0, 1.0, 3600.0),
    )
