"""``huren demo``: demo institutions, patients, reports with PDFs and daily reports (and a demo hospital)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from huren.cli.common import database_options, settings_of


def cmd_demo(args: argparse.Namespace) -> int:
    from huren.bootstrap import build
    from huren.demo.loader import load_demo
    from huren.gateway import demo_hospital

    if args.hospital is not None and (args.hospital / demo_hospital.DB).exists():
        print(f"错误：{args.hospital / demo_hospital.DB} 已存在：请为演示医院选择一个空目录", file=sys.stderr)
        return 2
    settings = settings_of(args)
    container = build(settings, upgrade=True)
    summary = load_demo(container, reports=args.reports, seed=args.seed, if_empty=args.if_empty)
    container.close()
    if args.hospital is not None:  # in addition to the platform's demo data: the hospital needs its account
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
        summary["hospital"] = demo_hospital.create(args.hospital, platform_url=f"http://{host}:{settings.port}")
    print(json.dumps(summary, ensure_ascii=False, indent=2))
    return 0


def add(sub: Any) -> None:
    p = sub.add_parser("demo", help="生成演示数据（机构、患者、检验检查报告及PDF、日报）")
    database_options(p)
    p.add_argument("--reports", type=int, default=200, help="报告份数（检验与检查合计），默认200")
    p.add_argument("--seed", type=int, default=20241122, help="随机种子")
    p.add_argument("--if-empty", action="store_true", help="数据库中已有机构时不再生成")
    p.add_argument(
        "--hospital",
        type=Path,
        metavar="DIR",
        help="另在 DIR 生成一家演示医院（第一家演示机构）：LIS/PACS/HIS 的 SQLite 视图 his.db、投递目录 drop/ 与前置机配置 gateway.toml",
    )
    p.set_defaults(func=cmd_demo, demo_mode=True)
