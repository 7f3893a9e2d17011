"""The upstream runner: reads a child platform's feed and applies it on the platform above.

Stateless by design: the watermark lives on the platform that applies (``federation_peer``, read
with ``watermark``), written after each batch is applied; the feed lives on the platform that
keeps it (its store, the durable outbox of a platform). A runner killed at any moment starts again
from the applied watermark; a batch applied twice changes nothing (business key and version);
either side down means a pause and a retry, never a loss. The target refuses a batch that starts
past its watermark (a gap), and the runner reads again from where the target says.

Each round: read the feed after the watermark (a long poll: a push would only be a wake-up hint),
send the PDFs the target lacks (by SHA-256, once), apply the batch, take the target's new mark.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from huren.client import HurenClient
from huren.errors import PlatformRefused, PlatformUnavailable
from huren.federation.config import Endpoint, FederationConfig

log = logging.getLogger("huren.federation")


def client_for(e: Endpoint) -> HurenClient:
    return HurenClient(e.base_url, e.org_code, e.username, e.password, timeout=e.timeout_seconds)


@dataclass
class Round:
    applied: int = 0
    skipped: int = 0
    files: int = 0
    refused: list[dict[str, Any]] = field(default_factory=list)
    watermark: int = 0
    last_seq: int = 0
    more: bool = False


class Runner:
    def __init__(self, config: FederationConfig, *, source: HurenClient | None = None, target: HurenClient | None = None) -> None:
        self.config = config
        self.source = source or client_for(config.source)
        self.target = target or client_for(config.target)
        self._stop = threading.Event()
        self._mark: int | None = None

    def close(self) -> None:
        self.source.close()
        self.target.close()

    def stop(self) -> None:
        self._stop.set()

    def mark(self) -> int:
        """The target's applied watermark (asked once, then taken from each apply's answer)."""
        if self._mark is None:
            self._mark = int(self.target.watermark(self.config.platform)["applied_seq"])
        return self._mark

    def once(self, wait: float | None = None) -> Round:
        """One round; raises PlatformUnavailable when either side cannot be reached."""
        since = self.mark()
        return self._apply(since, self._read(since, wait))

    def _read(self, since: int, wait: float | None) -> dict[str, Any]:
        return self.source.feed(self.config.platform, since, self.config.batch, self.config.wait_seconds if wait is None else wait)

    def _apply(self, since: int, feed: dict[str, Any]) -> Round:
        """Send the PDFs the target lacks, then apply the batch read after ``since``."""
        code = self.config.platform
        changes: list[dict[str, Any]] = feed.get("changes", [])
        out = Round(watermark=since, last_seq=int(feed.get("last_seq", since)), more=bool(feed.get("more")))
        if not changes:
            return out
        digests = sorted({str(c["pdf_sha256"]) for c in changes if c.get("pdf_sha256") and "superseded_by" not in c})
        if digests:
            for sha in self.target.missing_files(code, digests):
                self.target.put_file(code, sha, self.source.get_file(code, sha))
                out.files += 1
        batch = {"platform": code, "from_seq": changes[0]["seq"], "to_seq": changes[-1]["seq"], "last_seq": out.last_seq, "changes": changes}
        try:
            answer = self.target.apply_batch(code, batch)
        except PlatformRefused as exc:
            if exc.status == 409:  # a gap (or the mark moved under us): ask the target again
                self._mark = None
                log.warning("目标平台报告序号不连续，重新读取水位：%s", exc)
                return out
            raise
        self._mark = int(answer["applied_seq"])
        out.applied, out.skipped, out.refused, out.watermark = int(answer["applied"]), int(answer["skipped"]), list(answer["refused"]), self._mark
        for r in out.refused:
            why = "；".join(str(x.get("message", "")) for x in r.get("problems") or []) or str(r.get("message") or "")
            log.error("目标平台拒收变更 seq=%s（%s）：%s", r.get("seq"), r.get("kind", ""), why or "未说明原因")
        return out

    def run(self, *, until_idle: bool = False) -> int:
        """Rounds until stopped (SIGTERM / SIGINT) — or, with ``until_idle``, until the feed has
        nothing more. Failures back off (1 s doubling to ``max_backoff_seconds``).

        Pipelined: while a batch is applied at the target, the next one (after the batch's last
        sequence number) is read from the source. It is used only when the target's new mark is
        where it starts; otherwise (a gap, a refusal, a failure) it is dropped and read again —
        so the order and the exactly-once rule are the unpipelined ones."""
        backoff = 1.0
        total = 0
        wait = 0.0 if until_idle else None
        ahead: tuple[int, Future[dict[str, Any]]] | None = None
        with ThreadPoolExecutor(1, thread_name_prefix="feed-read") as pool:
            while not self._stop.is_set():
                try:
                    since = self.mark()
                    if ahead is not None and ahead[0] != since:
                        _drop(ahead)
                        ahead = None
                    feed = ahead[1].result() if ahead is not None else self._read(since, wait)
                    ahead = None
                    changes = feed.get("changes") or []
                    if changes:
                        nxt = int(changes[-1]["seq"])
                        ahead = (nxt, pool.submit(self._read, nxt, 0.0 if feed.get("more") or until_idle else None))
                    r = self._apply(since, feed)
                except PlatformUnavailable as exc:
                    _drop(ahead)
                    ahead = None
                    log.warning("平台暂不可用，%.0f 秒后重试：%s", backoff, exc)
                    self._mark = None
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, self.config.max_backoff_seconds)
                    continue
                except BaseException:
                    _drop(ahead)
                    raise
                backoff = 1.0
                total += r.applied
                if until_idle and not r.more and r.applied == 0:
                    break
            _drop(ahead)
        return total

    def install_signals(self) -> None:
        def handler(signum: int, _: FrameType | None) -> None:
            self.stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def status(self) -> dict[str, Any]:
        """Both sides' view: the feed's last sequence number at the source, the applied mark and
        the lag at the target."""
        code = self.config.platform
        out: dict[str, Any] = {"platform": code}
        try:
            head = self.source.feed(code, 10**15, 1, 0.0)
            out["source_last_seq"] = int(head.get("last_seq", 0))
        except (PlatformUnavailable, PlatformRefused) as exc:
            out["source_error"] = str(exc)
        try:
            out["target"] = self.target.watermark(code)
        except (PlatformUnavailable, PlatformRefused) as exc:
            out["target_error"] = str(exc)
        if "source_last_seq" in out and "target" in out:
            out["backlog"] = max(0, out["source_last_seq"] - int(out["target"]["applied_seq"]))
        out["checked_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
        return out


def _drop(ahead: tuple[int, Future[dict[str, Any]]] | None) -> None:
    """Forget a read ahead, its answer or its failure (the round that needs it reads again)."""
    if ahead is not None:
        ahead[1].cancel()
