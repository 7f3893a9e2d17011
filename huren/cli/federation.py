"""``huren platform add | list | assign | backfill`` (the platform tree of this deployment) and
``huren federation run | status`` (the upstream runner: a child platform's feed applied on the
platform above; loads nothing of the platform, like ``huren gateway``)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from huren.cli.common import database_options, settings_of


def cmd_platform_add(args: argparse.Namespace) -> int:
    from huren.bootstrap import build

    c = build(settings_of(args), upgrade=True)
    try:
        p = c.federation.add_platform(
            args.code, args.name, args.level, parent=args.parent or "", division=args.division or "", virtual=args.virtual, local=not args.remote,
        )
    finally:
        c.close()
    print(json.dumps(p, ensure_ascii=False))
    return 0


def cmd_platform_list(args: argparse.Namespace) -> int:
    from huren.bootstrap import build

    c = build(settings_of(args), upgrade=True)
    try:
        rows = c.federation.list_platforms()
    finally:
        c.close()
    for p in rows:
        where = "本部署" if p["local"] else "外部"
        print(f"{p['code']}\t{p['level_name']}\t{p['parent'] or '-'}\t{p['division'] or '-'}\t{where}\t机构 {p['institutions']}\t序号 {p['last_seq']}\t{p['name']}")
    return 0


def cmd_platform_assign(args: argparse.Namespace) -> int:
    from huren.bootstrap import build

    c = build(settings_of(args), upgrade=True)
    try:
        n = c.federation.assign(args.org, args.platform)
    finally:
        c.close()
    print(f"已将 {n} 家机构归入平台 {args.platform}")
    return 0


def cmd_platform_backfill(args: argparse.Namespace) -> int:
    from huren.bootstrap import build

    c = build(settings_of(args), upgrade=True)
    try:
        n = c.federation.backfill(args.platform)
    finally:
        c.close()
    print(f"已将平台 {args.platform} 已有的 {n} 条数据记入变更订阅（下次同步时发送）")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from huren.federation.config import load
    from huren.federation.runner import Runner

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    runner = Runner(load(args.config))
    try:
        runner.install_signals()
        total = runner.run(until_idle=args.once)
    finally:
        runner.close()
    print(f"已应用 {total} 条变更")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from huren.federation.config import load
    from huren.federation.runner import Runner

    runner = Runner(load(args.config))
    try:
        out: dict[str, Any] = runner.status()
    finally:
        runner.close()
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        print(status_text(out))
    return 0 if "source_error" not in out and "target_error" not in out else 1


def status_text(out: dict[str, Any]) -> str:
    """``huren federation status`` for the operator, in Chinese."""
    lines = [f"平台 {out['platform']} 的同步状态（{out['checked_at']}）"]
    if "source_last_seq" in out:
        lines.append(f"  下级平台订阅的最后序号：{out['source_last_seq']}")
    else:
        lines.append(f"  下级平台无法读取：{out.get('source_error', '')}")
    t = out.get("target")
    if t:
        lines.append(f"  上级平台已应用到：{t['applied_seq']}（累计应用 {t['applied_total']} 条，最近一次 {t['applied_at'] or '尚未应用'}）")
        if t.get("gaps"):
            lines.append(f"  序号缺口：{t['gaps']} 次")
        if t.get("last_error"):
            lines.append(f"  最近的问题：{t['last_error']}")
    else:
        lines.append(f"  上级平台无法读取：{out.get('target_error', '')}")
    if "backlog" in out:
        lines.append(f"  积压：{out['backlog']} 条")
    return "\n".join(lines)


def _config_errors(func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        from huren.federation.config import ConfigError

        try:
            return int(func(args))
        except ConfigError as exc:
            print(f"错误：{exc}", file=sys.stderr)
            return 2

    return run


def add(sub: Any) -> None:
    plat = sub.add_parser("platform", help="平台树：省级（自治区）平台、地州市平台（含虚拟平台）、跨省区域平台")
    ps = plat.add_subparsers(dest="platform_command", required=True)
    p = ps.add_parser("add", help="新增平台；其区划内、原属上级平台（或未归属）的机构随之归入")
    database_options(p)
    p.add_argument("code", help="平台编码，例如 XJ-6501")
    p.add_argument("--name", required=True, help="平台名称")
    p.add_argument("--level", required=True, choices=("city", "region", "cross"), help="级别：city 地州市，region 省级/自治区，cross 跨省区域")
    p.add_argument("--parent", help="上级平台编码")
    p.add_argument("--division", help="覆盖的行政区划代码（6位），例如 650100")
    p.add_argument("--virtual", action="store_true", help="虚拟地州市平台（由本部署承载的上级平台代管）")
    p.add_argument("--remote", action="store_true", help="不由本部署承载（例如本平台的上级平台，或有自己部署的地州市平台）")
    p.set_defaults(func=cmd_platform_add)
    p = ps.add_parser("list", help="列出平台")
    database_options(p)
    p.set_defaults(func=cmd_platform_list)
    p = ps.add_parser("assign", help="将机构归入平台")
    database_options(p)
    p.add_argument("platform", help="平台编码")
    p.add_argument("org", nargs="+", help="机构编码")
    p.set_defaults(func=cmd_platform_assign)
    p = ps.add_parser("backfill", help="将平台已有的数据记入变更订阅（首次同步前）")
    database_options(p)
    p.add_argument("platform", help="平台编码")
    p.set_defaults(func=cmd_platform_backfill)

    fed = sub.add_parser("federation", help="平台间同步：将下级平台的变更订阅应用到上级平台")
    fs = fed.add_subparsers(dest="federation_command", required=True)
    p = fs.add_parser("run", help="持续同步（SIGTERM 停止）")
    p.add_argument("--config", required=True, help="同步配置文件（TOML，见 docs/federation.md）")
    p.add_argument("--once", action="store_true", help="同步到没有新变更为止后退出")
    p.set_defaults(func=_config_errors(cmd_run))
    p = fs.add_parser("status", help="同步状态：下级平台的最后序号、上级平台已应用的序号、积压")
    p.add_argument("--config", required=True, help="同步配置文件")
    p.add_argument("--json", action="store_true", help="以 JSON 输出（供监控程序读取）")
    p.set_defaults(func=_config_errors(cmd_status))
