"""``huren dicom node add | list | remove`` (the AE titles of the institutions: who may push, where
a C-MOVE may send), ``huren dicom echo`` and ``huren dicom move`` (YB-4.2: C-ECHO, then a
study-level C-MOVE from a hospital PACS to a destination AE — by default the platform's own SCP)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from huren.cli.common import database_options, settings_of


def cmd_node_add(args: argparse.Namespace) -> int:
    from huren.bootstrap import build

    container = build(settings_of(args))
    try:
        row = container.imaging.nodes.add_node(
            args.ae, args.org, hosts=args.hosts, port=args.node_port, purpose=args.purpose
        )
    finally:
        container.close()
    print(json.dumps({k: (str(v) if k == "created_at" else v) for k, v in row.items()}, ensure_ascii=False))
    return 0


def cmd_node_list(args: argparse.Namespace) -> int:
    from huren.bootstrap import build

    container = build(settings_of(args))
    try:
        nodes = container.imaging.nodes.list_nodes()
    finally:
        container.close()
    if not nodes:
        print("尚未登记 DICOM 节点（机构编码本身即可作为调用方 AE 名称）")
    for n in nodes:
        hosts = n.get("hosts") or "任意地址"
        port = n.get("port") or "-"
        print(f"{n['ae_title']}\t机构 {n['org_code']}\t用途 {n['purpose']}\t主机 {hosts}\t端口 {port}")
    return 0


def cmd_node_remove(args: argparse.Namespace) -> int:
    from huren.bootstrap import build

    container = build(settings_of(args))
    try:
        removed = container.imaging.nodes.remove_node(args.ae)
    finally:
        container.close()
    print(f"已删除 DICOM 节点 {args.ae}" if removed else f"没有 AE 名称为 {args.ae} 的节点", file=sys.stdout if removed else sys.stderr)
    return 0 if removed else 1


def _peer(args: argparse.Namespace) -> Any:
    from huren.dimse.scu import Peer

    return Peer(args.remote_host, args.remote_port, args.aet, calling_aet=args.calling_aet, timeout=args.timeout)


def cmd_echo(args: argparse.Namespace) -> int:
    from huren.dimse import scu

    code = scu.echo(_peer(args))
    if code == 0:
        print(f"C-ECHO 成功：{args.aet}（{args.remote_host}:{args.remote_port}）")
        return 0
    print(f"C-ECHO 失败：状态 0x{code:04X}", file=sys.stderr)
    return 1


def cmd_move(args: argparse.Namespace) -> int:
    from huren.dimse import scu
    from huren.domain.imaging import check_uid

    check_uid(args.study)
    peer = _peer(args)
    code = scu.echo(peer)
    if code != 0:
        print(f"C-ECHO 失败（状态 0x{code:04X}），未发起 C-MOVE", file=sys.stderr)
        return 1
    dest = args.dest or settings_of(args).dicom_aet
    result = scu.move_study(peer, args.study, destination=dest, patient_root=args.patient_root)
    summary = f"完成 {result.completed}，失败 {result.failed}，警告 {result.warning}"
    if result.ok:
        print(f"C-MOVE 成功：检查 {args.study} 已发送到 {dest}（{summary}）")
        return 0
    print(f"C-MOVE 未全部成功：状态 0x{result.status:04X}（{summary}）", file=sys.stderr)
    for uid in result.failed_uids:
        print(f"  - 失败实例 {uid}", file=sys.stderr)
    return 1


def _remote(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", dest="remote_host", required=True, help="对方（PACS）的地址")
    p.add_argument("--port", dest="remote_port", type=int, required=True, help="对方的 DICOM 端口")
    p.add_argument("--aet", required=True, help="对方的 AE 名称（被调用方）")
    p.add_argument("--calling-aet", default="HUREN", help="本方的 AE 名称（调用方，YB-4.2 的 Portal AET），默认 HUREN")
    p.add_argument("--timeout", type=float, default=30, help="超时（秒），默认 30")


def add(sub: Any) -> None:
    d = sub.add_parser("dicom", help="DICOM 节点与联通测试（C-ECHO、C-MOVE）")
    ds = d.add_subparsers(dest="dicom_command", required=True)

    node = ds.add_parser("node", help="DICOM 节点（AE 名称）")
    ns = node.add_subparsers(dest="node_command", required=True)
    p = ns.add_parser("add", help="登记或修改一个 AE 名称")
    database_options(p)
    p.add_argument("--ae", required=True, help="AE 名称（1–16 个 ASCII 字符）")
    p.add_argument("--org", required=True, help="所属机构编码")
    p.add_argument("--hosts", help="允许的来源地址（逗号分隔）；不设则不限")
    p.add_argument("--port", dest="node_port", type=int, help="该节点的 DICOM 端口（C-MOVE 目的地、存储确认回报）")
    p.add_argument(
        "--purpose", choices=("sender", "pacs", "both"), default="sender",
        help="sender：推送影像；pacs：C-MOVE 目的地；both：两者",
    )
    p.set_defaults(func=cmd_node_add)
    p = ns.add_parser("list", help="列出 DICOM 节点")
    database_options(p)
    p.set_defaults(func=cmd_node_list)
    p = ns.add_parser("remove", help="删除一个 AE 名称")
    database_options(p)
    p.add_argument("--ae", required=True, help="AE 名称")
    p.set_defaults(func=cmd_node_remove)

    p = ds.add_parser("echo", help="C-ECHO：测试与 DICOM 节点的联通")
    _remote(p)
    p.set_defaults(func=cmd_echo)
    p = ds.add_parser("move", help="C-ECHO 后按检查级 C-MOVE 从 PACS 取回一个检查（YB-4.2）")
    _remote(p)
    p.add_argument("--study", required=True, help="StudyInstanceUID")
    p.add_argument("--dest", help="目的 AE 名称（默认本平台的 HUREN_DICOM_AET）")
    p.add_argument("--patient-root", action="store_true", help="用 Patient Root 信息模型（默认 Study Root）")
    p.set_defaults(func=cmd_move)
