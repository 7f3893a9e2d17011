"""``huren org add | list | disable | enable`` and ``huren user add | disable | enable | passwd``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from huren.cli.common import account_options, database_options, settings_of
from huren.errors import HurenError


def cmd_org_add(args: argparse.Namespace) -> int:
    from huren.bootstrap import build

    container = build(settings_of(args), upgrade=True)
    org = container.directory.add_org(
        args.code, args.name, args.region, args.level, user=args.user, password=args.password, role=args.role,
        platform=args.platform,
    )
    print(json.dumps(org, ensure_ascii=False))
    container.close()
    return 0


def cmd_org_list(args: argparse.Namespace) -> int:
    from huren.bootstrap import build

    container = build(settings_of(args), upgrade=True)
    rows = container.directory.list_orgs(args.region)
    for o in rows:
        print(f"{o['code']}\t{o['region_code']}\t{o['level_name']}\t{o['name']}")
    container.close()
    return 0


def cmd_org_disabled(args: argparse.Namespace) -> int:
    """``org disable`` / ``org enable``: its users' tokens and sessions stop (or may start again)."""
    from huren.bootstrap import build

    container = build(settings_of(args), upgrade=True)
    try:
        org = container.directory.set_org_disabled(args.code, args.disable)
    finally:
        container.close()
    state = "已停用（其账号的访问令牌与会话立即失效，其他进程最迟60秒）" if args.disable else "已启用（须重新登录）"
    print(f"机构 {org['code']}（{org['name']}）{state}")
    return 0


def cmd_user_add(args: argparse.Namespace) -> int:
    from huren.bootstrap import build

    container = build(settings_of(args), upgrade=True)
    try:
        container.directory.add_credential(args.org, args.username, _password(args), args.role)
    finally:
        container.close()
    print(f"已为机构 {args.org} 新增用户 {args.username}（角色 {args.role}）")
    return 0


def cmd_user_disabled(args: argparse.Namespace) -> int:
    from huren.bootstrap import build

    container = build(settings_of(args), upgrade=True)
    try:
        container.directory.set_user_disabled(args.org, args.username, args.disable)
    finally:
        container.close()
    state = "已停用（其访问令牌与会话立即失效，其他进程最迟60秒）" if args.disable else "已启用（须重新登录）"
    print(f"机构 {args.org} 的用户 {args.username} {state}")
    return 0


def cmd_user_passwd(args: argparse.Namespace) -> int:
    from huren.bootstrap import build

    password = _password(args)
    container = build(settings_of(args), upgrade=True)
    try:
        container.directory.set_password(args.org, args.username, password)
    finally:
        container.close()
    print(f"机构 {args.org} 的用户 {args.username} 的密码已修改，此前签发的访问令牌与会话全部失效")
    return 0


def _password(args: argparse.Namespace) -> str:
    """--password, or asked twice on the terminal (not echoed, not in the shell history)."""
    if args.password is not None:
        return str(args.password)
    import getpass

    first = getpass.getpass("新密码（至少8位）：")
    if first != getpass.getpass("再次输入新密码："):
        raise HurenError("两次输入的密码不一致")
    return first


def add(sub: Any) -> None:
    org = sub.add_parser("org", help="医疗机构")
    orgs = org.add_subparsers(dest="org_command", required=True)
    p = orgs.add_parser("add", help="新增机构及其接入账号")
    database_options(p)
    p.add_argument("--code", required=True, help="机构编码")
    p.add_argument("--name", required=True, help="机构名称")
    p.add_argument("--region", required=True, help="行政区划代码（6位）")
    p.add_argument("--level", required=True, help="等级：1/2/3，可带甲乙丙，如 3甲")
    p.add_argument("--user", required=True, help="接入用户名")
    p.add_argument("--password", required=True, help="接入密码（至少8位）")
    p.add_argument("--role", default="hospital", help="角色：hospital / doctor / admin / supervisor / platform")
    p.add_argument("--platform", help="所属平台编码；不给则按行政区划归入本部署承载的最近一级平台")
    p.set_defaults(func=cmd_org_add)
    p = orgs.add_parser("list", help="列出机构")
    database_options(p)
    p.add_argument("--region", help="行政区划代码前缀")
    p.set_defaults(func=cmd_org_list)
    for name, disable, text in (("disable", True, "停用机构：其所有账号不能登录，已签发的令牌与会话失效"), ("enable", False, "重新启用机构")):
        p = orgs.add_parser(name, help=text)
        database_options(p)
        p.add_argument("code", help="机构编码")
        p.set_defaults(func=cmd_org_disabled, disable=disable)

    user = sub.add_parser("user", help="机构的用户（账号）")
    users = user.add_subparsers(dest="user_command", required=True)
    p = users.add_parser("add", help="为机构新增用户")
    database_options(p)
    account_options(p)
    p.add_argument("--password", help="密码（至少8位）；不给则在终端输入")
    p.add_argument("--role", default="hospital", choices=("doctor", "hospital", "admin", "supervisor", "platform"), help="角色（platform：平台接入账号，用于平台间同步）")
    p.set_defaults(func=cmd_user_add)
    for name, disable, text in (("disable", True, "停用用户：不能登录，已签发的令牌与会话失效"), ("enable", False, "重新启用用户")):
        p = users.add_parser(name, help=text)
        database_options(p)
        account_options(p)
        p.set_defaults(func=cmd_user_disabled, disable=disable)
    p = users.add_parser("passwd", help="修改用户密码：此前签发的令牌与会话全部失效")
    database_options(p)
    account_options(p)
    p.add_argument("--password", help="新密码（至少8位）；不给则在终端输入")
    p.set_defaults(func=cmd_user_passwd)
