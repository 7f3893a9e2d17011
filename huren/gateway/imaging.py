"""Imaging on the gateway: the study pusher, the ``[imaging]`` settings of the spool and the
pusher, the cloud-film QR image, and the hook the runner drives (the YB endpoints it starts are
``huren.gateway.imaging_api``'s).

The ``pacs_views`` source (``huren.gateway.sources.pacs_views``) finds complete studies in the
PACS views and stages every file into the **spool** (``huren.gateway.imaging_spool``;
``[imaging] spool_dir``, default ``imaging-spool`` beside the outbox: sealed at rest, 0600 files
in a 0700 folder). The outbox then holds ONE record per study (kind ``study``): the instances'
UIDs, sizes, SHA-256 and spool names, never the bytes — so a PACS that purges its files after the
study was queued loses nothing, and the outbox stays small.

The pusher drains the ``study`` records (and the YB-4.5 deletion notices, kind
``image_deletion``) from the outbox: it sends the study's files with STOW-RS
(``huren.client.HurenClient.stow``, ``max_stow_bytes`` per request) and then commits the study
with every instance's SHA-256 (``HurenClient.commit_study``). Only a commit
answered ``complete`` settles the record; a crash anywhere before that leaves it pending and the
next run sends the study again — the platform stores identical bytes once and a commit repeated
is harmless, so a study arrives exactly once. The spool files of a settled study are removed
(unless a pending record still names them); ``sweep`` removes strays left by a crash.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from huren.client import HurenClient, StowPart
from huren.errors import PlatformRefused, PlatformUnavailable
from huren.gateway.imaging_spool import FetchError, Spool
from huren.gateway.model import Record, os_reason
from huren.gateway.outbox import Item, Outbox
from huren.gateway.outbox_seal import REC
from huren.gateway.sealing import Sealer
from huren.gateway.sources.base import SourceError
from huren.gateway.uploader import reason

if TYPE_CHECKING:
    from huren.gateway.config import GatewayConfig

log = logging.getLogger("huren.gateway.imaging")

#: outbox kinds the pusher drains (the runner's uploader does not know them)
KINDS = ("study", "image_deletion")
CAPTION = "扫描查看数字影像"
#: pushes of a study the platform still finds incomplete (or whose spool file cannot be had) before it becomes a dead letter
MAX_TRIES = 10
FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "C:/Windows/Fonts/msyh.ttc",
    "C:/Windows/Fonts/simhei.ttf",
)



def qr_png(url: str, *, caption: bool = True, font: Path | None = None) -> bytes:
    """The QR code of ``url`` as PNG; with ``caption`` (and a CJK font) "扫描查看数字影像" under it."""
    import segno
    from PIL import Image, ImageDraw, ImageFont

    buf = io.BytesIO()
    segno.make(url, error="m", micro=False).save(buf, kind="png", scale=8, border=4)
    if not caption or font is None:
        return buf.getvalue()
    code = Image.open(io.BytesIO(buf.getvalue())).convert("L")
    size = max(16, code.width // 12)
    face = ImageFont.truetype(str(font), size, index=2 if font.suffix.lower() == ".ttc" and "Noto" in font.name else 0)
    band = int(size * 1.8)
    out = Image.new("L", (code.width, code.height + band), 255)
    out.paste(code, (0, 0))
    draw = ImageDraw.Draw(out)
    width = draw.textlength(CAPTION, font=face)
    draw.text(((code.width - width) / 2, code.height - size // 3), CAPTION, font=face, fill=0)
    png = io.BytesIO()
    out.save(png, format="PNG", optimize=True)
    return png.getvalue()


def find_font(configured: str = "") -> Path | None:
    for f in ((configured,) if configured else FONTS):
        if f and Path(f).is_file():
            return Path(f)
    return None


def spool_names(payload: bytes) -> list[str]:
    doc = orjson.loads(payload)
    return [str(i["spool"]) for i in doc.get("instances", []) if isinstance(i, dict) and i.get("spool")]


class Pusher:
    """Drains ``study`` and ``image_deletion`` records from the outbox to the platform."""

    def __init__(self, box: Outbox, client: HurenClient, spool: Spool, *, max_stow_bytes: int = 256 * 1024 * 1024) -> None:
        self.box, self.client, self.spool = box, client, spool
        self.max_stow_bytes = max_stow_bytes
        #: pulls a queued study again whose spool files were lost and that has no file path (YB-4.2 C-MOVE)
        self.refetch: Callable[[dict[str, Any]], None] | None = None

    def referenced(self) -> set[str]:
        """The spool names the pending study records hold (all of them, also those queued behind
        an earlier record of their study)."""
        keep: set[str] = set()
        for row in self.box._rows("SELECT id, payload FROM record WHERE state = 'pending' AND kind = 'study'"):
            _, payload = self.box.sealer.open_keyed(row["payload"], REC, "payload", str(row["id"]))
            keep.update(spool_names(payload))
        return keep

    def drain(self, *, until: float | None = None, should_stop: Callable[[], bool] = lambda: False) -> tuple[int, str]:
        """Push records until the queue is empty, ``until`` (monotonic) passes or the platform is
        unavailable; (records settled, why the platform was unavailable or "")."""
        settled = 0
        while not should_stop() and (until is None or time.monotonic() < until):
            items = self.box.next_batch(KINDS, 1)
            if not items:
                break
            it = items[0]
            try:
                ok, why = self.push(it)
            except PlatformUnavailable as exc:
                self.box.settle(failed={it.id: str(exc)}, meta={"imaging_last_error": str(exc)})
                return settled, str(exc)
            if ok is None and it.attempts + 1 >= MAX_TRIES:  # never completes: do not hold the queue up for ever
                ok, why = False, reason(0, {"code": "incomplete", "message": f"{MAX_TRIES} 次推送后仍未完成：{why}"})
            if ok is None:  # not yet: the platform is missing instances, sent again next round
                self.box.settle(failed={it.id: why})
                return settled, why
            if ok:
                self.box.settle(done=[it.id], meta={"imaging_last_ok": time.strftime("%Y-%m-%d %H:%M:%S")})
                if it.kind == "study":
                    self.spool.remove(spool_names(it.payload), self.referenced())
                log.info("影像已推送并确认完整" if it.kind == "study" else "影像删除通知已上报", extra={"key": it.key})
            else:
                self.box.settle(dead={it.id: why})
                log.error("平台拒收影像记录（已转入死信）", extra={"id": it.id, "kind": it.kind, "key": it.key, "reason": why})
            settled += 1
        return settled, ""

    def push(self, it: Item) -> tuple[bool | None, str]:
        """(True, "") accepted; (False, reason) refused; (None, reason) to try again later."""
        if it.kind == "image_deletion":
            try:
                answer = self.client.image_deletion(it.payload)
            except PlatformRefused as exc:
                return False, reason(exc.status, exc.body)
            hidden = answer.get("hidden") if isinstance(answer, dict) else None
            if hidden == 0:
                log.warning("影像删除通知已上报，但平台未找到对应的影像（检查号或患者姓名不符，或尚未推送）", extra={"key": it.key})
            return True, ""
        return self._study(orjson.loads(it.payload))

    def _study(self, doc: dict[str, Any]) -> tuple[bool | None, str]:
        uid = str(doc["study_instance_uid"])
        instances = [i for i in doc["instances"] if isinstance(i, dict)]
        parts: list[tuple[int, Callable[[], Iterator[bytes]]]] = []
        broken: dict[str, str] = {}
        lost = [i for i in instances if not self.spool.file(str(i["spool"])).is_file()]
        if self.refetch is not None and any(not i.get("filepath") for i in lost):  # received by C-MOVE: no path
            try:
                self.refetch(doc)
            except (FetchError, SourceError) as exc:
                return None, f"前置机暂存的影像文件已丢失，从 PACS 重新拉取检查 {uid} 也失败：{exc}"
        for inst in instances:
            name = str(inst["spool"])
            if not self.spool.file(name).is_file():  # removed by hand, or found broken: fetch it again
                try:
                    again = self.spool.stage(str(inst.get("filepath", "")), str(inst["sop_instance_uid"]), uid)
                except FetchError as exc:
                    return None, f"前置机暂存的影像文件 {name} 已丢失，从 PACS 重新读取也失败：{exc}"
                if again.name != name:
                    self.spool.remove([again.name], self.referenced())
                    why = f"PACS 中的文件 {inst.get('filepath')} 已改变，请重新读取该检查"
                    return False, reason(0, {"code": "spool_changed", "message": why})
            parts.append((int(inst["size"]), lambda name=name: self._opened(name, broken)))  # type: ignore[misc]
        refused: list[tuple[str, str]] = []
        try:
            for group in self._groups(parts):
                res = self.client.stow(group)
                refused.extend(res.failed)
            answer = self.client.commit_study(uid, [(str(i["sop_instance_uid"]), str(i["sha256"])) for i in instances])
        except PlatformRefused as exc:
            return False, reason(exc.status, exc.body)
        except Exception as exc:
            if not broken:
                raise
            # a spool file that does not open (whatever the HTTP stack made of it): fetched again next time
            for name in broken:
                self.spool.file(name).unlink(missing_ok=True)
            log.warning("暂存的影像文件无法读取，已删除，将从 PACS 重新读取", extra={"study": uid, "error": str(exc)})
            return None, f"检查 {uid} 的暂存文件无法读取，将从 PACS 重新读取：{next(iter(broken.values()))}"
        state = answer.get("state") if isinstance(answer, dict) else None
        if state == "complete":
            return True, ""
        failed = answer.get("failed", []) if isinstance(answer, dict) else []
        if refused or any(isinstance(f, dict) and f.get("reason") == "sha256" for f in failed):
            return False, reason(409, {"code": "stow_refused", "message": "平台拒收了部分实例", "refused": refused, "failed": failed})
        return None, f"平台确认检查 {uid} 尚不完整：{orjson.dumps(failed).decode()[:500]}"

    def _opened(self, name: str, broken: dict[str, str]) -> Iterator[bytes]:
        try:
            yield from self.spool.chunks(name)
        except (FetchError, OSError) as exc:
            broken[name] = str(exc)
            raise

    def _groups(self, parts: list[tuple[int, Callable[[], Iterator[bytes]]]]) -> list[list[StowPart]]:
        groups: list[list[StowPart]] = [[]]
        total = 0
        for part in parts:
            if groups[-1] and total + part[0] > self.max_stow_bytes:
                groups.append([])
                total = 0
            groups[-1].append(part)
            total += part[0]
        return groups

# -- [imaging] ---------------------------------------------------------------------------------------

IMAGING_KEYS = (
    "spool_dir", "max_file_bytes", "fetch_timeout_seconds", "max_stow_bytes", "listen", "hosts", "clients", "token",
    "hospital_ids", "sm2_key_dir", "sm2_order", "session_hours", "caption_font", "timeout_seconds",
)


@dataclass(frozen=True, slots=True)
class ImagingConf:
    """``[imaging]`` checked: the spool, the pusher and (with ``listen``) the YB endpoints."""

    spool_dir: Path
    max_file_bytes: int = 512 * 1024 * 1024
    fetch_timeout_seconds: float = 60.0
    max_stow_bytes: int = 256 * 1024 * 1024
    listen: str = ""
    table: tuple[tuple[str, Any], ...] = ()

    def spool(self, sealer: Sealer) -> Spool:
        return Spool(self.spool_dir, sealer, max_file_bytes=self.max_file_bytes, http_timeout=self.fetch_timeout_seconds)


def imaging_conf(config: GatewayConfig) -> ImagingConf:
    from huren.gateway.config import ConfigError

    t = config.imaging
    unknown = sorted(set(t) - set(IMAGING_KEYS))
    if unknown:
        raise ConfigError(f"[imaging]：不认识的配置项 {'、'.join(unknown)}；可用的有 {'、'.join(IMAGING_KEYS)}")

    def num(key: str, default: float, minimum: float) -> float:
        value = t.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            raise ConfigError(f"[imaging] {key} 应为不小于 {minimum:g} 的数")
        return float(value)

    raw = t.get("spool_dir", "")
    if not isinstance(raw, str):
        raise ConfigError("[imaging] spool_dir 应为文件夹路径")
    spool = Path(raw).expanduser() if raw else config.outbox.path.parent / "imaging-spool"
    listen = t.get("listen", "")
    if not isinstance(listen, str):
        raise ConfigError('[imaging] listen 应为“主机:端口”，例如 "0.0.0.0:8766"')
    return ImagingConf(
        spool_dir=spool if spool.is_absolute() else config.base_dir / spool,
        max_file_bytes=int(num("max_file_bytes", 512 * 1024 * 1024, 1024)),
        fetch_timeout_seconds=num("fetch_timeout_seconds", 60.0, 1.0),
        max_stow_bytes=int(num("max_stow_bytes", 256 * 1024 * 1024, 1024)),
        listen=listen,
        table=tuple(t.items()),
    )


class ImagingHook:
    """What the runner drives: the ``[pacs_views]`` sources polled into the outbox (their waiting
    and refused studies written to the status, meta ``imaging_waiting:<source>`` /
    ``imaging_refused:<source>``), the pusher, the spool's sweep, the YB endpoints."""

    SWEEP_EVERY = 3600.0

    def __init__(self, config: GatewayConfig, box: Outbox, client: HurenClient) -> None:
        from huren.gateway.config import ConfigError
        from huren.gateway.sources import pacs_views

        self.config, self.box = config, box
        self.conf = imaging_conf(config)
        try:
            spool = self.conf.spool(box.sealer)
        except OSError as exc:
            raise ConfigError(f"[imaging] spool_dir：无法创建或使用暂存文件夹 {self.conf.spool_dir}（{os_reason(exc)}）") from exc
        try:
            self.sources = [
                pacs_views.build(raw, org_code=config.platform.org_code, spool=spool, base_dir=config.base_dir)
                for raw in config.pacs_views
            ]
        except ValueError as exc:  # the sources' ConfigError names the key as sources[<name>].<key>
            raise ConfigError(str(exc).replace("sources[", "pacs_views[", 1)) from exc
        self.pull = pull_source(config, spool) if config.pacs_dimse else None  # YB-4.2
        if self.pull is not None:
            self.sources.append(self.pull)  # the same poll / waiting / refused
        self.pusher = Pusher(box, client, spool, max_stow_bytes=self.conf.max_stow_bytes)
        if self.pull is not None:
            self.pusher.refetch = self.pull.refetch
        self._swept = 0.0

    def poll(self, should_stop: Callable[[], bool] = lambda: False) -> int:
        from huren.gateway.ingest import ingest

        n = 0
        for src in self.sources:
            if should_stop():
                break
            n += ingest(self.box, src, should_stop=should_stop)
            position = getattr(src, "position", "")
            if position:  # how far a poll read, also when it queued no study (the YB-4.2 pull)
                self.box.write([], source=src.name, watermark=position)
            meta = {}
            for what, found in (("waiting", src.waiting), ("refused", src.refused)):
                text = "；".join(f"{uid}：{why}" for uid, why in sorted(found.items()))
                meta[f"imaging_{what}:{src.name}"] = f"{len(found)} 个检查：{text}"[:4000] if found else ""
            self.box.write([], meta=meta)
            summary = "；".join(
                f"{len(found)} 个检查{label}（详见 gateway status --json 的 imaging_{what}:{src.name}）"
                for what, label, found in (("waiting", "尚不完整，等待重试", src.waiting), ("refused", "被拒绝推送", src.refused))
                if found
            )
            if summary:  # shown as the source's 最近错误 in `gateway status`, without counting a failed poll
                with self.box._lock:
                    self.box._conn.execute("UPDATE source_state SET last_error = ? WHERE name = ?", (summary, src.name))
        if time.monotonic() - self._swept > self.SWEEP_EVERY:
            self._swept = time.monotonic()
            swept = self.pusher.spool.sweep(self.pusher.referenced())
            if swept:
                log.info("已清理暂存区中不再需要的影像文件", extra={"files": swept})
        return n

    def close(self) -> None:
        """Stop the YB-4.2 pull's DICOM listener, if it was started."""
        if self.pull is not None:
            self.pull.close()

    def start_api(self, enqueue: Callable[[list[Record]], None]) -> Any:
        """The YB endpoints on ``[imaging] listen`` (``huren.gateway.imaging_api.start_yb``)."""
        from huren.gateway.imaging_api import start_yb

        return start_yb(self.config, self.conf, enqueue)


def pull_source(config: GatewayConfig, spool: Spool) -> Any:
    """The ``[pacs_dimse]`` pull (``huren.gateway.dicom_pull``) over its ``[pacs_text]`` view."""
    from huren.gateway import dicom_pull
    from huren.gateway.config import ConfigError
    from huren.gateway.sources import pacs_text

    raw = dict(config.pacs_dimse)
    wanted = raw.get("text_source") or (config.pacs_text[0].get("name") if len(config.pacs_text) == 1 else None)
    text = next((t for t in config.pacs_text if t.get("name") == wanted), None)
    if text is None:
        raise ConfigError("[pacs_dimse] 需要一个 [pacs_text] 检查文字视图（有多个时用 text_source 指明其 name）")
    try:
        source = pacs_text.build(text, org_code=config.platform.org_code, base_dir=config.base_dir)
    except ValueError as exc:  # the sources' ConfigError names the key as sources[<name>].<key>
        raise ConfigError(str(exc).replace("sources[", "pacs_text[", 1)) from exc
    try:
        return dicom_pull.build(raw, source, spool)
    except ValueError as exc:
        raise ConfigError(str(exc).replace("sources[", "pacs_dimse[", 1)) from exc


def imaging_hook(config: GatewayConfig, box: Outbox, client: HurenClient) -> ImagingHook:
    return ImagingHook(config, box, client)
