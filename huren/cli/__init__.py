"""Command line: ``huren serve | db upgrade | demo | org add | list | disable | enable | user add |
disable | enable | passwd | catalog import | export | list | keys init | keys public | gateway run | status | backfill | retry-dead | dicom node add | list | remove | dicom echo | move``.

Every command reads settings from ``HUREN_*`` environment variables; the options given here
override them (``--data-dir`` ↔ ``HUREN_DATA_DIR``, ``--host`` ↔ ``HUREN_HOST`` …). One module per
command group: ``serve`` (serve, db), ``partitions`` (db partitions), ``demo``, ``accounts`` (org, user), ``catalog``, ``keys``,
``gateway``, ``dicom``; ``common`` holds the settings and options they share. Each module imports what its
commands need when they run, so that ``huren gateway`` loads nothing of the platform.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from huren.cli import accounts, catalog, demo, dicom, federation, gateway, imaging_adopt, keys, partitions, serve
from huren.errors import HurenError
from huren.files import private_umask

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="huren", description="huren 检查检验结果互认共享平台")
    sub = ap.add_subparsers(dest="command", required=True)
    for group in (serve, demo, accounts, federation, catalog, keys, gateway, dicom, imaging_adopt):  # the order of ``huren --help``
        group.add(sub)
    partitions.add(sub.choices["db"])  # huren db partitions, beside huren db upgrade
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
