"""``huren gateway run | status | backfill | retry-dead | keys rotate-data``: the hospital's front-end machine
(``huren.gateway``; nothing of the platform is loaded)."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import Any


def cmd_gateway_run(args: argparse.Namespace) -> int:
    from huren.gateway import cli

    return cli.run(args.config)


def cmd_gateway_status(args: argparse.Namespace) -> int:
    from huren.gateway import cli

    return cli.status(args.config, as_json=args.json)


def cmd_gateway_backfill(args: argparse.Namespace) -> int:
    from huren.gateway import cli

    return cli.backfill(args.config, args.since, args.source or (), resend=args.resend)


def cmd_gateway_retry_dead(args: argparse.Namespace) -> int:
    from huren.gateway import cli

    return cli.retry_dead(args.config, args.ids, all_dead=args.all)


def cmd_gateway_keys_rotate_data(args: argparse.Namespace) -> int:
    from huren.gateway import cli

    return cli.rotate_data(args.config, resume=args.resume)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("日期格式应为 YYYY-MM-DD") from None


def add(sub: Any) -> None:
    gw = sub.add_parser("gateway", help="医院前置机：从院内系统抽取数据，经持久队列上传平台")
    gws = gw.add_subparsers(dest="gateway_command", required=True)

    def config(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", type=Path, default=Path("gateway.toml"), help="配置文件（TOML），默认 gateway.toml")

    p = gws.add_parser("run", help="运行前置机：轮询来源、上传、日报、定时推送（SIGTERM 优雅停止）")
    config(p)
    p.set_defaults(func=cmd_gateway_run)
    p = gws.add_parser("status", help="各来源的水位、待上传数、上次成功、失败次数与死信")
    config(p)
    p.add_argument("--json", action="store_true", help="以 JSON 输出")
    p.set_defaults(func=cmd_gateway_status)
    p = gws.add_parser("backfill", help="从某日起重新读取来源（补传），显示进度")
    config(p)
    p.add_argument("--since", type=_day, required=True, help="开始日期 YYYY-MM-DD")
    p.add_argument("--source", action="append", help="只补传这个来源（可重复），默认全部")
    p.add_argument("--resend", action="store_true", help="已上传且未变的记录也重新上传（如平台数据丢失后）")
    p.set_defaults(func=cmd_gateway_backfill)
    p = gws.add_parser("retry-dead", help="修正原因后重新上传死信")
    config(p)
    p.add_argument("--all", action="store_true", help="重试全部死信")
    p.add_argument("ids", nargs="*", type=int, help="死信编号（见 gateway status）")
    p.set_defaults(func=cmd_gateway_retry_dead)
    p = gws.add_parser("keys", help="前置机的数据密钥（出站队列与预加载缓存的加密密钥，位于出站队列旁的 keys/ 目录）")
    keys = p.add_subparsers(dest="gateway_keys_command", required=True)
    p = keys.add_parser("rotate-data", help="轮换数据密钥：生成新密钥，并用它分批重新加密出站队列与预加载缓存（显示进度，可续做）")
    config(p)
    p.add_argument("--resume", action="store_true", help="不生成新密钥，只把尚未使用当前密钥的记录重新加密")
    p.set_defaults(func=cmd_gateway_keys_rotate_data)
