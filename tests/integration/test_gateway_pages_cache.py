"""The gateway's doctor pages when the platform is down (issue 11 item 5): answered from the cache,
they say so ("数据来自本地缓存（时间）"); with nothing cached they say it in plain Chinese, never an
exception's text nor a field or rule code."""

from __future__ import annotations

import re
from datetime import date

from huren.domain import idcard
from huren.services.container import Container
from tests.conftest import Api
from tests.integration.test_api_recognition import EXAM_CODE, LAB_CODE, VISIT
from tests.integration.test_gateway_pages import _q, catalog, gateway
from tests.integration.test_gateway_preload import Gateway, _reports

__all__ = ["catalog", "gateway"]  # the gateway pages' fixtures


def test_stale_cache_is_said_on_the_panel_and_the_dialog(gateway: Gateway, api_a: Api, container: Container) -> None:
    _reports(api_a, container)
    fresh = gateway.http.get("/ui/panel", params=_q())
    assert fresh.status_code == 200 and 'id="cache-note"' not in fresh.text  # fetched from the platform now
    fetched = gateway.cache.load(*(_q()[k] for k in ("id_type_code", "id_no")))
    assert fetched is not None
    when = fetched.fetched_text(gateway.cache.clock)[:16]
    gateway.cache.ttl_seconds = 0  # every entry is past its freshness …
    gateway.platform.down = True  # … and the platform does not answer
    panel = gateway.http.get("/ui/panel", params=_q())
    assert panel.status_code == 200, panel.text
    assert f"数据来自本地缓存（{when}）" in panel.text and "★" in panel.text
    dialog = gateway.http.get("/ui/decide", params=[*_q().items(), ("check", EXAM_CODE), ("lab", LAB_CODE), *VISIT.items()])
    assert dialog.status_code == 200, dialog.text
    assert f"数据来自本地缓存（{when}）" in dialog.text


def test_nothing_cached_and_platform_down_is_plain_chinese(gateway: Gateway) -> None:
    gateway.platform.down = True
    nobody = idcard.make("650102", date(1980, 5, 6), 77)
    for path in ("/ui/panel", "/ui/decide"):  # (the widget, 150×34, shows a grey icon instead)
        r = gateway.http.get(path, params=_q(id_no=nobody, check=EXAM_CODE))
        assert r.status_code == 503, (path, r.text)
        assert "互认平台暂时无法访问，本地也没有该患者的缓存记录" in r.text
        body = re.sub(r"<script.*?</script>", "", r.text, flags=re.S)
        for leak in ("平台无应答", "Error", "Exception", "Traceback", "errno", "<th>字段</th>", "unavailable", "platform"):
            assert leak not in body, (path, leak)
