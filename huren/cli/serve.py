"""``huren serve`` (the platform: API and pages, and the DICOM SCP when ``HUREN_DICOM_PORT`` is
set) and ``huren db upgrade``.

With ``--workers N`` (N > 1) uvicorn's supervisor starts N worker processes, each building its own
container from the environment (``huren.bootstrap:app_from_env``): its own database pool
(PostgreSQL: at most ``PG_POOL_SIZE + PG_MAX_OVERFLOW`` connections a worker,
huren.store.database), its own group commit and read-rate counters. Migrations and the partitions
ahead run once, here, before the workers start; the DICOM SCP runs once, in this main process
(the workers do not start it), on the container built here.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import TYPE_CHECKING, Any

from huren.cli.common import database_options, settings_of

if TYPE_CHECKING:
    from huren.dimse.server import DicomServer
    from huren.services.container import Container
    from huren.settings import Settings


def cmd_serve(args: argparse.Namespace) -> int:
    from huren.bootstrap import build

    settings = settings_of(args)
    over = {k: v for k in ("dicom_port", "dicom_aet") if (v := getattr(args, k, None)) is not None}
    if over:
        settings = settings.model_validate(settings.model_dump() | over)
    container = build(settings, upgrade=True)
    try:
        dicom = start_dicom(container)
    except OSError as exc:  # the port taken, the address not this machine's: said, not a traceback
        container.close()
        print(
            f"错误：DICOM 服务无法在 {settings.dicom_host}:{settings.dicom_port} 上监听（{exc.strerror or exc}）。"
            "请检查端口是否已被占用，或修改 HUREN_DICOM_PORT / HUREN_DICOM_HOST",
            file=sys.stderr,
        )
        return 2
    if dicom is not None:
        # uvicorn re-raises the SIGTERM it caught once it has shut down: exit through ``finally``
        # (the SCP stopped, its associations ended) instead of dying on the default handler
        signal.signal(signal.SIGTERM, _exit_on_signal)
    print(f"huren 平台已启动：http://{settings.host}:{settings.port}/  （接口文档 /docs）", flush=True)
    try:
        return _serve(settings, container, dicom is not None)
    finally:
        if dicom is not None:
            dicom.stop()
            print("DICOM 服务已停止", flush=True)
        container.close()


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0)


def start_dicom(container: Container) -> DicomServer | None:
    """The DICOM SCP in a thread of this process when ``HUREN_DICOM_PORT`` is set (else None)."""
    settings = container.settings
    if not settings.dicom_port:
        return None
    from huren.dimse.server import DicomServer

    server = DicomServer(
        container.imaging, aet=settings.dicom_aet, host=settings.dicom_host, port=settings.dicom_port,
        max_instance_bytes=settings.max_instance_bytes, forward=container.imaging_forward,
    )
    port = server.start()
    print(f"DICOM 服务已启动：AE 名称 {settings.dicom_aet}，监听 {settings.dicom_host}:{port}", flush=True)
    return server


def _serve(settings: Settings, container: Container, keep_container: bool) -> int:
    import os

    import uvicorn

    from huren.api.app import create_app

    if settings.workers > 1:
        if not keep_container:  # the DICOM SCP, when on, keeps using it in this process
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
    p.add_argument(
        "--workers", type=int,
        help="工作进程数（HUREN_WORKERS），默认 1；每个进程有自己的数据库连接池（PostgreSQL 每进程至多 16 个连接，"
             "进程数 × 16 须小于 max_connections），DICOM 服务只在主进程中运行一份",
    )
    p.add_argument("--dicom-port", type=int, help="DICOM 服务端口（HUREN_DICOM_PORT）；不设则不启动 DICOM 服务")
    p.add_argument("--dicom-aet", help="DICOM 服务的 AE 名称（HUREN_DICOM_AET），默认 HUREN")
    p.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="数据库")
    dbs = db.add_subparsers(dest="db_command", required=True)
    p = dbs.add_parser("upgrade", help="执行数据库迁移")
    database_options(p)
    p.set_defaults(func=cmd_db_upgrade)
