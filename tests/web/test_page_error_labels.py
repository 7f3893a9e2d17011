"""No developer identifiers in the pages' error boxes (issue 11): every supervision page, given a
bad parameter, names the parameter and the rule in Chinese through the one mapping
(huren.domain.labels), never as ``silent_hours · range``."""

from __future__ import annotations

import html as html_lib
import re

import pytest
from fastapi.testclient import TestClient

from huren.domain import labels
from tests.conftest import SUPERVISOR
from tests.web.test_supervision_pages import _as

#: (page, bad parameters, the parameter's Chinese label the box must show)
BAD = (
    ("/ui/overview", {"silent_hours": "x"}, "静默阈值"),
    ("/ui/overview", {"silent_hours": "0"}, "静默阈值"),
    ("/ui/overview", {"day_from": "2024-3-1"}, "开始日期"),
    ("/ui/quality/completeness", {"silent_hours": "99999"}, "静默阈值"),
    ("/ui/quality/completeness", {"day_to": "x"}, "结束日期"),
    ("/ui/quality/timeliness", {"late_hours": "x"}, "超时阈值"),
    ("/ui/quality/timeliness", {"silent_hours": "-1"}, "静默阈值"),
    ("/ui/quality/rejected", {"page": "x"}, "页码"),
    ("/ui/quality/rejected", {"page": "0"}, "页码"),
    ("/ui/stats", {"by": "week"}, "分组方式"),
    ("/ui/stats", {"day_from": "2024-03-02", "day_to": "2024-03-01"}, "日期"),
    ("/ui/catalog", {"kind": "x"}, "类型"),
    ("/ui/catalog/download", {"format": "pdf"}, "文件格式"),
    ("/ui/catalog/mappings/download", {"kind": "x"}, "类型"),
    ("/ui/overview", {"export": "overview", "format": "pdf"}, "文件格式"),
    ("/ui/quality/completeness", {"export": "completeness_orgs", "format": "doc"}, "文件格式"),
)

CODE_PAIR = re.compile(r"[a-z_]+ · [a-z_]+")


def _text(page: str) -> str:
    """What a reader sees: no tags, scripts or styles."""
    page = re.sub(r"<(script|style)[^>]*>.*?</\1>", "", page, flags=re.S)
    return html_lib.unescape(re.sub(r"<[^>]+>", " ", page))


@pytest.mark.parametrize(("path", "params", "label"), BAD)
def test_error_boxes_name_parameters_in_chinese(client: TestClient, path: str, params: dict[str, str], label: str) -> None:
    _as(client, SUPERVISOR)
    r = client.get(path, params=params)
    assert r.status_code == 422, (path, params, r.text[:300])
    assert r.headers["content-type"].startswith("text/html")
    assert not CODE_PAIR.search(r.text), CODE_PAIR.search(r.text)
    text = _text(r.text)
    for name in params:
        assert not re.search(rf"(?<![A-Za-z_]){name}(?![A-Za-z_])", text), (path, name, text[:2000])
    assert label in text, (path, params)
    assert labels.OTHER_FIELD + " · " not in text and labels.OTHER_RULE not in text, (path, params)


def test_every_page_parameter_has_a_label() -> None:
    for name in ("silent_hours", "late_hours", "day_from", "day_to", "org_code", "kind", "format", "by", "page",
                 "only_open", "q", "sort", "dir", "exc", "export"):
        assert labels.field(name) != labels.OTHER_FIELD, name
    assert labels.rule("int_parsing") == "须为整数"
