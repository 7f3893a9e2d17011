"""A local HTTP API of the gateway served by uvicorn in a thread of the gateway process (the
preload API, the YB endpoints): started by the runner, stopped with it, its platform client
closed with it."""

from __future__ import annotations

import threading
import time
from typing import Any, Self

from huren.client import HurenClient


class ServerThread:
    """``server`` (a ``uvicorn.Server``) run in a thread named ``name``; ``stop()`` ends it and
    closes ``client``. ``what`` names the API in the Chinese error when it cannot start."""

    def __init__(self, server: Any, client: HurenClient, *, name: str, what: str) -> None:
        self.server, self.client, self.what = server, client, what
        self.thread = threading.Thread(target=server.run, name=name, daemon=True)

    def start(self, wait: float = 10.0) -> Self:
        self.thread.start()
        deadline = time.monotonic() + wait
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.what}未能启动（端口被占用或地址无效？）")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(10.0)
        self.client.close()
