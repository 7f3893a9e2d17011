"""Local codes → standard codes (HZ-20/21 "convert to the standard", BJ-1.3/1.4 dictionary upkeep).

A hospital's LIS / PACS often names its items and departments by local codes. Before a report goes
to the platform the gateway rewrites, where a local code is given:

* ``lab_subitem[*].class_code``  — kind ``lab``, through the institution's code map;
* ``exam_subitem[*].exam_item_code`` — kind ``exam``, through the code map;
* ``*_dept_std_code`` of a master (participant, performer, authenticator) — kind ``dept``: when the
  standard code is empty or not a STD_DEPT code, the local department (``*_dept_code``, or the
  non-standard value itself) is looked up; the STD_DEPT name comes with it.

A code that already is standard passes through unchanged. A code that is neither standard nor
mapped is **reported** (returned, counted in :attr:`Mapper.unmapped`, logged once) and left as it
was — never guessed. The platform then decides (it may accept it as non-recognizable or reject it,
and the rejection names the field).

Where the table comes from (``[mapping]`` in gateway.toml)::

    [mapping]
    source = "platform"        # the platform's code map, catalog and departments (huren.client)
    refresh_seconds = 3600     # fetched again after this long (Mapper.refresh() forces it)
    cache = "codemap.json"     # optional: last good table, used when the platform is unreachable

    [mapping]
    source = "csv"
    table = "codes.csv"        # columns kind,local_code,std_code[,local_name]; kind lab|exam|dept
    catalog = "catalog.csv"    # optional: standard codes (columns kind,code) that pass through

Standard codes known without asking anyone: STD_DEPT (packaged dictionary), and every ``std_code``
of the table itself.
"""

from __future__ import annotations

import copy
import csv
import functools
import io
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huren.domain import dictionaries, kinds
from huren.files import atomic_write
from huren.gateway.model import Record, os_reason

if TYPE_CHECKING:
    from huren.client import HurenClient

log = logging.getLogger("huren.gateway.mapping")

KINDS = ("lab", "exam", "dept")

#: Department triples of each master node: (local code, standard code, standard name).
DEPT_FIELDS = {
    "labmaster": ("participant_dept", "performer_dept"),
    "exammaster": ("participant_dept", "performer_dept", "authenticator_dept"),
}


class MappingError(Exception):
    """The code table could not be loaded (platform unreachable, bad CSV)."""


@dataclass(frozen=True)
class CodeTable:
    """Local → standard codes per kind, and the codes known to be standard already."""

    local: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # kind → {local: std}
    standard: Mapping[str, frozenset[str]] = field(default_factory=dict)  # kind → std codes

    def is_standard(self, kind: str, code: str) -> bool:
        if kind == "dept" and code in dictionaries.load("STD_DEPT"):
            return True
        return code in self.standard.get(kind, frozenset()) or code in self.local.get(kind, {}).values()

    def resolve(self, kind: str, code: str) -> str | None:
        """The standard code for ``code``: itself when standard, its mapping, or None (unmapped)."""
        if self.is_standard(kind, code):
            return code
        return self.local.get(kind, {}).get(code)

    def to_json(self) -> dict[str, Any]:
        return {
            "local": {k: dict(v) for k, v in self.local.items()},
            "standard": {k: sorted(v) for k, v in self.standard.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CodeTable:
        return cls(
            {k: dict(v) for k, v in data.get("local", {}).items()},
            {k: frozenset(v) for k, v in data.get("standard", {}).items()},
        )


def table_of(rows: Iterable[tuple[str, str, str]], standard: Mapping[str, Iterable[str]] | None = None) -> CodeTable:
    """A table from ``(kind, local_code, std_code)`` rows and optional standard code lists."""
    local: dict[str, dict[str, str]] = {k: {} for k in KINDS}
    for kind, code, std in rows:
        local.setdefault(kind, {})[code] = std
    return CodeTable(local, {k: frozenset(v) for k, v in (standard or {}).items()})


class Mapper:
    """A cached code table and the rewriting of payloads with it.

    ``load`` returns a fresh :class:`CodeTable`; it is called on first use and again when the table
    is older than ``refresh_seconds``. When a refresh fails the previous table stays in use.
    """

    def __init__(
        self, load: Callable[[], CodeTable], *, refresh_seconds: float = 3600.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._load = load
        self._refresh = refresh_seconds
        self._clock = clock
        self._table: CodeTable | None = None
        self._loaded_at = 0.0
        #: ``"lab:AST"`` → how many times it was met unmapped (for ``gateway status``).
        self.unmapped: Counter[str] = Counter()

    def refresh(self) -> CodeTable:
        """Load the table now (raises MappingError when there is no table at all afterwards)."""
        try:
            table = self._load()
        except MappingError as exc:
            if self._table is None:
                raise
            log.warning("刷新编码对照表失败，继续使用上一次的对照表：%s", exc)
            self._loaded_at = self._clock()
            return self._table
        self._table, self._loaded_at = table, self._clock()
        return table

    def table(self) -> CodeTable:
        if self._table is None or self._clock() - self._loaded_at >= self._refresh:
            return self.refresh()
        return self._table

    # -- rewriting --------------------------------------------------------------------------------
    def map_payload(self, kind: str, payload: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """A copy of a ``lab`` / ``exam`` payload with local codes made standard, and the codes that
        could not be (``"lab:AST"``, ``"dept:1511"``), each once. Other kinds come back unchanged."""
        out = copy.deepcopy(dict(payload))
        k = kinds.BY_NAME.get(kind)
        if k is None:
            return out, []
        table = self.table()
        master_node, item_node = k.master_node, k.item_node
        item_field = k.item_code_field
        missing: dict[str, None] = {}
        for item in out.get(item_node) or []:
            if not isinstance(item, dict):
                continue
            code = str(item.get(item_field) or "").strip()
            if not code:
                continue
            std = table.resolve(kind, code)
            if std is None:
                missing[f"{kind}:{code}"] = None
            else:
                item[item_field] = std
        master = out.get(master_node)
        if isinstance(master, dict):
            self._map_depts(table, master, DEPT_FIELDS[master_node], missing)
        for code in missing:
            if code not in self.unmapped:
                log.warning("本地编码 %s 没有对照：请把它加入编码对照表（暂按原编码上传）", code)
            self.unmapped[code] += 1
        return out, list(missing)

    @staticmethod
    def _map_depts(table: CodeTable, master: dict[str, Any], prefixes: Iterable[str], missing: dict[str, None]) -> None:
        names = dictionaries.load("STD_DEPT")
        for prefix in prefixes:
            code = str(master.get(f"{prefix}_code") or "").strip()
            std = str(master.get(f"{prefix}_std_code") or "").strip()
            if std and table.is_standard("dept", std):
                if not master.get(f"{prefix}_std_name") and std in names:
                    master[f"{prefix}_std_name"] = names[std]
                continue
            found = next((s for s in (table.resolve("dept", c) for c in (std, code) if c) if s is not None), None)
            if found is None:
                if std or code:
                    missing[f"dept:{std or code}"] = None
                continue
            master[f"{prefix}_std_code"] = found
            if found in names:
                master[f"{prefix}_std_name"] = names[found]

    def map_record(self, record: Record) -> tuple[Record, list[str]]:
        """The record with its payload mapped (see :meth:`map_payload`)."""
        payload, missing = self.map_payload(record.kind, record.payload)
        return (replace(record, payload=payload) if record.kind in ("lab", "exam") else record), missing


# -- where tables come from ---------------------------------------------------------------------
def _read_csv(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise MappingError(f"无法读取 {path}：{os_reason(exc)}") from exc
    except UnicodeDecodeError as exc:
        raise MappingError(f"{path} 不是 UTF-8 编码") from exc
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    absent = [c for c in required if c not in header]
    if absent:
        raise MappingError(f"{path} 缺少列 {'、'.join(absent)}（现有列：{'、'.join(header) or '无'}）")
    return [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()} for row in reader]


def csv_table(path: Path, catalog: Path | None = None) -> CodeTable:
    """A table from a CSV of ``kind,local_code,std_code`` (and a catalog CSV of ``kind,code``)."""
    rows: list[tuple[str, str, str]] = []
    for n, row in enumerate(_read_csv(path, ("kind", "local_code", "std_code")), start=2):
        kind = row["kind"].lower()
        if kind not in KINDS or not row["local_code"] or not row["std_code"]:
            raise MappingError(f"{path} 第 {n} 行：kind 应为 lab、exam 或 dept，且 local_code、std_code 不能为空")
        rows.append((kind, row["local_code"], row["std_code"]))
    standard: dict[str, set[str]] = {}
    if catalog is not None:
        for row in _read_csv(catalog, ("kind", "code")):
            if row["code"]:
                standard.setdefault(row["kind"].lower(), set()).add(row["code"])
    return table_of(rows, standard)


def _get(what: str, fetch: Callable[[], Any]) -> Any:
    from huren.errors import PlatformRefused, PlatformUnavailable

    try:
        return fetch()
    except (PlatformUnavailable, PlatformRefused, OSError) as exc:
        raise MappingError(f"{what}失败：{exc}") from exc


def platform_table(client: HurenClient) -> CodeTable:
    """The institution's code map, the standard catalog and its departments, from the platform."""
    rows = [
        (str(m["kind"]), str(m["local_code"]), str(m["std_code"]))
        for m in _get("从平台获取编码对照表", client.code_map).get("mappings", [])
    ]
    standard: dict[str, set[str]] = {"lab": set(), "exam": set()}
    for item in _get("从平台获取标准项目目录", client.catalog).get("items", []):
        standard.setdefault(str(item["kind"]), set()).add(str(item["code"]))
    offset, limit = 0, 1000
    while True:
        page = _get("从平台获取科室对照", functools.partial(client.depts, limit=limit, offset=offset))
        depts = page.get("dept", [])
        rows += [("dept", str(d["dept_code"]), str(d["dept_std_code"])) for d in depts if d.get("dept_std_code")]
        offset += len(depts)
        if not depts or offset >= int(page.get("total", 0)):
            break
    return table_of(rows, standard)


def cached(load: Callable[[], CodeTable], path: Path) -> Callable[[], CodeTable]:
    """``load`` that saves each good table to ``path`` and falls back to it when loading fails."""

    def run() -> CodeTable:
        try:
            table = load()
        except MappingError as exc:
            if not path.is_file():
                raise
            log.warning("编码对照表：%s；改用缓存的对照表 %s", exc, path)
            try:
                return CodeTable.from_json(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError) as bad:
                raise MappingError(f"{exc}；且缓存的对照表 {path} 无法读取：{os_reason(bad) if isinstance(bad, OSError) else '内容已损坏'}") from bad
        atomic_write(path, json.dumps(table.to_json(), ensure_ascii=False).encode(), durable=False)  # 0600
        return table

    return run


def from_config(conf: Mapping[str, Any], *, client: HurenClient | None = None, base_dir: Path | None = None) -> Mapper:
    """A Mapper from the ``[mapping]`` table (see the module docstring)."""

    def path(key: str) -> Path | None:
        value = conf.get(key)
        if value is None:
            return None
        p = Path(str(value)).expanduser()
        return p if p.is_absolute() or base_dir is None else base_dir / p

    allowed = {"source", "table", "catalog", "refresh_seconds", "cache"}
    unknown = sorted(set(conf) - allowed)
    if unknown:
        raise ValueError(f"[mapping] 不认识的配置项 {'、'.join(unknown)}；可用的有 {'、'.join(sorted(allowed))}")
    source = str(conf.get("source", "platform"))
    refresh = conf.get("refresh_seconds", 3600)
    if not isinstance(refresh, (int, float)) or isinstance(refresh, bool) or refresh <= 0:
        raise ValueError("[mapping] refresh_seconds 应为正数（秒）")
    load: Callable[[], CodeTable]
    if source == "platform":
        if client is None:
            raise ValueError("[mapping] source = \"platform\" 需要平台连接（[platform] 配置）")
        platform = client
        load = lambda: platform_table(platform)  # noqa: E731
    elif source == "csv":
        table, catalog = path("table"), path("catalog")
        if table is None:
            raise ValueError("[mapping] 缺少 table：source = \"csv\" 时应给出对照表 CSV 文件")
        load = lambda: csv_table(table, catalog)  # noqa: E731
    else:
        raise ValueError("[mapping] source 应为 \"platform\" 或 \"csv\"")
    cache = path("cache")
    if cache is not None:
        load = cached(load, cache)
    return Mapper(load, refresh_seconds=float(refresh))
