"""``huren catalog import | export | list``: the standard exam / lab item catalog."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from huren.cli.common import database_options, settings_of


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
    container = build(settings_of(args), upgrade=True)
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
    container = build(settings_of(args), upgrade=True)
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

    container = build(settings_of(args), upgrade=True)
    try:
        items = container.catalog.list(args.kind)
    finally:
        container.close()
    for i in items:
        print(f"{i['kind']}\t{i['code']}\t{i['name']}\t{i['unit']}\t{i['validity_days']}")
    return 0


def add(sub: Any) -> None:
    cat = sub.add_parser("catalog", help="标准检查检验项目目录")
    cats = cat.add_subparsers(dest="catalog_command", required=True)
    p = cats.add_parser("import", help="从 CSV 或 XLSX 文件导入目录（有任何问题则不导入）")
    database_options(p)
    p.add_argument("file", type=Path, help="目录文件（.csv 或 .xlsx）")
    p.add_argument("--kind", choices=("lab", "exam"), help="文件中没有类型列时的类型；有时须一致")
    p.set_defaults(func=cmd_catalog_import)
    p = cats.add_parser("export", help="导出目录（按扩展名：.csv 或 .xlsx）")
    database_options(p)
    p.add_argument("file", type=Path, help="输出文件（.csv 或 .xlsx）")
    p.add_argument("--kind", choices=("lab", "exam"), help="只导出一种类型")
    p.set_defaults(func=cmd_catalog_export)
    p = cats.add_parser("list", help="列出目录：类型、编码、名称、单位、有效天数")
    database_options(p)
    p.add_argument("--kind", choices=("lab", "exam"), help="只列出一种类型")
    p.set_defaults(func=cmd_catalog_list)
