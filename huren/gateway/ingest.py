"""Poll a source into the outbox: records and the source's watermark written together.

Records are written in chunks, each in one transaction with the watermark of its last record. A
chunk is closed only where the watermark changes, so records sharing a watermark (e.g. rows with
the same ``last_update_dtime``) are never split between a stored and a lost chunk. When the source
fails mid-way, the complete groups read so far are kept and the last, possibly incomplete, group
is read again next time.

A backfill (``since``) reads a source again from an earlier point without touching its stored
watermark: the regular polls go on from where they were, and what the backfill already stored is
recognised as identical when they reach it (one record per change, never two).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from huren.gateway.mapping import MappingError
from huren.gateway.model import Record, Source
from huren.gateway.outbox import Dedup, Outbox

log = logging.getLogger("huren.gateway.ingest")


def _flush(box: Outbox, source: Source, buf: list[Record], dedup: Dedup, backfill: bool) -> int:
    mark = "" if backfill else next((r.watermark for r in reversed(buf) if r.watermark), "")
    settled: list[tuple[Record, bool, str]] = []
    n = box.write(buf, source=source.name, watermark=mark or None, dedup=dedup, settled=settled)
    for rec, ok, why in settled:  # read again, but already settled (e.g. a crash before the files were moved)
        notify(source, rec, ok, why)
    return n


def notify(source: Source, record: Record, ok: bool, reason: str) -> None:
    """Tell a source that keeps state per record (a drop folder moves the files to ``done/`` or
    ``failed/``) that the platform accepted or refused ``record``; sources without ``done`` ignore it."""
    done = getattr(source, "done", None)
    if done is None:
        return
    try:
        done(record, ok, reason)
    except Exception as exc:  # the record is settled anyway; the source sees it again next poll
        log.warning("来源的 done() 处理失败", extra={"source": source.name, "key": record.key, "error": str(exc)})


def ingest(
    box: Outbox,
    source: Source,
    *,
    since: str | None = None,
    chunk: int = 500,
    progress: Callable[[int, Record], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    resend: bool = False,
) -> int:
    """Read ``source`` from its stored watermark (or from ``since``: a backfill, which leaves the
    stored watermark alone) into ``box``; the number of records stored. A record identical to
    the last one stored for its key is skipped — with ``resend``, only when that one is pending."""
    backfill = since is not None
    start = since if since is not None else box.watermark(source.name)
    dedup: Dedup = "pending" if resend else "latest"
    buf: list[Record] = []
    stored = seen = 0
    try:
        for rec in source.poll(start):
            if buf and len(buf) >= chunk and (not rec.watermark or rec.watermark != buf[-1].watermark):
                stored += _flush(box, source, buf, dedup, backfill)
                buf = []
                if should_stop():
                    break
            buf.append(rec)
            seen += 1
            if progress is not None:
                progress(seen, rec)
    except Exception as exc:
        last = buf[-1].watermark if buf else ""
        keep = [r for r in buf if not last or r.watermark != last]
        if keep:
            stored += _flush(box, source, keep, dedup, backfill)
        box.source_polled(source.name, ok=False, error=poll_error(exc))
        log.warning("读取来源失败", extra={"source": source.name, "error": str(exc), "stored": stored})
        return stored
    if buf:
        stored += _flush(box, source, buf, dedup, backfill)
    box.source_polled(source.name, ok=True)
    if stored:
        log.info("已从来源读取记录", extra={"source": source.name, "stored": stored, "watermark": box.watermark(source.name)})
    return stored


def poll_error(exc: Exception) -> str:
    """The ``last_error`` ``gateway status`` shows for a failed poll: the sources' and the code
    map's own (Chinese) messages as they are; anything else (a site's own source, a bug) with the
    exception's class, which whoever fixes it needs."""
    from huren.gateway.sources.base import SourceError

    if isinstance(exc, SourceError | MappingError):
        return str(exc)
    return f"读取来源时出现意外错误（{exc.__class__.__name__}）：{exc}"
