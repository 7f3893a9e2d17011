"""``huren serve`` (the platform: API and pages) and ``huren db upgrade``."""

from __future__ import annotations

import argparse
from typing import Any

from huren.cli.common import database_options, settings_of


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from huren.api.app import create_app
    from huren.bootstrap import build

    settings = settings_of(args)
    container = build(settings, upgrade=True)
    print(f"huren 平台已启动：http://{settings.host}:{settings.port}/  （接口文档 /docs）", flush=True)
    if settings.workers > 1:
        container.close()
        # worker processes rebuild the settings from the environment: hand the options down
        # (the token secret they read from the same data directory, never from the environment)
        os.environ.update(
            {
                "HUREN_DATA_DIR": str(settings.data_dir.resolve()),
                "HUREN_DATABASE_URL": settings.db_url,
                # the public address defaults to host and port (HUREN_PUBLIC_BASE_URL unset)
                "HUREN_HOST": settings.host,
                "HUREN_PORT": str(settings.port),
            }
        )
        uvicorn.run(
            "huren.bootstrap:app_from_env",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level="info",
            access_log=False,
        )
        return 0
    app = create_app(container)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", access_log=False)
    container.close()
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from huren.bootstrap import build

    container = build(settings_of(args), upgrade=True)
    print(f"数据库已升级到最新版本：{container.settings.db_url.split('@')[-1]}")
    container.close()
    return 0


def add(sub: Any) -> None:
    p = sub.add_parser("serve", help="启动平台（API、页面）")
    database_options(p)
    p.add_argument("--host", help="监听地址（HUREN_HOST），默认 127.0.0.1")
    p.add_argument("--port", type=int, help="监听端口（HUREN_PORT），默认 8000")
    p.add_argument("--workers", type=int, help="工作进程数（HUREN_WORKERS），默认 1")
    p.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="数据库")
    dbs = db.add_subparsers(dest="db_command", required=True)
    p = dbs.add_parser("upgrade", help="执行数据库迁移")
    database_options(p)
    p.set_defaults(func=cmd_db_upgrade)
