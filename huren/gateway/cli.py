"""``huren gateway run | status | backfill | retry-dead | keys rotate-data`` — called from ``huren.cli``."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from huren.crypto.aead import SealError
from huren.errors import NotConfigured
from huren.gateway import logs
from huren.gateway.config import ConfigError, GatewayConfig, build_sources, load
from huren.gateway.ingest import ingest
from huren.gateway.model import Record
from huren.gateway.outbox import Outbox
from huren.gateway.preload_store import PreloadStore
from huren.gateway.runner import Gateway, make_client, outbox_cipher
from huren.gateway.sealing import data_keys
from huren.gateway.yb_sessions import YbSessions, sessions_path


def _config(path: Path) -> GatewayConfig | None:
    try:
        return load(path)
    except ConfigError as exc:
        print(f"错误：配置文件有误：{exc}", file=sys.stderr)
        return None


def run(config_path: Path) -> int:
    """Run the gateway until SIGTERM / Ctrl-C."""
    config = _config(config_path)
    if config is None:
        return 2
    logs.setup(config.log_level)
    try:
        gw = Gateway(config)
    except ConfigError as exc:
        print(f"错误：配置文件有误：{exc}", file=sys.stderr)
        return 2
    try:
        return gw.run()
    except ConfigError as exc:
        print(f"错误：配置文件有误：{exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # e.g. the preload API's port is taken
        print(f"错误：{exc}", file=sys.stderr)
        return 2
    finally:
        gw.close()


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def status(config_path: Path, *, as_json: bool = False, dead_limit: int = 20, out: IO[str] | None = None) -> int:
    """Per source: watermark, queue depth, last success, failures, dead letters; then the dead letters."""
    out = out or sys.stdout
    config = _config(config_path)
    if config is None:
        return 2
    with Outbox(config.outbox.path, cipher=outbox_cipher(config)) as box:
        st = box.stats()
        dead = box.dead(dead_limit)
    if as_json:
        print(json.dumps(st | {"dead_letters": dead}, ensure_ascii=False, indent=2), file=out)
        return 0
    t = st["totals"]
    print(f"出站队列 {config.outbox.path}：待上传 {t['pending']}，已上传 {t['done']}，死信 {t['dead']}", file=out)
    m = st["meta"]
    print(f"最近上传成功：{m.get('last_upload_ok', '-')}；最近上传失败：{m.get('last_upload_error', '-')}", file=out)
    print(f"日报已处理至：{m.get('daily_last_day', '-')}", file=out)
    header = ("来源", "水位", "待上传", "已上传", "死信", "上次成功", "读取失败", "上传重试", "最近错误")
    print("\t".join(header), file=out)
    for name, s in st["sources"].items():
        row = (
            name, _short(s.get("watermark") or "-"), s["pending"], s["done"], s["dead"], _when(s.get("last_success")),
            s.get("poll_failures", 0), s["upload_failures"], s.get("last_error") or "-",
        )
        print("\t".join(str(x) for x in row), file=out)
    if dead:
        print(f"\n死信（前 {len(dead)} 条；修正后用 huren gateway retry-dead 重试）：", file=out)
        for d in dead:
            print(f"  #{d['id']}\t{d['kind']}\t{d['key']}\t{d['error']}", file=out)
    return 0


class Progress:
    """A one-line progress bar on stderr: a bar when the total is known, a counter otherwise."""

    def __init__(self, name: str, total: int | None, out: IO[str] | None = None) -> None:
        self.name, self.total, self.out = name, total, out or sys.stderr
        self.t0 = self._last = time.monotonic()
        self.count = 0

    def __call__(self, seen: int, rec: Record) -> None:
        self.update(seen, _short(rec.watermark, 40))

    def update(self, seen: int, note: str = "") -> None:
        self.count = seen
        now = time.monotonic()
        if now - self._last >= 0.2:
            self._last = now
            self.draw(note)

    def draw(self, watermark: str = "", end: str = "") -> None:
        rate = self.count / max(time.monotonic() - self.t0, 1e-9)
        if self.total:
            done = min(self.count / self.total, 1.0)
            bar = "#" * int(done * 30)
            head = f"[{bar:<30}] {self.count}/{self.total} {done:4.0%}"
        else:
            head = f"{self.count} 条"
        print(f"\r{self.name} {head}  {rate:,.0f} 条/秒  {watermark}", end=end, file=self.out, flush=True)


def _text_name(raw: Any, config: Any) -> str:
    """The name a ``[pacs_text]`` table goes by (its default when there is only one)."""
    return str(raw.get("name") or "pacs_text")


def backfill(config_path: Path, since: date, only: Sequence[str] = (), *, resend: bool = False) -> int:
    """Re-read sources from ``since`` into the outbox (with a progress bar); the running gateway
    uploads what is new or changed (with ``resend``: everything read, e.g. after the platform
    lost data). The stored watermarks are left alone."""
    config = _config(config_path)
    if config is None:
        return 2
    logs.setup("WARNING")
    confs = [c for c in config.sources if not only or c["name"] in only]
    texts = [t for t in config.pacs_text if not only or _text_name(t, config) in only]  # YB-4.1.1 views are report sources too
    missing = set(only) - {c["name"] for c in confs} - {_text_name(t, config) for t in texts}
    if missing:
        print(f"错误：没有名为 {', '.join(sorted(missing))} 的来源", file=sys.stderr)
        return 2
    # the watermark just before the day begins: sources read what comes after it
    start = (datetime.combine(since, datetime.min.time()) - timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S")
    total = 0
    client = make_client(config)
    try:
        sources = build_sources(replace(config, sources=tuple(confs), pacs_text=tuple(texts)), client)
    except ConfigError as exc:
        print(f"错误：配置文件有误：{exc}", file=sys.stderr)
        client.close()
        return 2
    with Outbox(config.outbox.path, cipher=outbox_cipher(config)) as box, client:
        for src in sources:
            count = getattr(src, "count", None)
            bar = Progress(src.name, count(start) if callable(count) else None)
            stored = ingest(box, src, since=start, progress=bar, resend=resend)
            bar.draw(end="\n")
            print(f"{src.name}：读取 {bar.count} 条，新入队 {stored} 条", file=sys.stderr)
            total += stored
    print(json.dumps({"queued": total}, ensure_ascii=False))
    return 0


def retry_dead(config_path: Path, ids: Sequence[int] = (), *, all_dead: bool = False) -> int:
    """Put dead letters back in the queue (after the cause was fixed)."""
    config = _config(config_path)
    if config is None:
        return 2
    if not all_dead and not ids:
        print("错误：请给出死信编号，或用 --all", file=sys.stderr)
        return 2
    with Outbox(config.outbox.path, cipher=outbox_cipher(config)) as box:
        retried, superseded = box.retry_dead(None if all_dead else list(ids))
    res: dict[str, Any] = {"retried": retried, "superseded": superseded}
    if ids:
        res["not_dead"] = sorted(set(ids) - set(retried) - set(superseded))
    print(json.dumps(res, ensure_ascii=False))
    if superseded:
        print("注：已有更新版本上传成功的死信不再重试（以免覆盖新数据）", file=sys.stderr)
    return 0


def preload_path(config: GatewayConfig) -> Path | None:
    """The preload cache's file when ``[preload]`` is configured (as ``preload_conf`` places it)."""
    if not config.preload:
        return None
    raw = config.preload.get("path")
    path = Path(raw) if isinstance(raw, str) and raw else config.outbox.path.parent / "preload.db"
    return path if path.is_absolute() else config.base_dir / path


def rotate_data(config_path: Path, *, resume: bool = False) -> int:
    """A new data key for the gateway (``keys/`` beside the outbox), then the outbox's, the
    preload cache's and the YB workstation logins' rows sealed again under it, in batches with a progress bar; ``resume``
    finishes an interrupted run under the current key instead of adding another."""
    config = _config(config_path)
    if config is None:
        return 2
    keys = data_keys(config.outbox.path.parent, config.outbox.cipher)
    try:
        if resume:
            cipher = keys.cipher()
            print(f"继续使用当前数据密钥（编号 {cipher.active}）重新加密")
        else:
            kid, cipher = keys.rotate()
            print(f"已生成新的数据密钥（编号 {kid}，{keys.path}），旧密钥保留以读取尚未重新加密的数据")
    except NotConfigured as exc:
        print(f"错误：{exc.message}", file=sys.stderr)
        return 2
    stores: list[tuple[str, Any]] = [("出站队列", Outbox(config.outbox.path, cipher=cipher))]
    cache = preload_path(config)
    if cache is not None and cache.exists():
        stores.append(("预加载缓存", PreloadStore(cache, cipher=cipher)))
    sessions = sessions_path(config.outbox.path)
    if sessions.exists():
        stores.append(("工作站登录", YbSessions(sessions, cipher)))
    summary: dict[str, Any] = {"active_key": cipher.active}
    try:
        for what, store in stores:
            bar = Progress(what, store.reseal_total())
            try:
                resealed, seen = store.reseal(cipher, progress=bar.update)
            except SealError:
                print(f"\n错误：{what}中有无法打开的记录（数据密钥不匹配或记录已被改动）；已完成的批次已保存，可修复后用 --resume 继续", file=sys.stderr)
                return 1
            bar.count = seen
            bar.draw(end="\n")
            print(f"{what}共 {seen} 行：重新加密 {resealed}，已是当前密钥 {seen - resealed}", file=sys.stderr)
            summary[what] = {"rows": seen, "resealed": resealed}
    finally:
        for _, store in stores:
            if isinstance(store, Outbox):
                store.close()
    print("运行中的前置机请重启，之后新写入的记录才使用新密钥；重启后可用 --resume 再运行一次补齐", file=sys.stderr)
    print(json.dumps(summary, ensure_ascii=False))
    return 0
