"""The preload service of the gateway (XJ-1.3 预加载模式): the local API (``local_api``) over the
preload cache (``preload_cache``), served by uvicorn in a thread of the gateway process, on
``[preload] listen`` (``preload_conf``). What the gateway runner starts and stops."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import uvicorn
from fastapi import FastAPI

from huren.client import HurenClient
from huren.crypto.aead import FieldCipher
from huren.gateway.local_api import create_preload_app
from huren.gateway.model import Record
from huren.gateway.preload_cache import PreloadCache
from huren.gateway.preload_conf import PreloadConf, parse_listen, preload_conf
from huren.gateway.sealing import cipher_beside
from huren.gateway.threaded import ServerThread

if TYPE_CHECKING:
    from huren.gateway.config import GatewayConfig

log = logging.getLogger("huren.gateway.preload")


def preload_server(app: FastAPI, listen: str = "127.0.0.1:8765") -> uvicorn.Server:
    """A uvicorn server for the local API; the runner calls ``serve()`` / ``run()`` (in a thread
    or its event loop) and sets ``should_exit`` to stop it."""
    host, port = parse_listen(listen)
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"))


class PreloadService(ServerThread):
    """The local API served by uvicorn in a thread; ``stop()`` ends it and closes its client."""

    def __init__(self, server: uvicorn.Server, client: HurenClient) -> None:
        super().__init__(server, client, name="preload-api", what="预加载本地接口")


def build(
    config: GatewayConfig, enqueue: Callable[[Iterable[Record]], None], client: HurenClient, cipher: FieldCipher | None = None
) -> tuple[FastAPI, PreloadConf]:
    """The local API for ``config`` (its ``[preload]`` table, checked: ConfigError without an
    ``api_token``), over a cache speaking to the platform through ``client`` and sealed under
    ``cipher`` (default: the gateway's data keys, beside the outbox)."""
    conf = preload_conf(config.preload, config.outbox.path, config.base_dir)
    cache = PreloadCache(
        conf.path, client, ttl_seconds=conf.ttl_seconds, days=conf.days, keep_seconds=conf.keep_seconds,
        retry_seconds=conf.retry_seconds, timeout=conf.timeout_seconds,
        cipher=cipher if cipher is not None else cipher_beside(config.outbox.path, config.outbox.cipher),
    )
    cache.purge()
    pages = (config.platform.org_code, conf.page_token) if conf.page_token else None
    app = create_preload_app(
        cache, enqueue=enqueue, api_token=conf.api_token, listen=conf.listen, hosts=conf.hosts, pages=pages,
        his_origins=conf.his_origins,
    )
    return app, conf


def start(
    config: GatewayConfig, enqueue: Callable[[Iterable[Record]], None], cipher: FieldCipher | None = None
) -> PreloadService:
    """Start the local API for ``config``, handing decisions to ``enqueue`` (the outbox); what
    the gateway runner calls (with the outbox's ``cipher``)."""
    p = config.platform
    client = HurenClient(p.base_url, p.org_code, p.username, p.password, timeout=p.timeout_seconds)
    try:
        app, conf = build(config, enqueue, client, cipher)
    except BaseException:
        client.close()
        raise
    service = PreloadService(preload_server(app, conf.listen), client).start()
    log.info("预加载接口已启动", extra={"listen": conf.listen, "cache": str(conf.path)})
    return service
