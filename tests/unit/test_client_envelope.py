"""The client's SOAP envelope (huren.client.HurenClient.envelope): Base64 parameters go in as they
are, any other text is escaped, and the platform's parser reads back exactly what was sent."""

from __future__ import annotations

import pytest

from huren.client import HurenClient
from huren.wire.soap import parse_request


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_envelope_round_trips_base64_and_escaped_text(version: str) -> None:
    c = HurenClient.__new__(HurenClient)  # the envelope needs no connection
    c.soap_version = version
    params = {"strReportInfo": "QUJD+/=" * 1000, "strCredential": "a<b>&c\"'d", "strKey": "中文 & <x/>"}
    body = c.envelope("ArchiveAutoReport", params)
    assert b"QUJD+/=" * 1000 in body  # not escaped, not copied through a str
    assert b"a&lt;b&gt;&amp;c" in body
    call = parse_request(body, limit=1 << 20)
    assert call.method == "ArchiveAutoReport" and call.version == version
    assert call.params == params
