"""``huren keys init | public | rotate-data``: the platform SM2 key pair and the data keys."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huren.cli.common import database_options, settings_of

if TYPE_CHECKING:
    from huren.crypto.aead import FieldCipher
    from huren.store.keys import Keyring


def _keyring(args: argparse.Namespace) -> Keyring:
    from huren.bootstrap import keyring

    return keyring(settings_of(args))


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
    """A new data key, then every sealed file and every sealed column of the database re-encrypted
    under it (and plaintext ones sealed)."""
    from huren.store.blob_backends import open_blob_store

    settings = settings_of(args)
    keys = _keyring(args)
    if args.resume:
        kid = keys.fields().active
        print(f"继续使用当前数据密钥（编号 {kid}）重新加密")
    else:
        kid = keys.rotate_data_key()
        print(f"已生成新的数据密钥（编号 {kid}），旧密钥保留以读取尚未重新加密的数据")
    blobs = open_blob_store(settings, keys.fields())  # the directory, or the bucket (HUREN_BLOB_BACKEND=s3)
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
        f"文件（报告PDF、被拒提交原文与影像文件）共 {len(todo)} 个：重新加密 {counts['rekeyed']}，首次加密 {counts['sealed']}，"
        f"已是当前密钥 {counts['current']}，无法打开 {counts['unreadable']}"
    )
    rows_ok = _reseal_rows(settings.db_url, keys.fields(), max(1, args.row_batch))
    print("正在运行的平台进程请重启，之后新写入的数据才使用新密钥；重启后可用 --resume 再运行一次补齐")
    if bad:
        print("错误：以下文件无法打开（损坏，或由未知密钥加密），未改动：", file=sys.stderr)
        for digest in bad[:20]:
            print(f"  - {digest}", file=sys.stderr)
        return 1
    return 0 if rows_ok else 1


def _reseal_rows(db_url: str, fields: FieldCipher, batch: int) -> bool:
    """Every sealed column of every table (huren.store.sealing.SPECS) re-encrypted under the active
    data key, ``batch`` rows per transaction, with a progress bar per table; rows already under it
    are skipped, so an interrupted run is finished by ``--resume``. False when a value does not open."""
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url

    from huren.errors import NotConfigured
    from huren.store import sealing
    from huren.store.database import make_engine

    url = make_url(db_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        print(f"数据库 {url.database} 尚不存在：没有需要重新加密的数据行")
        return True
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            for name, spec in sealing.SPECS.items():
                if not inspect(conn).has_table(name):
                    continue
                total = sealing.count(conn, name)
                conn.commit()
                seen = 0

                def bar(n: int, total: int = total, what: str = spec.what) -> None:
                    nonlocal seen
                    seen += n
                    done = seen * 30 // max(1, total)
                    print(f"\r{what} [{'#' * done}{'.' * (30 - done)}] {seen}/{total}", end="", file=sys.stderr, flush=True)

                try:
                    r = sealing.reseal(conn, fields, name, batch=batch, commit=True, progress=bar)
                except NotConfigured as exc:
                    conn.rollback()
                    print(f"\n错误：{spec.what}：{exc}（已完成的批次已保存，可修复后用 --resume 继续）", file=sys.stderr)
                    return False
                if total:
                    print(file=sys.stderr)
                print(f"{spec.what}共 {total} 行：重新加密 {r.rekeyed}，首次加密 {r.sealed}，已是当前密钥 {r.current}")
    finally:
        engine.dispose()
    return True


def add(sub: Any) -> None:
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
    p = keyss.add_parser("rotate-data", help="轮换数据密钥：生成新密钥，并用它重新加密已加密保存的文件与数据库中的患者身份字段（显示进度）")
    database_options(p)
    p.add_argument("--resume", action="store_true", help="不生成新密钥，只把尚未使用当前密钥的文件与数据行重新加密")
    p.add_argument("--batch", type=int, default=200, help="每处理多少个文件更新一次进度，默认200")
    p.add_argument("--row-batch", type=int, default=1000, help="数据库中每批（一个事务）重新加密多少行，默认1000")
    p.set_defaults(func=cmd_keys_rotate_data)
