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

from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from huren.context import Clock, Principal
from huren.domain import catalog as rows
from huren.domain import kinds
from huren.errors import Forbidden, InvalidInput, NotFound, Problem
from huren.services import access
from huren.services.audit import AuditService
from huren.store import audit as audit_store
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
        "fee": None if r.get("fee") is None else float(r["fee"]),
        "updated_at": _when(r.get("updated_at")),
    }


#: What one catalog item's edit may change (the rest is the import's).
EDITABLE = ("validity_days", "recognizable", "min_level", "region_scope", "fee")


def _shown(field: str, value: Any) -> str:
    """A value as the audit entry writes it (old → new)."""
    if value is None or value == "":
        return "空"
    if field == "recognizable":
        return "是" if value else "否"
    if field == "fee":
        return f"{Decimal(str(value)):.2f}"
    return str(value)


def _check_kind(kind: str | None, field: str = "kind") -> None:
    if kind is not None and kind not in kinds.BY_NAME:
        raise InvalidInput("类型无效", [Problem(field, "dictionary", f"类型应为 lab（检验）或 exam（检查），而不是“{kind}”")])


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise InvalidInput("导出格式无效", [Problem("format", "dictionary", f"导出格式应为 csv 或 xlsx，而不是“{fmt}”")])


class CatalogService:
    def __init__(
        self, db: Database, clock: Clock, *, on_change: Callable[[], None] | None = None, audit: AuditService | None = None
    ) -> None:
        """``on_change`` is called after each catalog import or edit (e.g. to drop a cached copy of
        the catalog, as the recognition service keeps one); ``audit`` logs each edit (who, when,
        old → new) in the access log."""
        self._db = db
        self._clock = clock
        self._on_change = on_change
        self._audit = audit

    def edit_item(self, principal: Principal, kind: str, code: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Change one catalog item in place — validity days, recognizable, minimum level, region,
        fee (:data:`EDITABLE`) — checked as an import checks them, and write an access-log entry
        naming the item and each change (old → new), in the same transaction. Only whoever may
        import the catalog (a supervisor) may edit it. Returns the item as stored and the changes."""
        access.require(principal, "catalog.write")
        _check_kind(kind)
        unknown = sorted(set(changes) - set(EDITABLE))
        if unknown:
            raise InvalidInput("只能修改有效天数、是否互认、最低机构等级、适用区域与收费标准",
                               [Problem(f"catalog.{u}", "unknown_column", "该项不能在此修改") for u in unknown])
        with self._db.write() as conn:
            found = store.items(conn, kind, [code])
            if not found:
                raise NotFound(f"{kinds.BY_NAME[kind].zh}项目目录中没有编码“{code}”",
                               [Problem("catalog.code", "not_found", "目录中没有该项目")])
            old = found[0]
            values = {c: old[c] for c in ("kind", "code", "name", "unit", "source_note")}
            values |= {c: ("" if old[c] is None else old[c]) for c in EDITABLE}
            values["recognizable"] = 1 if old["recognizable"] else 0
            values |= {k: v for k, v in changes.items()}
            [parsed], problems = _parse_one(values)
            if problems:
                raise InvalidInput(f"修改有{len(problems)}处问题，未保存", problems)
            diff = {c: (old[c], parsed[c]) for c in EDITABLE if _norm(c, old[c]) != _norm(c, parsed[c])}
            if diff:
                store.update_item(conn, kind, code, {c: parsed[c] for c in diff}, now=self._clock.now())
                if self._audit is not None:
                    what = "；".join(f"{c} {_shown(c, a)}→{_shown(c, b)}" for c, (a, b) in diff.items())
                    target = f"catalog {kind}:{code} {what}"[:256]
                    audit_store.log_access_many(conn, self._audit.rows(principal, "catalog_edit", [(None, None, target)], read=False))
            [now] = store.items(conn, kind, [code])
        if diff and self._on_change is not None:
            self._on_change()
        return {"item": item_out(now), "changed": {c: [_plain(c, a), _plain(c, b)] for c, (a, b) in diff.items()}}

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

    def unmapped(self, principal: Principal) -> list[dict[str, Any]]:
        """The caller institution's local item codes its reports carried without a mapping (neither
        a catalog code nor mapped; see :func:`huren.store.catalog.unmapped_codes`): what it should
        add to its code mapping. Whoever may read its mapping may read these."""
        access.require(principal, "codemap.read")
        out: list[dict[str, Any]] = []
        with self._db.read() as conn:
            for k in (kinds.LAB, kinds.EXAM):
                for r in store.unmapped_codes(conn, principal.org_code, k.name):
                    out.append({"kind": k.name, "local_code": r["code"], "local_name": r["name"] or "",
                                "items": int(r["n"]), "last_at": _when(r["last_at"])})
        return out

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


def _parse_one(values: dict[str, Any]) -> tuple[list[dict[str, Any]], list[Problem]]:
    items, problems = rows.parse_catalog([rows.Record("catalog", values)])
    return (items or [{}]), problems


def _norm(field: str, v: Any) -> Any:
    if field == "fee":
        return None if v is None or v == "" else Decimal(str(v)).quantize(Decimal("0.01"))
    if field == "recognizable":
        return bool(v)
    return v


def _plain(field: str, v: Any) -> Any:
    n = _norm(field, v)
    return float(n) if isinstance(n, Decimal) else n


def _label_order(field: str) -> tuple[int, str]:
    """row[12].std_code → (12, field): problems in row order."""
    head = field.split(".", 1)[0]
    if head.startswith("row[") and head.endswith("]") and head[4:-1].isdigit():
        return int(head[4:-1]), field
    return -1, field
