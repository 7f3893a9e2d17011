"""What every command shares: settings from ``HUREN_*`` overridden by the options, and the common options."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from huren.settings import Settings


def settings_of(args: argparse.Namespace) -> Settings:
    over: dict[str, Any] = {}
    for name in ("data_dir", "database_url", "host", "port", "workers"):
        value = getattr(args, name, None)
        if value is not None:
            over[name] = value
    if getattr(args, "demo_mode", False):
        over["demo"] = True
    return Settings(**over)


def database_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, help="数据目录（HUREN_DATA_DIR）：数据库、文件与密钥")
    p.add_argument("--database-url", help="数据库URL（HUREN_DATABASE_URL），默认数据目录下的SQLite")


def account_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--org", required=True, help="机构编码")
    p.add_argument("--username", required=True, help="用户名")
