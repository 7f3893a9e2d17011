"""``huren db partitions list | ensure --months-ahead N | detach --before YYYY-MM``: the monthly
partitions of the report, item and log tables on PostgreSQL (huren.store.partitions; SQLite is
not partitioned and is told so)."""

from __future__ import annotations

import argparse
from typing import Any

from huren.cli.common import database_options, settings_of


def _open(args: argparse.Namespace) -> Any:
    from huren.bootstrap import build
    from huren.errors import InvalidInput, Problem
    from huren.store import partitions

    container = build(settings_of(args))
    with container.db.read() as conn:
        ready = partitions.is_partitioned(conn)
    if not ready:
        container.close()
        message = "只有 PostgreSQL 数据库（迁移 0011 之后）按月分区；SQLite 不分区，无需此命令"
        raise InvalidInput(message, [Problem("database_url", "partitioned", message)])
    return container


def cmd_list(args: argparse.Namespace) -> int:
    from huren.store import partitions

    container = _open(args)
    try:
        with container.db.read() as conn:
            rows = partitions.partitions(conn)
            lead = partitions.longest_lead(conn)
    finally:
        container.close()
    print(f"{'表':<22}{'分区':<32}{'月份':<10}{'约行数':>10}")
    for p in rows:
        month = "默认" if p.month is None else f"{p.month:%Y-%m}"
        rows_text = "未统计" if p.rows < 0 else str(p.rows)
        print(f"{p.table:<22}{p.name:<32}{month:<10}{rows_text:>10}")
    print(f"审核时间最多晚于接收时间：{lead}（互认查询按接收时间只读此后的分区）")
    return 0


def cmd_ensure(args: argparse.Namespace) -> int:
    from huren.errors import InvalidInput, Problem
    from huren.store import partitions

    if not 0 <= args.months_ahead <= 120:
        message = f"--months-ahead 应为 0 到 120 之间的整数，现为 {args.months_ahead}"
        raise InvalidInput(message, [Problem("months_ahead", "range", message)])
    container = _open(args)
    try:
        first = partitions.month_of(container.clock.now())
        months = [partitions.add_months(first, n) for n in range(args.months_ahead + 1)]
        with container.db.write() as conn:
            made = partitions.ensure(conn, months)
    finally:
        container.close()
    last = months[-1]
    print(f"已建分区 {len(made)} 个；{first:%Y-%m} 至 {last:%Y-%m} 的分区均已存在")
    for name in made:
        print(f"  {name}")
    return 0


def cmd_detach(args: argparse.Namespace) -> int:
    from huren.services.recognition import WINDOWS
    from huren.services.reference import ReferenceCache
    from huren.store import partitions

    before = partitions.parse_month(args.before)
    container = _open(args)
    try:
        longest = max(max(WINDOWS), ReferenceCache(container.db, 0).get().longest_validity())
        with container.db.write() as conn:
            names = partitions.detach(conn, before, now=container.clock.now(), longest_validity_days=longest)
    finally:
        container.close()
    print(f"已分离 {before:%Y-%m} 之前的分区 {len(names)} 个（表仍保留，可归档后删除）")
    for name in names:
        print(f"  {name}")
    return 0


def add(db_parser: argparse.ArgumentParser) -> None:
    """Register ``partitions`` under ``huren db`` (the parser ``huren.cli.serve`` made)."""
    action = next(a for a in db_parser._actions if isinstance(a, argparse._SubParsersAction))
    p = action.add_parser("partitions", help="PostgreSQL 按月分区：列出、预建、分离旧分区")
    ps = p.add_subparsers(dest="partitions_command", required=True)
    q = ps.add_parser("list", help="列出各表的分区")
    database_options(q)
    q.set_defaults(func=cmd_list)
    q = ps.add_parser("ensure", help="建本月及此后若干个月的分区")
    database_options(q)
    q.add_argument("--months-ahead", type=int, default=2, help="本月之后再建几个月（默认 2）")
    q.set_defaults(func=cmd_ensure)
    q = ps.add_parser("detach", help="分离某月之前的分区（供归档；不能早于最长互认有效期）")
    database_options(q)
    q.add_argument("--before", required=True, help="分离此月（YYYY-MM）之前各月的分区")
    q.set_defaults(func=cmd_detach)
