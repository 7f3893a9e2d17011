"""A drop folder (BJ-1.2.1): the LIS writes a PDF and an index file per report.

For each report the LIS drops ``<name>.pdf`` and ``<name>.json`` (the report payload,
``{"labmaster": {…}, "lab_subitem": […]}`` / ``{"exammaster": …}``) or ``<name>.xml`` (the seed's
strReportInfo XML, ``<root><labmaster><item …/></labmaster>…``). The gateway takes a pair only when
it is complete:

* files named ``*.tmp`` / ``*.part`` (or starting with ``.``) are still being written and ignored;
* a file counts as written when its size and modification time did not change between two polls, or
  when it was last modified ``settle_seconds`` ago or more;
* a report needs its PDF (``require_pdf``), unless the index carries it as Base64 (``pdf``) or the
  report is a void (``data_status`` in ``void_values``); a ``lab_exam_report`` index (daily counts)
  needs none.

Nothing is deleted. Yielded files stay where they are until :meth:`DropFolder.done` moves the pair
to ``done/`` (accepted) or ``failed/`` with ``<name>.reason.txt`` beside it (refused); an index that
cannot be read, or lacks the report's key or identity fields, goes to ``failed/`` at once with its
reason. A name already taken in ``done/`` or ``failed/`` gets a ``~1``, ``~2`` … suffix.

Each pair is yielded once per process; a gateway restarted before ``done`` yields it again (the
platform upserts by key, so the report still arrives once). The record's ``watermark`` is the pair's
``<name>`` — the folder itself is the position, so ``poll`` ignores the watermark it is given.

Keys of a ``type = "folder"`` source::

    name = "lis-drop"
    type = "folder"
    path = "/data/lis-drop"         # the folder the LIS writes to
    settle_seconds = 10             # unchanged this long → complete
    require_pdf = true
    void_values = ["0"]             # data_status values that make the index a void
    done_dir = "done"               # relative to path
    failed_dir = "failed"
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huren.errors import HurenError
from huren.files import atomic_write, private_dir
from huren.gateway.model import Record, os_reason
from huren.gateway.sources.base import (
    NODES,
    VOID_VALUES,
    Conf,
    ConfigError,
    missing_key_fields,
    report_key,
    take_pdf,
    to_text,
    void_filter,
)
from huren.wire import xj_xml

if TYPE_CHECKING:
    from huren.gateway.mapping import Mapper

log = logging.getLogger("huren.gateway.sources.folder")

KEYS = ("path", "settle_seconds", "require_pdf", "void_values", "done_dir", "failed_dir")
INDEX_SUFFIXES = (".json", ".xml")
PARTIAL_SUFFIXES = (".tmp", ".part")
MAX_INDEX_BYTES = 64 * 1024 * 1024


class BadIndex(Exception):
    """The index file cannot become a record; the message is the reason written beside it."""


@dataclass(frozen=True)
class Pair:
    name: str
    index: Path
    pdf: Path | None


def parse_index(path: Path, data: bytes) -> tuple[str, dict[str, Any]]:
    """(kind, payload) of an index file: ``lab`` / ``exam`` / ``daily``. Raises BadIndex."""
    if len(data) > MAX_INDEX_BYTES:
        raise BadIndex(f"索引文件超过 {MAX_INDEX_BYTES} 字节")
    if path.suffix.lower() == ".xml":
        try:
            return xj_xml.report(xj_xml.safe_parse(data, limit=MAX_INDEX_BYTES, what=path.name))
        except HurenError as exc:
            raise BadIndex("；".join([exc.text(), *(p.message for p in exc.problems)])) from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError as exc:
            raise BadIndex("索引文件既不是 UTF-8 也不是 GB18030 编码") from exc
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise BadIndex(f"索引文件不是合法的 JSON：{exc}") from exc
    if not isinstance(doc, dict):
        raise BadIndex("索引文件应为一个 JSON 对象")
    doc = {str(k).lower(): v for k, v in doc.items()}
    if "lab_exam_report" in doc and not any(m in doc for m, _ in NODES.values()):
        rows = doc["lab_exam_report"]
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            raise BadIndex("lab_exam_report 应为非空的记录数组")
        return "daily", {"lab_exam_report": rows}
    kinds = [k for k, (m, _) in NODES.items() if m in doc]
    if len(kinds) != 1:
        raise BadIndex("索引文件应含且只含 labmaster 或 exammaster 之一" if kinds else "索引文件缺少 labmaster 或 exammaster 节点")
    kind = kinds[0]
    master_node, item_node = NODES[kind]
    master = doc[master_node]
    if isinstance(master, list) and len(master) == 1:
        master = master[0]
    if not isinstance(master, dict):
        raise BadIndex(f"{master_node} 应为一个对象（一份报告）")
    items = doc.get(item_node, [])
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise BadIndex(f"{item_node} 应为对象数组")
    return kind, {master_node: dict(master), item_node: [dict(i) for i in items]}


class DropFolder:
    """Complete PDF + index pairs from a folder (see the module docstring)."""

    def __init__(
        self,
        name: str,
        path: Path,
        *,
        settle_seconds: float = 10.0,
        require_pdf: bool = True,
        void_values: Sequence[str] = VOID_VALUES,
        done_dir: str = "done",
        failed_dir: str = "failed",
        mapper: Mapper | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name, self.path = name, path
        self.settle = settle_seconds
        self.require_pdf = require_pdf
        self.void_values = {str(v) for v in void_values}
        self.done_dir, self.failed_dir = path / done_dir, path / failed_dir
        self.mapper = mapper
        self.clock = clock
        self._seen: dict[str, tuple[int, int]] = {}  # file name → (size, mtime_ns) at the last poll
        self._pending: dict[str, Pair] = {}  # yielded, waiting for done()

    # -- scanning -----------------------------------------------------------------------------
    def _scan(self) -> tuple[dict[str, os.stat_result], set[str]]:
        """Regular files of the folder (not its subfolders) and the names being written."""
        files: dict[str, os.stat_result] = {}
        writing: set[str] = set()
        try:
            entries = list(os.scandir(self.path))
        except FileNotFoundError:
            log.warning("%s：投放文件夹 %s 不存在", self.name, self.path)
            return files, writing
        for e in entries:
            if not e.is_file(follow_symlinks=False):
                continue
            lower = e.name.lower()
            if e.name.startswith(".") or lower.endswith(PARTIAL_SUFFIXES):
                base = e.name.lstrip(".")
                for suffix in PARTIAL_SUFFIXES:
                    base = base[: -len(suffix)] if base.lower().endswith(suffix) else base
                writing.add(base.lower())
                continue
            try:
                files[e.name] = e.stat(follow_symlinks=False)
            except FileNotFoundError:  # gone between listing and stat
                continue
        return files, writing

    def _settled(self, name: str, st: os.stat_result, now: float) -> bool:
        before = self._seen.get(name)
        return before == (st.st_size, st.st_mtime_ns) or now - st.st_mtime >= self.settle

    def poll(self, watermark: str = "") -> Iterator[Record]:
        """Records of the complete pairs found now, oldest index first."""
        files, writing = self._scan()
        now = self.clock()
        settled = {n for n, st in files.items() if self._settled(n, st, now)}
        self._seen = {n: (st.st_size, st.st_mtime_ns) for n, st in files.items()}
        by_stem: dict[str, dict[str, str]] = {}
        for n in files:
            stem, suffix = os.path.splitext(n)
            by_stem.setdefault(stem, {})[suffix.lower()] = n
        order = sorted(by_stem, key=lambda s: min(files[n].st_mtime_ns for n in by_stem[s].values()))
        for stem in order:
            names = by_stem[stem]
            indexes = [names[s] for s in INDEX_SUFFIXES if s in names]
            if not indexes or stem in self._pending:
                continue
            pdf_name = names.get(".pdf")
            pdf = self.path / pdf_name if pdf_name else None
            if len(indexes) > 1:
                if all(n in settled for n in indexes):
                    self._fail(Pair(stem, self.path / indexes[0], pdf), "同名的 JSON 与 XML 索引文件同时存在，无法判断以哪个为准",
                               extra=[self.path / n for n in indexes[1:]])
                continue
            index = indexes[0]
            if index not in settled or any(n.lower() in writing for n in (index, f"{stem}.pdf")):
                continue
            pair = Pair(stem, self.path / index, pdf)
            try:
                record = self._record(pair, pdf_ready=pdf_name is not None and pdf_name in settled)
            except BadIndex as exc:
                self._fail(pair, str(exc))
                continue
            except OSError as exc:  # vanished or unreadable right now: try again next poll
                log.warning("%s：%s 暂时无法读取（%s），下次轮询再试", self.name, index, os_reason(exc))
                continue
            if record is None:
                continue
            self._pending[stem] = pair
            yield record

    def _record(self, pair: Pair, *, pdf_ready: bool) -> Record | None:
        """The record of a pair; None while its PDF is not complete; BadIndex when it never will be."""
        kind, payload = parse_index(pair.index, pair.index.read_bytes())
        if kind == "daily":
            first = payload["lab_exam_report"][0]
            key = f"daily:{to_text(first.get('org_code'))}|{to_text(first.get('date_t'))}"
            return Record("daily", key, payload, self.name, pair.name)
        master_node, _ = NODES[kind]
        master = payload[master_node]
        missing = missing_key_fields(master)
        if missing:
            raise BadIndex(f"{master_node} 缺少必填字段：{', '.join(missing)}")
        key = report_key(kind, master)
        if to_text(master.get("data_status")) in self.void_values:
            return Record(f"void_{kind}", key, void_filter(master), self.name, pair.name)
        try:
            pdf = take_pdf(master)
        except ValueError as exc:
            raise BadIndex(str(exc)) from exc
        if pdf is None and pair.pdf is not None:
            if not pdf_ready:
                return None
            pdf = pair.pdf.read_bytes()
            if not pdf.startswith(b"%PDF-"):
                raise BadIndex(f"{pair.pdf.name} 不是 PDF 文件（文件头不是 %PDF-）")
        if pdf is None and self.require_pdf:
            return None  # the LIS has not written the PDF yet
        if self.mapper is not None:
            payload, unmapped = self.mapper.map_payload(kind, payload)
            if unmapped:
                log.info("%s: %s has unmapped codes %s", self.name, key, ", ".join(unmapped))
        return Record(kind, key, payload, self.name, pair.name, {"pdf": pdf} if pdf else {})

    # -- after the upload ---------------------------------------------------------------------
    def done(self, record: Record, ok: bool, reason: str = "") -> list[Path]:
        """Move the record's pair to ``done/`` (``ok``) or ``failed/`` with ``<name>.reason.txt``;
        the new paths. Files already gone are skipped; nothing is ever deleted."""
        pair = self._pending.pop(record.watermark, None) or self._find(record.watermark)
        if pair is None:
            log.warning("%s：%s（%s）的文件已不在投放文件夹中", self.name, record.watermark, record.key)
            return []
        if ok:
            moved = self._move(pair, self.done_dir)
            log.info("%s: %s uploaded (%s); moved to %s", self.name, pair.name, record.key, self.done_dir)
            return moved
        return self._fail(pair, reason or "平台未接受")

    def _find(self, name: str) -> Pair | None:
        index = next((self.path / f"{name}{s}" for s in INDEX_SUFFIXES if (self.path / f"{name}{s}").is_file()), None)
        pdf = self.path / f"{name}.pdf"
        if index is None and not pdf.is_file():
            return None
        return Pair(name, index or pdf, pdf if pdf.is_file() else None)

    def _fail(self, pair: Pair, reason: str, extra: Sequence[Path] = ()) -> list[Path]:
        self._pending.pop(pair.name, None)
        moved = self._move(pair, self.failed_dir, extra)
        target = moved[0].parent / f"{moved[0].stem}.reason.txt" if moved else self.failed_dir / f"{pair.name}.reason.txt"
        atomic_write(target, f"{datetime.now():%Y-%m-%d %H:%M:%S}\n{reason}\n".encode(), durable=False)  # 0600
        log.warning("%s：%s 已移入 %s：%s", self.name, pair.name, self.failed_dir, reason)
        return [*moved, target]

    def _move(self, pair: Pair, into: Path, extra: Sequence[Path] = ()) -> list[Path]:
        private_dir(into)  # 0700
        files = [p for p in dict.fromkeys([pair.index, *([pair.pdf] if pair.pdf else []), *extra]) if p.is_file()]
        stem = pair.name
        n = 0
        while any((into / f"{stem}{p.suffix}").exists() for p in files) or (into / f"{stem}.reason.txt").exists():
            n += 1
            stem = f"{pair.name}~{n}"
        moved = []
        for p in files:
            target = into / f"{stem}{p.suffix}"
            os.rename(p, target)  # same file system: atomic, never a copy-and-delete
            moved.append(target)
        for name in list(self._seen):
            if os.path.splitext(name)[0] == pair.name:
                del self._seen[name]
        return moved


def build(raw: Mapping[str, Any], *, base_dir: Path | None = None, mapper: Mapper | None = None) -> DropFolder:
    conf = Conf(raw, KEYS)
    path = conf.path("path", base_dir)
    done_dir, failed_dir = conf.text("done_dir", "done"), conf.text("failed_dir", "failed")
    if Path(done_dir).is_absolute() or Path(failed_dir).is_absolute() or ".." in Path(done_dir).parts + Path(failed_dir).parts:
        raise ConfigError(f"{conf.where('done_dir')} / failed_dir 应为 path 之内的子文件夹（相对路径，不含 ..）")
    return DropFolder(
        conf.name,
        path,
        settle_seconds=conf.number("settle_seconds", 10.0),
        require_pdf=conf.flag("require_pdf", True),
        void_values=conf.strings("void_values", VOID_VALUES),
        done_dir=done_dir,
        failed_dir=failed_dir,
        mapper=mapper,
    )
