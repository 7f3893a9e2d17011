"""Standard item catalog (XC-P2 upload, XC-P6 query/download) and local → standard mapping
(XC-P2, BJ-1.3/1.4 dictionary maintenance).

The catalog says, per standard code, whether a result is recognizable, for how many days, from
which institution level and in which region. Only a supervisor (the health commission operating
the platform) imports it; an import is all-or-nothing and replaces the rows of the same
(kind, code). Each institution maps its own local codes onto catalog codes; ``resolve`` turns an
institution's codes into standard codes and never guesses: a catalog code passes through, a mapped
code is translated, anything else is reported unmapped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from huren.context import Clock, Principal
from huren.domain import catalog as rows
from huren.domain import kinds
from huren.errors import Forbidden, InvalidInput, Problem
from huren.services import access
from huren.store import catalog as store
from huren.store.database import Database
from huren.wire import tabular

FORMATS = ("csv", "xlsx")

def _when(v: Any) -> str | None:
    return v.strftime("%Y-%m-%d %H:%M:%S") if v is not None else None


def item_out(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": r["kind"],
        "code": r["code"],
        "name": r["name"],
        "unit": r["unit"],
        "validity_days": int(r["validity_days"]),
        "recognizable": bool(r["recognizable"]),
        "min_level": int(r["min_level"]),
        "region_scope": r["region_scope"],
        "source_note": r["source_note"],
        "updated_at": _when(r.get("updated_at")),
    }


def _check_kind(kind: str | None, field: str = "kind") -> None:
    if kind is not None and kind not in kinds.BY_NAME:
        raise InvalidInput("类型无效", [Problem(field, "dictionary", f"类型应为 lab（检验）或 exam（检查），而不是“{kind}”")])


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise InvalidInput("导出格式无效", [Problem("format", "dictionary", f"导出格式应为 csv 或 xlsx，而不是“{fmt}”")])


class CatalogService:
    def __init__(self, db: Database, clock: Clock, *, on_change: Callable[[], None] | None = None) -> None:
        """``on_change`` is called after each catalog import (e.g. to drop a cached copy of the
        catalog, as the recognition service keeps one)."""
        self._db = db
        self._clock = clock
        self._on_change = on_change

    # -- the catalog ------------------------------------------------------------------------
    def import_rows(self, payload: Any, principal: Principal, *, kind: str | None = None) -> dict[str, Any]:
        """Import catalog rows given as a JSON array of objects (``row[i]`` in problems)."""
        access.require(principal, "catalog.write")
        _check_kind(kind)
        records, problems = rows.records_from_json(payload, rows.CATALOG_COLUMNS, ignored=rows.CATALOG_IGNORED)
        return self._import(records, problems, kind)

    def import_file(
        self,
        data: bytes,
        filename: str | None,
        principal: Principal,
        *,
        kind: str | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        """Import a CSV or XLSX catalog file (``row[N]``: N the row number a spreadsheet shows)."""
        access.require(principal, "catalog.write")
        _check_kind(kind)
        sheet = tabular.read_table(data, filename, content_type)
        records, problems = rows.records_from_table(
            sheet.header,
            sheet.rows,
            rows.CATALOG_COLUMNS,
            ignored=rows.CATALOG_IGNORED,
            defaulted=("kind",) if kind else (),
        )
        return self._import(records, problems, kind)

    def _import(self, records: list[rows.Record], problems: list[Problem], kind: str | None) -> dict[str, Any]:
        items, more = rows.parse_catalog(records, kind=kind)
        problems = problems + more
        if problems:
            raise InvalidInput(f"目录数据有{len(problems)}处问题，未导入任何行", problems)
        with self._db.write() as conn:
            existing = store.existing_keys(conn, [(r["kind"], r["code"]) for r in items])
            store.upsert_items(conn, items, now=self._clock.now())
        if self._on_change is not None:
            self._on_change()
        return {
            "imported": len(items),
            "created": len(items) - len(existing),
            "replaced": len(existing),
            **{k.name: sum(1 for r in items if r["kind"] == k.name) for k in (kinds.LAB, kinds.EXAM)},
        }

    def entries(self, kind: str, codes: Iterable[str]) -> dict[str, dict[str, Any]]:
        """code → catalog entry for the codes of ``kind`` the catalog holds (for the recognition
        engine); ``region_scope`` is a comma-separated list of division prefixes, "" = anywhere."""
        _check_kind(kind)
        wanted = sorted({c for c in codes if c})
        if not wanted:
            return {}
        return {r["code"]: r for r in self.list(kind, wanted)}

    def export(self, fmt: str, kind: str | None = None, codes: Iterable[str] | None = None) -> bytes:
        """The catalog (or the given codes) as CSV or XLSX; importing it gives the same rows back."""
        _check_format(fmt)
        data = [rows.catalog_export_row(r) for r in self.list(kind, codes)]
        if fmt == "csv":
            return tabular.write_csv(rows.CATALOG_EXPORT, data)
        return tabular.write_xlsx(rows.CATALOG_EXPORT, data, title="catalog")

    def count(self) -> int:
        with self._db.read() as conn:
            return store.count_items(conn)

    # -- local → standard mapping -------------------------------------------------------------
    def upload_mappings(self, payload: Any, principal: Principal, *, kind: str | None = None) -> dict[str, Any]:
        """The caller institution maps its own local codes (a JSON array of
        ``{kind, local_code, local_name, std_code}``); each std_code must be in the catalog."""
        access.require(principal, "directory.write")
        _check_kind(kind)
        records, problems = rows.records_from_json(payload, rows.MAPPING_COLUMNS, ignored=rows.MAPPING_IGNORED)
        return self._map(records, problems, principal, kind)

    def upload_mapping_file(
        self,
        data: bytes,
        filename: str | None,
        principal: Principal,
        *,
        kind: str | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        """The caller institution's mappings from a CSV or XLSX file (as exported)."""
        access.require(principal, "directory.write")
        _check_kind(kind)
        sheet = tabular.read_table(data, filename, content_type)
        records, problems = rows.records_from_table(
            sheet.header,
            sheet.rows,
            rows.MAPPING_COLUMNS,
            ignored=rows.MAPPING_IGNORED,
            defaulted=("kind",) if kind else (),
        )
        return self._map(records, problems, principal, kind)

    def _map(
        self, records: list[rows.Record], problems: list[Problem], principal: Principal, kind: str | None
    ) -> dict[str, Any]:
        maps, more = rows.parse_mappings(records, kind=kind)
        problems = problems + more
        if problems:
            raise InvalidInput(f"编码对照有{len(problems)}处问题，未保存任何行", problems)
        foreign = [m for m in maps if m["org_code"] and m["org_code"] != principal.org_code]
        if foreign:
            raise Forbidden(
                "只能维护本机构的编码对照",
                [
                    Problem(f"{m['label']}.org_code", "ownership", f"机构编码“{m['org_code']}”不是当前登录机构“{principal.org_code}”")
                    for m in foreign
                ],
            )
        with self._db.write() as conn:
            for desc in kinds.ALL:
                k = desc.name
                wanted = [m for m in maps if m["kind"] == k]
                if not wanted:
                    continue
                known = store.known_codes(conn, k, [m["std_code"] for m in wanted])
                problems.extend(
                    Problem(
                        f"{m['label']}.std_code",
                        "not_in_catalog",
                        f"标准编码“{m['std_code']}”不在{desc.zh}项目目录中",
                    )
                    for m in wanted
                    if m["std_code"] not in known
                )
                # a standard code always stands for itself (resolve passes it through): mapping it
                # onto another code would be silently ignored, so it is refused
                standard = store.known_codes(conn, k, [m["local_code"] for m in wanted])
                problems.extend(
                    Problem(
                        f"{m['label']}.local_code",
                        "conflict",
                        f"本地编码“{m['local_code']}”本身是{desc.zh}标准编码，只能对照到它自己，不能对照到“{m['std_code']}”",
                    )
                    for m in wanted
                    if m["local_code"] in standard and m["std_code"] != m["local_code"]
                )
            if problems:
                problems.sort(key=lambda p: _label_order(p.field))
                raise InvalidInput(f"编码对照有{len(problems)}处问题，未保存任何行", problems)
            keep = ("kind", "local_code", "local_name", "std_code")
            store.upsert_mappings(conn, principal.org_code, [{c: m[c] for c in keep} for m in maps], now=self._clock.now())
        return {
            "mapped": len(maps),
            **{k.name: sum(1 for m in maps if m["kind"] == k.name) for k in (kinds.LAB, kinds.EXAM)},
        }

    def mappings(self, principal: Principal, kind: str | None = None) -> list[dict[str, Any]]:
        """The caller institution's own mappings, with the standard names."""
        access.require(principal, "codemap.read")
        _check_kind(kind)
        with self._db.read() as conn:
            maps = store.mappings(conn, principal.org_code, kind)
            names = store.item_names(conn, kind)
        return [
            {
                "kind": m["kind"],
                "local_code": m["local_code"],
                "local_name": m["local_name"],
                "std_code": m["std_code"],
                "std_name": names.get((m["kind"], m["std_code"]), ""),
                "updated_at": _when(m["updated_at"]),
            }
            for m in maps
        ]

    def export_mappings(self, principal: Principal, fmt: str, kind: str | None = None) -> bytes:
        _check_format(fmt)
        data = [[m[c] for c in rows.MAPPING_EXPORT] for m in self.mappings(principal, kind)]
        if fmt == "csv":
            return tabular.write_csv(rows.MAPPING_EXPORT, data)
        return tabular.write_xlsx(rows.MAPPING_EXPORT, data, title="code-map")

    def resolve(self, org_code: str, kind: str, codes: Sequence[str]) -> tuple[list[str], list[str]]:
        """An institution's item codes → (standard codes, unmapped codes), both in the order given,
        without repeats. A code in the catalog passes through; a code the institution has mapped
        becomes its standard code; anything else is unmapped — never guessed. (The recognition
        engine resolves the same way; an upload cannot map a standard code onto another one.)"""
        _check_kind(kind)
        given = list(dict.fromkeys(c.strip() for c in codes if c and c.strip()))
        if not given:
            return [], []
        with self._db.read() as conn:
            standard = store.known_codes(conn, kind, given)
            mapped = store.resolve(conn, org_code, kind, [c for c in given if c not in standard])
        std: dict[str, None] = {}
        unmapped: list[str] = []
        for c in given:
            if c in standard:
                std[c] = None
            elif c in mapped:
                std[mapped[c]] = None
            else:
                unmapped.append(c)
        return list(std), unmapped

    # -- defined last: inside the class body the name ``list`` is this method from here on
    def list(self, kind: str | None = None, codes: Iterable[str] | None = None) -> list[dict[str, Any]]:
        _check_kind(kind)
        with self._db.read() as conn:
            return [item_out(r) for r in store.items(conn, kind, list(codes) if codes is not None else None)]


def _label_order(field: str) -> tuple[int, str]:
    """row[12].std_code → (12, field): problems in row order."""
    head = field.split(".", 1)[0]
    if head.startswith("row[") and head.endswith("]") and head[4:-1].isdigit():
        return int(head[4:-1]), field
    return -1, field
