"""One mechanism for every supervision table (issue 11 item 7): a table is described once
(:class:`Table`: columns with Chinese labels, the rows, what counts as an exception), then

* :func:`view` applies the request's ``sort`` / ``dir`` / ``exc`` parameters (server-side sorting
  by a header link, "只看异常") and prepares every cell, link and header for the one macro
  ``data_table`` in ``supervision/_macros.html``;
* :func:`export` answers ``?export=<table id>&format=xlsx|csv`` with exactly the rows the page
  shows — the page's filters, the sort and "只看异常" applied — under the same Chinese headers
  (:func:`huren.wire.tabular.export_table`).

Parameters are per table (``sort=<table>.<column>``, ``exc=<table>``), so a page with several
tables sorts each on its own; every other query parameter (the page's filters) is kept in the
links. No script: a header is a link (the CSP allows no inline script anyway).

A page uses it as::

    t = tables.view(request, Table("orgs", "各机构完整率", COLUMNS, rows, exception=..., ...))
    if (r := tables.export(request, t)) is not None:
        return r
    return page(..., orgs_table=t)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import Response

from huren.wire import tabular

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Column:
    """One column: ``key`` into the row (or ``value``), a Chinese ``label``; ``text`` formats the
    value for the page (the export writes the value itself: numbers stay numbers)."""

    key: str
    label: str
    num: bool = False
    value: Callable[[Row], Any] | None = None
    text: Callable[[Row], str] | None = None
    tag: Callable[[Row], str] | None = None  # a tag class ("ok", "bad", "warn") around the text
    cls: Callable[[Row], str] | None = None  # extra cell classes ("diff", "lvl-red")
    link: Callable[[Row], str] | None = None  # a link from the cell down to the rows behind it
    nowrap: bool = False
    percent: bool = False  # the value is per cent (one decimal): shown "95.0%"
    lines: Callable[[Row], Sequence[str]] | None = None  # more lines under the text (the file: same cell, one per line)
    data: Callable[[Row], Sequence[tuple[str, str]]] | None = None  # data-* attributes of the cell
    export: bool = True  # False: on the page only (an action such as 修改), not in the file

    def get(self, row: Row) -> Any:
        return self.value(row) if self.value is not None else row.get(self.key)

    def shown(self, row: Row) -> str:
        if self.text is not None:
            return self.text(row)
        v = self.get(row)
        if v is None or v == "":
            return "—"
        if self.percent:
            return f"{v:.1f}%"
        if isinstance(v, float):
            return f"{v:.1f}"
        if isinstance(v, bool):
            return "是" if v else "否"
        return str(v)


@dataclass(slots=True)
class Table:
    id: str  # also the export's file name and the parameters' prefix: [a-z_]+
    title: str  # Chinese; the sheet's name
    columns: Sequence[Column]
    rows: list[Row]
    exception: Callable[[Row], bool] = lambda r: False
    exception_label: str = ""  # what an exception is here ("低于阈值或无上传")
    row_class: Callable[[Row], str] = lambda r: ""
    row_data: Sequence[tuple[str, str]] = ()  # (data-* name, row key) on each <tr>
    empty: str = "没有数据"
    default_sort: str = ""  # column key; "" keeps the rows' own order
    default_desc: bool = False
    #: at most this many rows written on the page (0: all); the export holds every row shown
    limit: int = 0
    #: the rows are one page of a longer list of ``total`` rows (the page says the export holds them all)
    total: int | None = None
    #: a footer line (a total over everything in scope): its cells' texts, not exported
    foot: Sequence[str] = ()
    #: the page the links lead to ("": the request's own; a form's POST answer names its GET page)
    path: str = ""
    # the request's state, set by view()
    sort: str = ""
    desc: bool = False
    only_exceptions: bool = False
    shown: list[Row] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)
    head: list[Head] = field(default_factory=list)
    body: list[Line] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Cell:
    text: str
    cls: str
    tag: str
    href: str
    lines: Sequence[str] = ()
    data: Sequence[tuple[str, str]] = ()


@dataclass(frozen=True, slots=True)
class Head:
    label: str
    cls: str
    href: str
    aria: str
    arrow: str


@dataclass(frozen=True, slots=True)
class Line:
    cls: str
    data: list[tuple[str, str]]
    cells: list[Cell]


def _key(v: Any) -> tuple[int, Any]:
    """Sort key: None / "" last in either direction is handled by the caller; numbers by value,
    everything else as text."""
    if isinstance(v, bool):
        return (0, int(v))
    if isinstance(v, (int, float)):
        return (0, v)
    return (1, str(v))


def _url(request: Request, drop: Sequence[str] = (), add: Sequence[tuple[str, str]] = (), path: str = "") -> str:
    """The page's own URL with its parameters, ``drop`` left out and ``add`` added (never an export)."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in (*drop, "export", "format")]
    q = urlencode(params + list(add))
    path = path or request.url.path
    return f"{path}?{q}" if q else path


def view(request: Request, t: Table) -> Table:
    """Apply ``sort`` / ``dir`` / ``exc`` of the request to ``t`` (in place; returns it) and
    prepare what the macro writes: ``head`` (label, classes, link, aria-sort, arrow) and
    ``body`` (row class, data-* attributes, cells)."""
    q = request.query_params
    cols = {c.key: c for c in t.columns}
    prefix, _, key = q.get("sort", "").partition(".")
    if prefix == t.id and key in cols:
        t.sort, t.desc = key, q.get("dir", "asc") == "desc"
    else:
        t.sort, t.desc = t.default_sort, t.default_desc
    t.only_exceptions = t.id in q.getlist("exc")
    rows = [r for r in t.rows if t.exception(r)] if t.only_exceptions else list(t.rows)
    if t.sort in cols:
        col = cols[t.sort]
        filled = [r for r in rows if col.get(r) not in (None, "")]
        blank = [r for r in rows if col.get(r) in (None, "")]
        filled.sort(key=lambda r: _key(col.get(r)), reverse=t.desc)
        rows = filled + blank  # a row without a value last, either way
    t.shown = rows
    others = [("exc", v) for v in q.getlist("exc") if v != t.id]
    t.links = {
        # a paged list starts again at its first page when filtered or sorted
        "exceptions": _url(request, drop=("exc", "page"), add=others if t.only_exceptions else [*others, ("exc", t.id)],
                           path=t.path),
        "xlsx": _url(request, add=[("export", t.id), ("format", "xlsx")], path=t.path),
        "csv": _url(request, add=[("export", t.id), ("format", "csv")], path=t.path),
    }
    t.head = []
    for c in t.columns:
        here = t.sort == c.key
        # a click sorts by the column: numbers largest first, text A→Z; a second click reverses
        nxt = ("asc" if t.desc else "desc") if here else ("desc" if c.num else "asc")
        href = _url(request, drop=("sort", "dir", "page"), add=[("sort", f"{t.id}.{c.key}"), ("dir", nxt)], path=t.path)
        aria = ("descending" if t.desc else "ascending") if here else "none"
        t.head.append(Head(c.label, "num" if c.num else "", href, aria, ("▼" if t.desc else "▲") if here else ""))
    t.body = [
        Line(t.row_class(r), [(name, str(r.get(k, ""))) for name, k in t.row_data], cells(t, r))
        for r in (rows[: t.limit] if t.limit else rows)
    ]
    return t


def cells(t: Table, row: Row) -> list[Cell]:
    """The row's cells as the macro writes them."""
    out = []
    for c in t.columns:
        classes = " ".join(x for x in ("num" if c.num else "", "nowrap" if c.nowrap else "", c.cls(row) if c.cls else "") if x)
        out.append(Cell(c.shown(row), classes, c.tag(row) if c.tag else "", c.link(row) if c.link else "",
                        tuple(c.lines(row)) if c.lines else (), tuple(c.data(row)) if c.data else ()))
    return out


def export(request: Request, t: Table) -> Response | None:
    """The file of ``t`` when the request asks for it (``export=<t.id>``), else None."""
    if request.query_params.get("export") != t.id:
        return None
    fmt = request.query_params.get("format", "xlsx")
    cols = [c for c in t.columns if c.export]
    header = [c.label for c in cols]
    rows = [[_cell_value(c, r) for c in cols] for r in t.shown]
    data, media = tabular.export_table(fmt, header, rows, title=t.title)
    name = f"{t.title}.{fmt}"
    return Response(data, media_type=media, headers={
        "Content-Disposition": f"attachment; filename=\"{t.id}.{fmt}\"; filename*=UTF-8''{quote(name)}",
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
    })


def _cell_value(c: Column, row: Row) -> Any:
    """What the file holds: numbers as numbers, everything else as the page's text."""
    v = c.get(row)
    more = [x for x in c.lines(row) if x] if c.lines else []
    if isinstance(v, bool) or not isinstance(v, (int, float)) or c.text is not None or more:
        text = c.shown(row)
        return "\n".join([t for t in ("" if text == "—" else text, *more) if t])
    return v


def first_export(request: Request, *ts: Table) -> Response | None:
    """The export of whichever of ``ts`` the request names."""
    for t in ts:
        r = export(request, t)
        if r is not None:
            return r
    return None


# -- cells the supervision tables share ------------------------------------------------------------


def org_text(names: dict[str, str]) -> Callable[[Row], str]:
    """An institution as a person reads it: name（code）."""
    def text(r: Row) -> str:
        code = str(r.get("org_code") or "")
        name = names.get(code) or str(r.get("org_name") or "")
        return f"{name}（{code}）" if name and name != code else code
    return text


def level_class(level: Callable[[Row], str]) -> Callable[[Row], str]:
    """A cell coloured by its level (red / yellow / green; none: no colour)."""
    return lambda r: f"lvl-{level(r)}" if level(r) in ("red", "yellow", "green") else ""


def silent_column(hours_text: str) -> Column:
    """The last receipt and whether the institution has been silent for more than N hours."""
    def text(r: Row) -> str:
        if not r.get("last_received_at"):
            return "从未上传"
        return f"{r['last_received_at']}（{r['silent_hours']:.1f} 小时前）"
    return Column(
        "last_received_at", "最近上传时间", text=text,
        tag=lambda r: "bad" if r.get("silent") else "",
        cls=lambda r: "silent" if r.get("silent") else "",
    )
