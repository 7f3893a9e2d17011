"""The gateway's run loop: poll every source into the outbox, drain the outbox to the platform,
compute the daily counts, push accept / quote decisions on schedule, stop cleanly on SIGTERM.

- Sources are polled every ``poll_every_seconds``, also while the platform is down.
- The outbox is drained in batches of ``batch_size``; when the platform cannot be reached, the
  gateway waits (exponential backoff with jitter, at most ``max_backoff_seconds``) and tries again.
- At ``daily_at`` the daily counts of the previous day (days missed while the gateway was off, up
  to a week) are queued: per ordering department, lab and exam together, from the reports the
  gateway extracted whose audit day it was and that were not voided (XJ-1.2.2.5). Accepted
  records older than ``keep_done_days`` are then forgotten.
- Records of kind ``accept`` / ``quote`` (decisions taken at the hospital, handed to ``enqueue``)
  are pushed every ``push_every_seconds`` (XJ-1.3.2.5-6).
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from types import FrameType
from typing import Any, Literal, Protocol

from huren.client import HurenClient
from huren.crypto.aead import FieldCipher
from huren.gateway.config import GatewayConfig, build_sources
from huren.gateway.imaging import imaging_hook
from huren.gateway.ingest import ingest, notify
from huren.gateway.model import KINDS, Record, Source
from huren.gateway.outbox import PUSHED_KINDS, Item, Outbox
from huren.gateway.preload_conf import preload_conf
from huren.gateway.sealing import cipher_beside
from huren.gateway.uploader import Uploader

log = logging.getLogger("huren.gateway.runner")

DRAINED_KINDS = tuple(k for k in KINDS if k not in PUSHED_KINDS)
CATCH_UP_DAYS = 7
ERROR_PAUSE = 5.0
INDEX_KEEP_DAYS = 40
Stop = Literal["empty", "time", "unavailable", "stopped"]


class Stoppable(Protocol):
    def stop(self) -> None: ...


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def outbox_cipher(config: GatewayConfig) -> FieldCipher:
    """The gateway's field cipher: its data keys beside the outbox, sealing with ``[outbox] cipher``."""
    return cipher_beside(config.outbox.path, config.outbox.cipher)


def make_client(config: GatewayConfig) -> HurenClient:
    p = config.platform
    return HurenClient(p.base_url, p.org_code, p.username, p.password, timeout=p.timeout_seconds)


class Gateway:
    def __init__(
        self,
        config: GatewayConfig,
        *,
        sources: Sequence[Source] | None = None,
        client: HurenClient | None = None,
        outbox: Outbox | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        if self.preload_enabled():  # checked before anything starts: no local API without its token
            preload_conf(config.preload, config.outbox.path, config.base_dir)
        self.box = outbox if outbox is not None else Outbox(config.outbox.path, cipher=outbox_cipher(config))
        self.client = client if client is not None else make_client(config)
        self.sources = list(sources) if sources is not None else build_sources(config, self.client)
        self.uploader = Uploader(self.client, max_batch_bytes=config.outbox.max_batch_bytes)
        wants = config.pacs_views or config.imaging or config.pacs_dimse
        self.imaging = imaging_hook(config, self.box, self.client) if wants else None
        self.stopping = threading.Event()
        self._rng = rng or random.Random()
        self._failures = 0
        self._retry_at = 0.0  # time.monotonic() before which the platform is not asked again
        self._next_poll = self._next_push = 0.0

    def preload_enabled(self) -> bool:
        return bool(self.config.preload) and bool(self.config.preload.get("enabled", True))

    def close(self) -> None:
        if self.imaging is not None:
            self.imaging.close()
        self.client.close()
        self.box.close()

    # -- pieces of the loop ----------------------------------------------------------------------
    def enqueue(self, records: Iterable[Record]) -> None:
        """Queue records made on the gateway (accept / quote decisions taken locally)."""
        self.box.enqueue(records)

    def stop(self) -> None:
        self.stopping.set()

    def poll(self) -> int:
        """Read every source into the outbox once; the number of records stored."""
        n = 0
        for src in self.sources:
            if self.stopping.is_set():
                break
            n += ingest(self.box, src, should_stop=self.stopping.is_set)
        if self.imaging is not None and not self.stopping.is_set():
            n += self.imaging.poll(self.stopping.is_set)
        return n

    def available(self) -> bool:
        return time.monotonic() >= self._retry_at

    def _backoff(self, why: str) -> None:
        self._failures += 1
        ceiling = min(self.config.outbox.max_backoff_seconds, 2.0 ** (self._failures - 1))
        delay = self._rng.uniform(ceiling / 2, ceiling)
        self._retry_at = time.monotonic() + delay
        log.warning(
            "平台暂时无法连接，稍后重试", extra={"error": why, "failures": self._failures, "retry_in_seconds": round(delay, 2)}
        )

    def drain_once(self, kinds: Sequence[str] = DRAINED_KINDS) -> int:
        """Upload one batch; the number of records settled (accepted or refused)."""
        items = self.box.next_batch(kinds, self.config.outbox.batch_size)
        if not items:
            return 0
        out = self.uploader.upload(items)
        now = _stamp(datetime.now())
        meta = {"last_upload_ok": now} if out.done or out.dead else {}
        if out.unavailable:
            meta |= {"last_upload_error": f"{now} {out.unavailable}"}
        self.box.settle(out.done, out.dead, out.failed, meta)
        by_id = {it.id: it for it in items}
        for rid, why in out.dead.items():
            it = by_id[rid]
            log.error("平台拒收记录（已转入死信）", extra={"id": rid, "kind": it.kind, "key": it.key, "source": it.source, "reason": why})
        self._notify(by_id, out.done, out.dead)
        if out.unavailable:
            self._backoff(out.unavailable)
        elif self._failures:
            log.info("平台已恢复连接", extra={"after_failures": self._failures})
            self._failures = 0
        return len(out.done) + len(out.dead)

    def _notify(self, by_id: dict[int, Item], done: Sequence[int], dead: dict[int, str]) -> None:
        """Hand the outcome to the sources that want it (``done(record, ok, reason)``)."""
        keen = {s.name: s for s in self.sources if getattr(s, "done", None) is not None}
        if not keen:
            return
        for rid, ok, why in [*((i, True, "") for i in done), *((i, False, w) for i, w in dead.items())]:
            it = by_id[rid]
            if it.source in keen:
                notify(keen[it.source], it.record(), ok, why)

    def drain(self, kinds: Sequence[str] = DRAINED_KINDS, *, until: float | None = None) -> tuple[int, Stop]:
        """Upload batches until the queue is empty, ``until`` (monotonic) passes, the platform is
        unavailable or the gateway stops."""
        total = 0
        t0 = time.monotonic()
        why: Stop
        while True:
            if self.stopping.is_set():
                why = "stopped"
            elif not self.available():
                why = "unavailable"
            elif until is not None and time.monotonic() >= until:
                why = "time"
            else:
                n = self.drain_once(kinds)
                total += n
                if n:
                    continue
                why = "empty" if self.available() else "unavailable"
            if total:
                took = time.monotonic() - t0
                log.info("记录已上传", extra={"records": total, "seconds": round(took, 2), "then": why})
            return total, why

    def daily_due(self, now: datetime) -> list[date]:
        """The days whose daily counts are due at ``now``."""
        if now.time() < self.config.schedule.daily_at:
            return []
        yesterday = now.date() - timedelta(days=1)
        last = self.box.meta("daily_last_day")
        if last and last >= yesterday.isoformat():
            return []
        first = yesterday
        if last:
            first = max(date.fromisoformat(last) + timedelta(days=1), yesterday - timedelta(days=CATCH_UP_DAYS - 1))
        return [first + timedelta(days=i) for i in range((yesterday - first).days + 1)]

    def daily_record(self, day: date, now: datetime) -> Record | None:
        rows = self.box.daily_rows(day.isoformat())
        if not rows:
            return None
        org = self.config.platform.org_code
        payload: dict[str, Any] = {
            "lab_exam_report": [
                {
                    "last_update_dtime": _stamp(now),
                    "org_code": org,
                    "date_t": day.isoformat(),
                    "dept_code": r["dept_code"],
                    "dept_name": r["dept_name"],
                    "dept_std_code": r["dept_std_code"],
                    "dept_std_name": r["dept_std_name"],
                    "lab_num": str(r["lab_num"]),
                    "exam_num": str(r["exam_num"]),
                }
                for r in rows
            ]
        }
        return Record("daily", f"daily:{org}|{day.isoformat()}", payload, "schedule")

    def run_daily(self, now: datetime | None = None) -> list[date]:
        """Queue the daily counts that are due (when computed here) and prune the outbox."""
        now = now or datetime.now()
        days = self.daily_due(now)
        for day in days:
            rec = self.daily_record(day, now) if self.config.schedule.daily_counts == "computed" else None
            self.box.write([rec] if rec else [], meta={"daily_last_day": day.isoformat()})
            log.info("日报已加入待上传队列" if rec else "日报：没有需要上传的数据", extra={"day": day.isoformat()})
        if days and self.config.outbox.keep_done_days > 0:
            cutoff = time.time() - self.config.outbox.keep_done_days * 86400
            keep_from = (now.date() - timedelta(days=INDEX_KEEP_DAYS)).isoformat()
            pruned = self.box.prune(cutoff, index_before_day=keep_from)
            log.info("已清理过期的已上传记录", extra={"records": pruned})
        return days

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> int:
        """Run until ``stop()`` (or SIGTERM / SIGINT in the main thread); 0 on a clean stop."""
        restore = self._signals()
        services: list[Stoppable] = []
        try:
            services = self._services()
            log.info("前置机已启动", extra={"sources": [s.name for s in self.sources], "outbox": str(self.box.path)})
            self._next_poll = 0.0
            self._next_push = time.monotonic() + self.config.schedule.push_every_seconds
            while not self.stopping.is_set():
                try:
                    pause = self._round()
                except Exception:  # a bug or a broken disk must not end the gateway silently
                    log.exception("前置机本轮处理出错，稍后重试")
                    pause = ERROR_PAUSE
                if pause > 0:
                    self.stopping.wait(pause)
        finally:
            for s in services:
                s.stop()
            restore()
            log.info("前置机已停止", extra=self.box.counts())
        return 0

    def _round(self) -> float:
        """Poll when due, queue the daily counts when due, push when due, drain; how long to wait."""
        sched = self.config.schedule
        if time.monotonic() >= self._next_poll:
            self.poll()
            self._next_poll = time.monotonic() + sched.poll_every_seconds
        self.run_daily()
        if time.monotonic() >= self._next_push and self.available():
            _, why = self.drain(PUSHED_KINDS)
            if why == "empty":
                self._next_push = time.monotonic() + sched.push_every_seconds
        _, why = self.drain(until=self._next_poll)
        if self.imaging is not None and why in ("empty", "time") and self.available():
            until = max(self._next_poll, time.monotonic() + 5.0)  # a study at least, also behind a backlog
            _, down = self.imaging.pusher.drain(until=until, should_stop=self.stopping.is_set)
            if down:
                self._backoff(down)
                why = "unavailable"
        if why == "time":
            return 0.0
        wake = min(self._next_poll, self._next_push, time.monotonic() + 60.0)
        if why == "unavailable":
            wake = min(wake, self._retry_at)
        return max(0.0, wake - time.monotonic())

    def _signals(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handler(signum: int, _: FrameType | None) -> None:
            log.info("正在停止", extra={"signal": signal.Signals(signum).name})
            self.stop()

        old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
        return lambda: [signal.signal(s, h) for s, h in old.items()]

    def _services(self) -> list[Stoppable]:
        """The preload cache's local API, when configured (``[preload]``); the YB imaging endpoints
        (``[imaging] listen``)."""
        services: list[Stoppable] = []
        if self.imaging is not None and self.imaging.conf.listen:
            services.append(self.imaging.start_api(self.enqueue))
        if not self.preload_enabled():
            return services
        from huren.gateway import preload  # the web stack is loaded only when the local API runs

        service: Stoppable = preload.start(self.config, self.enqueue, self.box.sealer.cipher)
        return [*services, service]
