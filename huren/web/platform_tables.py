"""The 「按平台」 tables of the supervision pages (issue 13 §4): the completeness per city platform
within the caller's reach, with the region's total in the footer (``huren.services.quality``'s
``platforms``, grouped by ``huren.services.platform_groups``)."""

from __future__ import annotations

from typing import Any

from huren.domain.figures import percent
from huren.services.overview import Thresholds
from huren.web import tables


def platform_name(r: tables.Row) -> str:
    key, name = str(r.get("platform") or r.get("key") or ""), str(r.get("name") or "")
    virtual = "（虚拟）" if r.get("virtual") else ""
    return f"{name}{virtual}（{key}）" if key else name


def completeness_table(res: dict[str, Any], th: Thresholds) -> tables.Table:
    rows: list[dict[str, Any]] = res["platforms"]
    level = tables.level_class(lambda r: th.rate(r.get("completeness")))
    total = {k: sum(int(r[k]) for r in rows) for k in ("institutions", "declared", "received", "matched", "undeclared", "differences", "undeclaring")}
    rate = percent(total["matched"], total["declared"])
    return tables.Table(
        "completeness_platforms", "各平台完整率",
        [tables.Column("platform", "平台", text=platform_name),
         tables.Column("institutions", "机构数", num=True),
         tables.Column("undeclaring", "未申报的机构", num=True, tag=lambda r: "warn" if r["undeclaring"] else ""),
         tables.Column("declared", "申报报告数", num=True),
         tables.Column("received", "实收报告数", num=True),
         tables.Column("completeness", "完整率（%）", num=True, percent=True, cls=level),
         tables.Column("undeclared", "未申报而收到", num=True),
         tables.Column("differences", "差异条数", num=True)],
        rows,
        exception=lambda r: th.rate(r.get("completeness")) in ("red", "yellow") or bool(r["differences"]) or not r["received"],
        exception_label=f"完整率低于 {th.rate_yellow:g}%、有差异或无上传",
        row_data=(("platform", "platform"),), empty="查看范围内没有平台。",
        foot=["合计（查看范围内全部平台）", str(total["institutions"]), str(total["undeclaring"]), str(total["declared"]),
              str(total["received"]), f"{rate:.1f}%" if rate is not None else "—", str(total["undeclared"]), str(total["differences"])],
    )


def has_platforms(rows: list[dict[str, Any]]) -> bool:
    """Whether a 「按平台」 table says more than 「未归属平台」 (a deployment without a platform tree)."""
    return any(r.get("platform") or r.get("key") for r in rows)
