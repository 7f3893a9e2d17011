"""zeep as the hospital's SOAP client against a real ``huren serve`` process: it reads the WSDL,
speaks SOAP 1.1 (and 1.2), and the crypto is done on the client side as a hospital would (fresh
SM4 key, wrapped with the platform's SM2 public key printed by ``huren keys public``).

Covered: register a lab and an exam report with PDFs, daily counts, GetCheckLabList,
GetCheckLabInfo, ExistsReCureInfo, SubmitAccept (accept, and reject with a reason), SubmitQuote,
GetLabInfo, GetExamInfo, the accepted report's PDF, void of a cited report naming the citer; then
wrong password, unknown institution, bad Base64, wrong key, tampered ciphertext, entity bomb and an
oversized request each answered ``error:…``, and the server still healthy.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx2
import pytest
import zeep
from lxml import etree

from huren.bootstrap import build
from huren.crypto import b64, sm2, sm4
from huren.settings import Settings
from huren.wire.soap import METHODS
from tests import samples
from tests.conftest import ORG_A, ORG_B, SECRET
from tests.integration.test_soap_golden import (
    ACCEPT_XML,
    CREDENTIAL,
    EXISTS_FILTER,
    EXTRA_LAB_ITEM,
    INFO_FILTER,
    LIST_FILTER,
    QUOTE_XML,
    VOID_LAB,
    accept_yes,
    catalog_rows,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 2_000_000  # the server's request size limit in this test
START_TIMEOUT = 60.0


def _cli(data: Path, *args: str, env: dict[str, str]) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "huren.cli", *args, "--data-dir", str(data)],
        env=env, cwd=ROOT, capture_output=True, text=True, encoding="utf-8", timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@dataclass
class Server:
    base_url: str
    public_hex: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("soap") / "data"
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("HUREN_")}
    env |= {"PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8", "HUREN_SECRET_KEY": SECRET,
            "HUREN_MAX_REQUEST_BYTES": str(LIMIT)}
    c = build(Settings(data_dir=data, secret_key=SECRET), upgrade=True)
    for code, name, region, level, user, pw in (ORG_A, ORG_B):
        c.directory.add_org(code, name, region, level, user=user, password=pw)
    catalog_rows(c)
    c.close()
    _cli(data, "keys", "init", env=env)
    public_hex = _cli(data, "keys", "public", env=env).strip()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = data.parent / "serve.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "huren.cli", "serve", "--port", str(port), "--data-dir", str(data)],
            env=env, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert proc.poll() is None, log.read_text("utf-8", "replace")
            with contextlib.suppress(httpx2.TransportError):
                if httpx2.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                    break
            assert time.monotonic() < deadline, log.read_text("utf-8", "replace")
            time.sleep(0.1)
        yield Server(base, public_hex)
        assert proc.poll() is None, log.read_text("utf-8", "replace")
        assert "Traceback" not in log.read_text("utf-8", "replace")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


class Hospital:
    """A hospital's client: zeep for SOAP, its own SM4 key wrapped with the platform's public key."""

    def __init__(self, server: Server, org: tuple[str, ...], *, password: str | None = None,
                 public: sm2.Sm2Public | None = None, binding: str | None = None) -> None:
        self.client = zeep.Client(f"{server.base_url}/Myhealth?wsdl")
        self.service = self.client.bind("Myhealth", binding) if binding else self.client.service
        self.key = os.urandom(16)
        self.str_key = b64.b64e(sm2.sm2_encrypt(public or sm2.load_public(server.public_hex), self.key))
        cred = CREDENTIAL.format(code=org[0], name=org[1], user=org[4], password=password or org[5])
        self.credential = self.seal(cred)

    def seal(self, text: str) -> str:
        return b64.b64e(sm4.sm4_encrypt(self.key, text.encode("utf-8")))

    def raw(self, method: str, data: str, **over: str) -> str:
        params = {METHODS[method][0]: data, "strCredential": self.credential, "strKey": self.str_key} | over
        answer: str = getattr(self.service, method)(**params)
        return answer

    def call(self, method: str, xml: str, **over: str) -> str:
        answer = self.raw(method, self.seal(xml), **over)
        if method.startswith(("Get", "Exists")) and not answer.startswith("error:"):
            return sm4.sm4_decrypt(self.key, b64.b64d(answer)).decode("utf-8")
        return answer


def _day(days_ago: int) -> str:
    return (datetime.now(ZoneInfo("Asia/Shanghai")) - timedelta(days=days_ago)).date().isoformat()


def _xml(text: str) -> Any:
    return etree.fromstring(text.encode())


def test_zeep_reads_the_wsdl(server: Server) -> None:
    client = zeep.Client(f"{server.base_url}/Myhealth?wsdl")
    service = client.wsdl.services["Myhealth"]
    assert set(service.ports) == {"MyhealthSoap", "MyhealthSoap12"}
    ops = service.ports["MyhealthSoap"].binding._operations
    assert set(ops) == set(METHODS)
    for name, params in METHODS.items():
        assert [e[0] for e in ops[name].input.body.type.elements] == list(params)


def test_hospital_workflow_over_zeep(server: Server) -> None:
    a, b = Hospital(server, ORG_A), Hospital(server, ORG_B, binding="MyhealthSoap12")
    lab = samples.LAB_XML.replace("  </lab_subitem>", EXTRA_LAB_ITEM + "  </lab_subitem>").replace("2024-03-11", _day(1))
    exam = samples.EXAM_XML.replace("2024-05-11", _day(2)).replace('recognition="0"', 'recognition="1"')
    assert a.call("ArchiveAutoReport", lab) == "ok"
    assert a.call("ArchiveAutoReport", exam) == "ok"
    assert a.call("ArchiveAutoReport", samples.DAILY_XML) == "ok"

    listing = _xml(b.call("GetCheckLabList", LIST_FILTER))
    assert sorted((i.get("type"), i.get("recognition")) for i in listing) == [("check", "1"), ("lab", "1")]
    detail = _xml(b.call("GetCheckLabInfo", INFO_FILTER))
    assert [n.tag for n in detail] == ["exammaster", "exam_subitem", "labmaster", "lab_subitem"]
    exists = _xml(b.call("ExistsReCureInfo", EXISTS_FILTER))
    assert [n.tag for n in exists] == ["labmaster", "exammaster"]
    assert exists[0][0].get("item_code") == "250301002" and exists[1].get("item_code") == "115"

    assert b.call("SubmitAccept", ACCEPT_XML) == "ok"  # the seed's sample: rejected, reason 1
    assert b.call("SubmitAccept", accept_yes()) == "ok"
    answer = b.call("SubmitAccept", ACCEPT_XML.replace('reason="1"', 'reason=""'))
    assert answer.startswith("error:") and "reason" in answer
    assert b.call("SubmitQuote", QUOTE_XML) == "ok"

    [labmaster] = _xml(b.call("GetLabInfo", INFO_FILTER))
    assert labmaster.get("report_form_no") == "14437173" and len(labmaster) == 3
    [exammaster] = _xml(b.call("GetExamInfo", INFO_FILTER))
    assert exammaster.get("exam_item_code") == "115" and exammaster.get("pacs_url")
    # the accepted report's PDF, as the hospital downloads it to keep (§1.4.2.4)
    with httpx2.Client(timeout=10.0) as http:
        token = http.post(f"{server.base_url}/api/v1/auth/token",
                          json={"org_code": ORG_B[0], "username": ORG_B[4], "password": ORG_B[5]}).json()["access_token"]
        pdf = http.get(labmaster.get("pdf_url"), headers={"Authorization": f"Bearer {token}"})
    assert pdf.status_code == 200 and pdf.content == samples.PDF_BYTES

    answer = a.call("DeleteLabInfo", VOID_LAB)
    assert answer.startswith("ok:") and ORG_B[1] in answer and "郑伟军" in answer and "急诊外科" in answer


BOMB = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">' for i in range(1, 10))
    + "]><root><labmaster>&lol9;</labmaster></root>"
)


def test_every_failure_is_an_error_answer(server: Server) -> None:
    good = Hospital(server, ORG_A)
    cases: dict[str, str] = {
        "wrong password": Hospital(server, ORG_A, password="wrong-password").call("ArchiveAutoReport", samples.DAILY_XML),
        "unknown institution": Hospital(server, ("999999999", "无", "", "", "his", "password-a")).call(
            "ArchiveAutoReport", samples.DAILY_XML
        ),
        "bad base64": good.raw("ArchiveAutoReport", "%%% not base64 %%%"),
        "wrong key": Hospital(server, ORG_A, public=sm2.generate_key().public).call("ArchiveAutoReport", samples.DAILY_XML),
        "entity bomb": good.call("ArchiveAutoReport", BOMB),
        "oversized": good.call("ArchiveAutoReport", samples.LAB_XML.replace(samples.PDF_B64, "A" * (LIMIT + 1000))),
    }
    sealed = bytearray(b64.b64d(good.seal(samples.DAILY_XML)))
    sealed[5] ^= 0xFF  # the first block no longer decrypts to "<?xml …"
    cases["tampered ciphertext"] = good.raw("ArchiveAutoReport", b64.b64e(bytes(sealed)))
    key = bytearray(b64.b64d(good.str_key))
    key[-3] ^= 0x01
    cases["tampered strKey"] = good.raw("ArchiveAutoReport", good.seal(samples.DAILY_XML), strKey=b64.b64e(bytes(key)))
    for what, answer in cases.items():
        assert answer.startswith("error:"), f"{what}: {answer}"
        assert "Traceback" not in answer
    assert "超过上限" in cases["oversized"] and "DOCTYPE" in cases["entity bomb"]
    # a bomb in the envelope itself, and a body that is no SOAP at all
    dtd = BOMB[BOMB.index("<!DOCTYPE") : BOMB.index("]>") + 2].replace("lolz", "soap:Envelope")
    envelope = (
        f'<?xml version="1.0"?>{dtd}<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        '<GetLabInfo xmlns="http://huren.platform/Myhealth"><strFilter>&lol9;</strFilter></GetLabInfo></soap:Body></soap:Envelope>'
    )
    r = httpx2.post(f"{server.base_url}/Myhealth", content=envelope.encode(), headers={"Content-Type": "text/xml"}, timeout=10.0)
    assert r.status_code == 200 and b"<GetLabInfoResult>error:" in r.content and b"DOCTYPE" in r.content
    r = httpx2.post(f"{server.base_url}/Myhealth", content=b"\x00garbage", timeout=10.0)
    assert r.status_code == 400 and b"<faultstring>error:" in r.content
    # and the server still works
    assert httpx2.get(f"{server.base_url}/healthz", timeout=5.0).status_code == 200
    assert good.call("ArchiveAutoReport", samples.DAILY_XML) == "ok"
