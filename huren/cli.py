"""Command line: ``huren serve | db upgrade | demo | org add | list | disable | enable | user add |
disable | enable | passwd | catalog import | export | list | keys init | keys public | gateway run | status | backfill | retry-dead``.

Every command reads settings from ``HUREN_*`` environment variables; the options given here
override them (``--data-dir`` ↔ ``HUREN_DATA_DIR``, ``--host`` ↔ ``HUREN_HOST`` …).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huren.errors import HurenError
from huren.files import private_umask
from huren.settings import Settings

if TYPE_CHECKING:
    from huren.store.keys import Keyring


def _settings(args: argparse.Namespace) -> Settings:
    over: dict[str, Any] = {}
    for name in ("data_dir", "database_url", "host", "port", "workers"):
        value = getattr(args, name, None)
        if value is not None:
            over[name] = value
    if getattr(args, "demo_mode", False):
        over["demo"] = True
    return Settings(**over)


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from huren.api.app import create_app
    from huren.bootstrap import build

    settings = _settings(args)
    container = build(settings, upgrade=True)
    print(f"huren 平台已启动：http://{settings.host}:{settings.port}/  （接口文档 /docs）", flush=True)
    if settings.workers > 1:
        container.close()
        # worker processes rebuild the settings from the environment: hand the options down
        # (the token secret they read from the same data directory, never from the environment)
        os.environ.update(
            {
                "HUREN_DATA_DIR": str(settings.data_dir.resolve()),
                "HUREN_DATABASE_URL": settings.db_url,
                # the public address defaults to host and port (HUREN_PUBLIC_BASE_URL unset)
                "HUREN_HOST": settings.host,
                "HUREN_PORT": str(settings.port),
            }
        )
        uvicorn.run(
            "huren.bootstrap:app_from_env",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level="info",
            access_log=False,
        )
        return 0
    app = create_app(container)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", access_log=False)
    container.close()
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from huren.bootstrap import build

    container = build(_settings(args), upgrade=True)
    print(f"数据库已升级到最新版本：{container.settings.db_url.split('@')[-1]}")
    container.close()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from huren.bootstrap import build
    from huren.demo.loader import load_demo
    from huren.gateway import demo_hospital

    if args.hospital is not None and (args.hospital / demo_hospital.DB).exists():
        print(f"错误：{args.hospital / demo_hospital.DB} already exists: choose an empty folder for the demo hospital", file=sys.stderr)
        return 2
    settings = _settings(args)
    container = build(settings, upgrade=True)
    summary = load_demo(container, reports=args.reports, seed=args.seed, if_empty=args.if_empty)
    container.close()
    if args.hospital is not None:  # in addition to the platform's demo data: the hospital needs its account
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
        summary["hospital"] = demo_hospital.create(args.hospital, platform_url=f"http://{host}:{settings.port}")
    print(json.dumps(summary, ensure_ascii=False, indent=2))
    return 0


def cmd_org_add(args: argparse.Namespace) -> int:
    from huren.bootstrap import build

    container = build(_settings(args), upgrade=True)
    org = container.directory.add_org(
        args.code, args.name, args.region, args.level, user=args.user, password=args.password, role=args.role
    )
    print(json.dumps(org, ensure_ascii=False))
    container.close()
    return 0


def cmd_org_list(args: argparse.Namespace) -> int:
    from huren.bootstrap import build

    container = build(_settings(args), upgrade=True)
    rows = container.directory.list_orgs(args.region)
    for o in rows:
        print(f"{o['code']}\t{o['region_code']}\t{o['level_name']}\t{o['name']}")
    container.close()
    return 0


def cmd_org_disabled(args: argparse.Namespace) -> int:
    """``org disable`` / ``org enable``: its users' tokens and sessions stop (or may start again)."""
    from huren.bootstrap import build

    container = build(_settings(args), upgrade=True)
    try:
        org = container.directory.set_org_disabled(args.code, args.disable)
    finally:
        container.close()
    state = "已停用（其账号的访问令牌与会话立即失效，其他进程最迟60秒）" if args.disable else "已启用（须重新登录）"
    print(f"机构 {org['code']}（{org['name']}）{state}")
    return 0


def cmd_user_add(args: argparse.Namespace) -> int:
    from huren.bootstrap import build

    container = build(_settings(args), upgrade=True)
    try:
        container.directory.add_credential(args.org, args.username, _password(args), args.role)
    finally:
        container.close()
    print(f"已为机构 {args.org} 新增用户 {args.username}（角色 {args.role}）")
    return 0


def cmd_user_disabled(args: argparse.Namespace) -> int:
    from huren.bootstrap import build

    container = build(_settings(args), upgrade=True)
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
    container = build(_settings(args), upgrade=True)
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


def cmd_catalog_import(args: argparse.Namespace) -> int:
    from huren.bootstrap import build
    from huren.context import Principal
    from huren.errors import InvalidInput, Problem

    path: Path = args.file
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"无法读取文件“{path}”", [Problem("file", "read", exc.strerror or str(exc))]) from exc
    operator = Principal("platform", "cli", "supervisor")  # whoever holds the data directory runs the platform
    container = build(_settings(args), upgrade=True)
    try:
        res = container.catalog.import_file(data, path.name, operator, kind=args.kind)
    finally:
        container.close()
    print(json.dumps(res, ensure_ascii=False))
    return 0


def cmd_catalog_export(args: argparse.Namespace) -> int:
    from huren.bootstrap import build
    from huren.errors import InvalidInput, Problem

    path: Path = args.file
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("csv", "xlsx"):
        raise InvalidInput("导出文件的扩展名应为 .csv 或 .xlsx", [Problem("file", "format", f"不支持的扩展名“{path.suffix}”")])
    container = build(_settings(args), upgrade=True)
    try:
        data = container.catalog.export(fmt, args.kind)
        count = len(container.catalog.list(args.kind))
    finally:
        container.close()
    path.write_bytes(data)
    print(f"已导出 {count} 个项目到 {path}")
    return 0


def cmd_catalog_list(args: argparse.Namespace) -> int:
    from huren.bootstrap import build

    container = build(_settings(args), upgrade=True)
    try:
        items = container.catalog.list(args.kind)
    finally:
        container.close()
    for i in items:
        print(f"{i['kind']}\t{i['code']}\t{i['name']}\t{i['unit']}\t{i['validity_days']}")
    return 0


def _keyring(args: argparse.Namespace) -> Keyring:
    from huren.bootstrap import keyring

    return keyring(_settings(args))


def cmd_keys_init(args: argparse.Namespace) -> int:
    from huren.crypto.errors import GmError
    from huren.crypto.keyfiles import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE

    keys = _keyring(args)
    try:
        key = keys.init_platform_key(force=args.force)
    except GmError as exc:
        print(f"错误：{exc}", file=sys.stderr)
        return 2
    where = keys.key_dir.resolve()
    print(f"平台 SM2 私钥已写入 {where / PRIVATE_KEY_FILE}（权限 0600），公钥写入 {where / PUBLIC_KEY_FILE}")
    print(f"公钥（04‖x‖y，交给各医院）：{key.public_hex}")
    return 0


def cmd_keys_public(args: argparse.Namespace) -> int:
    key = _keyring(args).platform_key()  # NotConfigured (the keyring's one message) when there is none
    print(key.public.to_pem() if args.pem else key.public_hex, end="" if args.pem else "\n")
    return 0


def cmd_keys_rotate_data(args: argparse.Namespace) -> int:
    """A new data key, then every sealed file re-encrypted under it (and plaintext ones sealed)."""
    from huren.store.blobs import BlobStore

    settings = _settings(args)
    keys = _keyring(args)
    if args.resume:
        kid = keys.fields().active
        print(f"继续使用当前数据密钥（编号 {kid}）重新加密")
    else:
        kid = keys.rotate_data_key()
        print(f"已生成新的数据密钥（编号 {kid}），旧密钥保留以读取尚未重新加密的数据")
    blobs = BlobStore(settings.blob_dir, cipher=keys.fields())
    todo = blobs.digests()
    counts = {"sealed": 0, "rekeyed": 0, "current": 0, "unreadable": 0}
    bad: list[str] = []
    for n, digest in enumerate(todo, 1):
        outcome = blobs.reseal(digest)
        counts[outcome] += 1
        if outcome == "unreadable":
            bad.append(digest)
        if n % max(1, args.batch) == 0 or n == len(todo):
            done = n * 30 // len(todo)
            print(f"\r文件 [{'#' * done}{'.' * (30 - done)}] {n}/{len(todo)}", end="", file=sys.stderr, flush=True)
    if todo:
        print(file=sys.stderr)
    print(
        f"文件（报告PDF与被拒提交原文）共 {len(todo)} 个：重新加密 {counts['rekeyed']}，首次加密 {counts['sealed']}，"
        f"已是当前密钥 {counts['current']}，无法打开 {counts['unreadable']}"
    )
    print("正在运行的平台进程请重启，之后新写入的数据才使用新密钥；重启后可用 --resume 再运行一次补齐")
    if bad:
        print("错误：以下文件无法打开（损坏，或由未知密钥加密），未改动：", file=sys.stderr)
        for digest in bad[:20]:
            print(f"  - {digest}", file=sys.stderr)
        return 1
    return 0


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


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("日期格式应为 YYYY-MM-DD") from None


def _gateway(sub: Any) -> None:
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


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, help="数据目录（HUREN_DATA_DIR）：数据库、文件与密钥")
    p.add_argument("--database-url", help="数据库URL（HUREN_DATABASE_URL），默认数据目录下的SQLite")


def _who(p: argparse.ArgumentParser) -> None:
    p.add_argument("--org", required=True, help="机构编码")
    p.add_argument("--username", required=True, help="用户名")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="huren", description="huren 检查检验结果互认共享平台")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="启动平台（API、页面）")
    _common(p)
    p.add_argument("--host", help="监听地址（HUREN_HOST），默认 127.0.0.1")
    p.add_argument("--port", type=int, help="监听端口（HUREN_PORT），默认 8000")
    p.add_argument("--workers", type=int, help="工作进程数（HUREN_WORKERS），默认 1")
    p.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="数据库")
    dbs = db.add_subparsers(dest="db_command", required=True)
    p = dbs.add_parser("upgrade", help="执行数据库迁移")
    _common(p)
    p.set_defaults(func=cmd_db_upgrade)

    p = sub.add_parser("demo", help="生成演示数据（机构、患者、检验检查报告及PDF、日报）")
    _common(p)
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

    org = sub.add_parser("org", help="医疗机构")
    orgs = org.add_subparsers(dest="org_command", required=True)
    p = orgs.add_parser("add", help="新增机构及其接入账号")
    _common(p)
    p.add_argument("--code", required=True, help="机构编码")
    p.add_argument("--name", required=True, help="机构名称")
    p.add_argument("--region", required=True, help="行政区划代码（6位）")
    p.add_argument("--level", required=True, help="等级：1/2/3，可带甲乙丙，如 3甲")
    p.add_argument("--user", required=True, help="接入用户名")
    p.add_argument("--password", required=True, help="接入密码（至少8位）")
    p.add_argument("--role", default="hospital", help="角色：hospital / doctor / admin / supervisor")
    p.set_defaults(func=cmd_org_add)
    p = orgs.add_parser("list", help="列出机构")
    _common(p)
    p.add_argument("--region", help="行政区划代码前缀")
    p.set_defaults(func=cmd_org_list)
    for name, disable, text in (("disable", True, "停用机构：其所有账号不能登录，已签发的令牌与会话失效"), ("enable", False, "重新启用机构")):
        p = orgs.add_parser(name, help=text)
        _common(p)
        p.add_argument("code", help="机构编码")
        p.set_defaults(func=cmd_org_disabled, disable=disable)

    user = sub.add_parser("user", help="机构的用户（账号）")
    users = user.add_subparsers(dest="user_command", required=True)
    p = users.add_parser("add", help="为机构新增用户")
    _common(p)
    _who(p)
    p.add_argument("--password", help="密码（至少8位）；不给则在终端输入")
    p.add_argument("--role", default="hospital", choices=("doctor", "hospital", "admin", "supervisor"), help="角色")
    p.set_defaults(func=cmd_user_add)
    for name, disable, text in (("disable", True, "停用用户：不能登录，已签发的令牌与会话失效"), ("enable", False, "重新启用用户")):
        p = users.add_parser(name, help=text)
        _common(p)
        _who(p)
        p.set_defaults(func=cmd_user_disabled, disable=disable)
    p = users.add_parser("passwd", help="修改用户密码：此前签发的令牌与会话全部失效")
    _common(p)
    _who(p)
    p.add_argument("--password", help="新密码（至少8位）；不给则在终端输入")
    p.set_defaults(func=cmd_user_passwd)

    cat = sub.add_parser("catalog", help="标准检查检验项目目录")
    cats = cat.add_subparsers(dest="catalog_command", required=True)
    p = cats.add_parser("import", help="从 CSV 或 XLSX 文件导入目录（有任何问题则不导入）")
    _common(p)
    p.add_argument("file", type=Path, help="目录文件（.csv 或 .xlsx）")
    p.add_argument("--kind", choices=("lab", "exam"), help="文件中没有类型列时的类型；有时须一致")
    p.set_defaults(func=cmd_catalog_import)
    p = cats.add_parser("export", help="导出目录（按扩展名：.csv 或 .xlsx）")
    _common(p)
    p.add_argument("file", type=Path, help="输出文件（.csv 或 .xlsx）")
    p.add_argument("--kind", choices=("lab", "exam"), help="只导出一种类型")
    p.set_defaults(func=cmd_catalog_export)
    p = cats.add_parser("list", help="列出目录：类型、编码、名称、单位、有效天数")
    _common(p)
    p.add_argument("--kind", choices=("lab", "exam"), help="只列出一种类型")
    p.set_defaults(func=cmd_catalog_list)

    keys = sub.add_parser("keys", help="平台密钥：SM2 密钥对（新疆 SOAP 接口的 strKey 用平台公钥加密）与数据加密密钥")
    keyss = keys.add_subparsers(dest="keys_command", required=True)
    p = keyss.add_parser("init", help="生成平台 SM2 密钥对：数据目录 keys/sm2_private.pem（0600）与 sm2_public.txt")
    p.add_argument("--data-dir", type=Path, help="数据目录（HUREN_DATA_DIR），密钥在其 keys/ 下")
    p.add_argument("--force", action="store_true", help="替换已有密钥（旧密钥作废，各医院须换用新公钥）")
    p.set_defaults(func=cmd_keys_init)
    p = keyss.add_parser("public", help="打印平台公钥：十六进制 04‖x‖y（130 位）")
    p.add_argument("--data-dir", type=Path, help="数据目录（HUREN_DATA_DIR），密钥在其 keys/ 下")
    p.add_argument("--pem", action="store_true", help="改为打印 PEM（SubjectPublicKeyInfo，OpenSSL 可读）")
    p.set_defaults(func=cmd_keys_public)
    p = keyss.add_parser("rotate-data", help="轮换数据密钥：生成新密钥，并用它重新加密已加密保存的文件（显示进度）")
    p.add_argument("--data-dir", type=Path, help="数据目录（HUREN_DATA_DIR），密钥在其 keys/ 下")
    p.add_argument("--resume", action="store_true", help="不生成新密钥，只把尚未使用当前密钥的文件重新加密")
    p.add_argument("--batch", type=int, default=200, help="每处理多少个文件更新一次进度，默认200")
    p.set_defaults(func=cmd_keys_rotate_data)

    _gateway(sub)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    private_umask()  # every file and directory huren (or SQLite, or a library) creates: 0600 / 0700
    try:
        return int(args.func(args))
    except HurenError as exc:
        print(f"错误：{exc.text()}", file=sys.stderr)
        for p in exc.problems:
            print(f"  - {p.field}: {p.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
