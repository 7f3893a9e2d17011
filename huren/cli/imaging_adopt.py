"""``huren imaging adopt-orthanc --org CODE``: bring the studies an Orthanc already holds into the
index, for one institution (``huren.services.imaging_archive_adopt``). Needs
``HUREN_IMAGING_ARCHIVE=orthanc`` (the Orthanc it walks is the archive's). Idempotent: a second run
downloads nothing already indexed; ``--since N`` resumes where the progress line said."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from huren.cli.common import database_options, settings_of


def cmd_adopt(args: argparse.Namespace) -> int:
    from huren.bootstrap import build
    from huren.services.imaging_archive_adopt import AdoptReport, OrthancAdoption, Refused

    def progress(r: AdoptReport) -> None:
        print(r.line(), flush=True)

    def refused(r: Refused) -> None:
        print(f"未收录：检查 {r.study_uid} 的实例 {r.sop_uid}：{r.message}", file=sys.stderr, flush=True)

    container = build(settings_of(args))
    try:
        run = OrthancAdoption(container, args.org, page=args.page)
        report = run.run(since=args.since, progress=progress, refused=refused)
    finally:
        container.close()
    print(f"迁入完成：{report.line()}")
    return 1 if report.refused else 0


def add(sub: Any) -> None:
    g = sub.add_parser("imaging", help="影像归档的维护（迁入 Orthanc 中已有的检查）")
    gs = g.add_subparsers(dest="imaging_command", required=True)
    p = gs.add_parser(
        "adopt-orthanc", help="把作为影像归档的 Orthanc 中已有的检查收录到本平台的索引（可重复执行，已收录的跳过）",
    )
    database_options(p)
    p.add_argument("--org", required=True, help="这些检查所属的机构编码")
    p.add_argument("--since", type=int, default=0, help="从 Orthanc 检查列表的第几个开始（中断后按进度行续传），默认 0")
    p.add_argument("--page", type=int, default=20, help="每页读取的检查数（1–1000），默认 20")
    p.set_defaults(func=cmd_adopt)
