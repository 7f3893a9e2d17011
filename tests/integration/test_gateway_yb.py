"""The YB endpoints on the gateway (seed 003 YB-4.3, 4.4.3.1, 4.4.3.2, 4.5) against a platform
answering the imaging REST: the seed's envelope and codes (200 / 202 / 500), the ``$`` decoding,
the workstation session, the deletion notice queued durably and forwarded, the caller checks,
and the listener the gateway runner starts."""

from __future__ import annotations

import base64
import io
import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import orjson
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from huren.crypto import sm2
from huren.errors import NotFound
from huren.gateway.config import parse
from huren.gateway.imaging import Pusher, find_font
from huren.gateway.imaging_api import YbConf, create_yb_app
from huren.gateway.imaging_spool import Spool
from huren.gateway.outbox import Outbox
from huren.gateway.runner import Gateway
from huren.gateway.sealing import cipher_beside
from huren.gateway.yb_sessions import YbSessions
from tests.integration import test_gateway_pacs_views as pvt
from tests.integration.test_gateway_pacs_views import ORG, FakePlatform, fake_client

KEY = sm2.generate_key()
ID = "650102198001010012"  # has exams elsewhere in the fake platform
QR = "/getway/reportAndFilm/api/qrurl"
QRCODE = "/getway/reportAndFilm/api/qrcode"
WS = "10.1.8.21"


def conf(**over: Any) -> YbConf:
    nets = tuple(ipaddress.ip_network(n) for n in ("127.0.0.1/32", "10.1.8.0/24"))
    base: dict[str, Any] = {
        "org_code": ORG, "hospital_ids": frozenset({ORG, "H650102"}), "clients": nets, "hosts": frozenset({"testserver"}), "key": KEY,
        "font": find_font(),
    }
    return YbConf(**(base | over))


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Env:
    def __init__(self, tmp_path: Path, **over: Any) -> None:
        self.tmp_path, self.over = tmp_path, over
        self.fake = FakePlatform()
        self.client = fake_client(self.fake)
        self.box = Outbox(tmp_path / "outbox.db")
        self.clock = Clock()
        self.restart()

    def restart(self) -> None:
        """A new API instance on the same data directory (the data keys read again from the file)."""
        self.sessions = YbSessions(self.tmp_path / "yb_sessions.db", cipher_beside(self.tmp_path / "outbox.db"), clock=self.clock)
        self.app = create_yb_app(conf(**self.over), self.client, self.box.enqueue, self.sessions)

    def http(self, ip: str = "127.0.0.1") -> TestClient:
        return TestClient(self.app, client=(ip, 40000), raise_server_exceptions=False)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    e.client.close()
    e.box.close()


def test_qrurl_answers_the_seeds_envelope(env: Env) -> None:
    r = env.http().get(QR, params={"accessNumber": "A123", "modality": "CT", "hospitalId": "H650102"})
    assert r.status_code == 200
    assert r.json() == {"code": 200, "data": "http://film.example/f/A123k", "message": "请求成功"}
    assert "/api/v1/imaging/film-url" in env.fake.calls


def test_a_missing_parameter_is_202(env: Env) -> None:
    r = env.http().get(QR, params={"modality": "CT", "hospitalId": ORG})
    assert (r.status_code, r.json()) == (202, {"code": 202, "message": "传参数不规范（少传参数）：缺少 accessNumber", "data": None})
    r = env.http().get(QRCODE, params={"accessNumber": "A1", "modality": "CT"})
    assert r.json()["message"] == "传参数不规范（少传参数）：缺少 hospitalId"
    r = env.http().get(QR, params={"accessNumber": "A1", "modality": "XX", "hospitalId": "nope"})
    assert r.status_code == 202
    assert "modality “XX”不在检查模式字典" in r.json()["message"] and "hospitalId “nope”不是本前置机的医保医疗机构" in r.json()["message"]
    assert env.fake.calls == []  # refused before asking the platform


def test_the_platform_down_is_500_in_chinese(env: Env) -> None:
    env.fake.down = True
    r = env.http().get(QR, params={"accessNumber": "A1", "modality": "CT", "hospitalId": ORG})
    assert r.status_code == 500
    assert r.json() == {"code": 500, "message": "内部服务错误：医保影像云平台暂时无法连接，请稍后重试", "data": None}
    env.fake.down = False
    env.fake.film_status = 404  # no such study of this institution: the parameter is wrong
    r = env.http().get(QR, params={"accessNumber": "A1", "modality": "CT", "hospitalId": ORG})
    assert (r.status_code, r.json()["message"]) == (202, "传参数不规范：检查不存在")
    env.fake.film_status = 500
    r = env.http().get(QR, params={"accessNumber": "A1", "modality": "CT", "hospitalId": ORG})
    assert r.status_code == 500 and "Traceback" not in r.text


def test_qrcode_is_a_base64_png_of_the_url(env: Env) -> None:
    r = env.http().get(QRCODE, params={"accessNumber": "A9", "modality": "MR", "hospitalId": ORG})
    assert r.status_code == 200 and r.json()["message"] == "请求成功"
    png = base64.b64decode(r.json()["data"], validate=True)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    bare = env.http().get(QRCODE, params={"accessNumber": "A9", "modality": "MR", "hospitalId": ORG, "caption": "0"})
    code = Image.open(io.BytesIO(base64.b64decode(bare.json()["data"])))
    assert code.width == code.height  # the bare code is square
    if find_font() is None:
        pytest.skip("no CJK font here (fonts-noto-cjk): the caption is left out")
    shown = Image.open(io.BytesIO(png))
    assert shown.width == code.width and shown.height > code.height  # the caption's band under the code


def _login_query(**over: str) -> str:
    fields = {
        "hisUserId": "pacs01", "type": "1", "doctorName": "$E5$BC$A0$E5$8C$BB$E7$94$9F", "hospitalId": "H650102",
        "department": "$E6$94$BE$E5$B0$84$E7$A7$91", "departmentCode": "0301", "doctorSex": "1", "doctorType": "1",
        "doctorCode": "D650102000001", "doctorIdCardNo": sm2.sm2_encrypt(KEY, ID.encode()).hex(), "phoneNumber": "13800138000",
    } | over
    return "&".join(f"{k}={v}" for k, v in fields.items())


def test_a_name_sent_without_the_dollar_convention_is_read(env: Env) -> None:  # the HTTP client %-encodes it
    r = env.http(WS).get("/hrball/?" + _login_query(doctorName="张医生"))
    assert r.status_code == 200 and r.json()["data"]["doctorName"] == "张医生"


def test_login_swipe_logout(env: Env) -> None:
    ws = env.http(WS)
    r = ws.get("/iuWorkStation/swipingIdCardNo?hisUserId=pacs01&idCardNo=" + ID)
    assert r.status_code == 401 and r.json()["code"] == 401 and "未登录" in r.json()["message"]
    r = ws.get("/hrball/?" + _login_query())
    assert r.status_code == 200
    assert r.json() == {"code": 200, "message": "请求成功", "data": {"hisUserId": "pacs01", "doctorName": "张医生", "loggedIn": True}}
    r = ws.get("/iuWorkStation/swipingIdCardNo?hisUserId=pacs01&idCardNo=" + sm2.sm2_encrypt(KEY, ID.encode()).hex())
    assert r.status_code == 200
    data = r.json()["data"]
    assert data["count"] == 1 and data["exams"][0]["accession_number"] == "X1" and "外院有 1 次影像检查" in data["bubble"]
    other = ws.get("/iuWorkStation/swipingIdCardNo?hisUserId=pacs01&idCardNo=650102198001010020")
    assert other.json()["data"] == {"count": 0, "bubble": "", "exams": []}
    # the session is the workstation's: another machine with the same hisUserId is not logged in
    assert env.http("10.1.8.99").get("/iuWorkStation/swipingIdCardNo?hisUserId=pacs01&idCardNo=" + ID).status_code == 401
    bad = ws.get("/iuWorkStation/swipingIdCardNo?hisUserId=pacs01&idCardNo=123")
    assert bad.status_code == 202 and bad.json()["message"].startswith("传参数不规范：idCardNo")
    env.http("10.1.8.99").get("/hrball/?hisUserId=pacs01&type=2")  # another machine cannot end it
    assert ws.get("/iuWorkStation/swipingIdCardNo?hisUserId=pacs01&idCardNo=" + ID).status_code == 200
    assert ws.get("/hrball/?hisUserId=pacs01&type=2").json()["data"] == {"hisUserId": "pacs01", "loggedIn": False}
    assert ws.get("/iuWorkStation/swipingIdCardNo?hisUserId=pacs01&idCardNo=" + ID).status_code == 401


SWIPE = "/iuWorkStation/swipingIdCardNo?hisUserId=pacs01&idCardNo=" + ID


def test_a_login_survives_the_gateways_restart(env: Env, tmp_path: Path) -> None:
    assert env.http(WS).get("/hrball/?" + _login_query()).json()["data"]["loggedIn"] is True
    env.restart()  # a new instance on the same data dir: the doctor is still logged in
    r = env.http(WS).get(SWIPE)
    assert r.status_code == 200 and r.json()["data"]["count"] == 1
    assert env.http(WS).get("/healthz").json()["data"] == {"sessions": 1}
    assert env.http("10.1.8.99").get(SWIPE).status_code == 401  # still that workstation's only
    # at rest: neither the doctor's name, nor the ID number (not even masked), nor the workstation in clear
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("yb_sessions.db*"))
    for clear in ("张医生", "放射科", ID, ID[:4] + "*" * 12 + ID[-2:], "pacs01", WS, "D650102000001", "13800138000"):
        assert clear.encode() not in raw, clear
    assert env.http(WS).get("/hrball/?hisUserId=pacs01&type=2").json()["data"]["loggedIn"] is False
    env.restart()
    assert env.http(WS).get(SWIPE).status_code == 401  # the logout is kept too
    assert env.sessions.count() == 0


def test_a_login_is_over_after_session_hours(tmp_path: Path) -> None:
    e = Env(tmp_path, session_seconds=3600.0)
    try:
        assert e.http(WS).get("/hrball/?" + _login_query()).status_code == 200
        e.clock.now += 3599
        e.restart()
        assert e.http(WS).get(SWIPE).status_code == 200
        e.clock.now += 2
        e.restart()
        r = e.http(WS).get(SWIPE)
        assert r.status_code == 401 and "未登录" in r.json()["message"]
        assert e.sessions.reseal_total() == 0  # the expired row is gone, not only refused
        assert e.http(WS).get("/hrball/?" + _login_query()).status_code == 200  # logging in again works
        assert e.http(WS).get(SWIPE).status_code == 200
    finally:
        e.client.close()
        e.box.close()


def test_the_sessions_file_is_bound_to_its_rows(env: Env, tmp_path: Path) -> None:
    import sqlite3

    for user in ("pacs01", "pacs02"):
        assert env.http(WS).get("/hrball/?" + _login_query(hisUserId=user)).status_code == 200
    db = sqlite3.connect(tmp_path / "yb_sessions.db")
    with db:
        (b1,), (b2,) = db.execute("SELECT body FROM yb_session ORDER BY rowid").fetchall()
        db.execute("UPDATE yb_session SET body = ? WHERE body = ?", (b2, b1))  # pacs02's login copied onto pacs01's row
    db.close()
    r = env.http(WS).get(SWIPE)
    assert r.status_code == 401  # a moved row does not open: that workstation logs in again
    assert env.sessions.reseal_total() == 1  # and the row is gone
    assert env.http(WS).get("/iuWorkStation/swipingIdCardNo?hisUserId=pacs02&idCardNo=" + ID).status_code == 200


def test_a_bad_login_names_each_field(env: Env) -> None:
    r = env.http(WS).get("/hrball/?" + _login_query(doctorSex="3", doctorType="9", doctorName="$E5$BC"))
    assert r.status_code == 202
    assert r.json()["message"] == "传参数不规范：doctorName 不是合法的 encodeURI 编码（UTF-8，% 以 $ 代替）"
    r = env.http(WS).get("/hrball/?" + _login_query(doctorSex="3", doctorType="9"))
    msg = r.json()["message"]
    assert "doctorSex “3”不在性别字典" in msg and "doctorType “9”不在人员类型字典" in msg
    r = env.http(WS).get("/hrball/?" + _login_query(type="7"))
    assert r.json()["message"] == "传参数不规范：type “7”应为 1（登录）或 2（退出）"
    r = env.http(WS).get("/hrball/?hisUserId=pacs01")
    assert r.json()["message"] == "传参数不规范（少传参数）：缺少 type"


def test_the_deletion_notice_is_queued_then_forwarded(env: Env, tmp_path: Path) -> None:
    notice = {"patientName": "张三", "accessionNo": "A77", "hospitalId": "H650102", "operateDoctorName": "李医生",
              "operateDateTime": "2026-11-30 10:20:30"}
    r = env.http().post("/getway/api/imageDeletion", json=notice)
    assert (r.status_code, r.json()) == (200, {"code": 200, "message": "请求成功", "data": {"queued": True}})
    form = "patientName=%E5%BC%A0%E4%B8%89&accessionNo=A78&hospitalId=H650102&operateDoctorName=$E6$9D$8E&operateDateTime=2026-11-30+10:21:00"
    r = env.http().post("/getway/api/imageDeletion", content=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.json()
    raw = "patientName=张三&accessionNo=A79&hospitalId=H650102&operateDoctorName=李医生&operateDateTime=20261130102200".encode()
    r = env.http().post("/getway/api/imageDeletion", content=raw, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.json()  # UTF-8 sent unencoded is read too
    bad = env.http().post("/getway/api/imageDeletion", content=b"patientName=\xd5\xc5", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (bad.status_code, bad.json()["message"]) == (202, "传参数不规范：body 不是合法的 UTF-8 编码")
    r = env.http().post("/getway/api/imageDeletion", json=notice | {"operateDateTime": ""})
    assert (r.status_code, r.json()["message"]) == (202, "传参数不规范（少传参数）：缺少 operateDateTime")
    r = env.http().post("/getway/api/imageDeletion", content=b"<x/>", headers={"Content-Type": "text/xml"})
    assert r.status_code == 202
    assert env.box.counts() == {"pending": 3, "done": 0, "dead": 0}  # durably queued before the answer
    assert env.fake.calls == []
    pusher = Pusher(env.box, env.client, Spool(tmp_path / "spool", env.box.sealer))
    assert pusher.drain() == (3, "")
    assert [d["accessionNo"] for d in env.fake.deletions] == ["A77", "A78", "A79"]
    assert env.fake.deletions[2]["patientName"] == "张三" and env.fake.deletions[2]["operateDoctorName"] == "李医生"
    first = env.fake.deletions[0]
    assert first == notice | {"hospitalId": ORG, "operateDateTime": "2026-11-30T10:20:30"}
    assert env.fake.deletions[1]["patientName"] == "张三" and env.fake.deletions[1]["operateDoctorName"] == "李"


def test_callers_outside_clients_and_without_the_token_are_refused(tmp_path: Path) -> None:
    e = Env(tmp_path, token="s" * 24)
    q = {"accessNumber": "A1", "modality": "CT", "hospitalId": ORG}
    r = e.http("192.168.5.5").get(QR, params=q)
    assert r.status_code == 403 and "不在 [imaging] clients 允许之列" in r.json()["message"]
    assert e.http().get(QR, params=q).status_code == 403
    assert e.http().get(QR, params=q | {"token": "s" * 24}).status_code == 200
    assert e.http().get(QR, params=q, headers={"X-Access-Token": "s" * 24}).status_code == 200
    rebound = e.http().get(QR, params=q | {"token": "s" * 24}, headers={"Host": "evil.example"})
    assert rebound.status_code == 403 and "不是前置机的地址" in rebound.json()["message"]
    e.client.close()
    e.box.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_listening_on_every_interface_needs_hosts(tmp_path: Path) -> None:
    from huren.gateway.config import ConfigError
    from huren.gateway.imaging import imaging_conf
    from huren.gateway.imaging_api import yb_conf

    doc = {
        "platform": {"base_url": "http://127.0.0.1:1", "org_code": ORG, "username": "his", "password": "pw"},
        "outbox": {"path": "outbox.db"},
        "imaging": {"listen": "0.0.0.0:8766"},
    }
    config = parse(doc, tmp_path)
    with pytest.raises(ConfigError, match="须在 hosts 中列出"):
        yb_conf(config, imaging_conf(config))
    doc["imaging"] = {"listen": "0.0.0.0:8766", "hosts": ["10.1.2.5"], "clients": ["10.1.8.0/24"]}
    config = parse(doc, tmp_path)
    yb = yb_conf(config, imaging_conf(config))
    assert "10.1.2.5:8766" in yb.hosts and ipaddress.ip_address("10.1.8.7") in yb.clients[0]
    doc["imaging"] = {"listen": "127.0.0.1:8766", "clients": ["not an address"]}
    with pytest.raises(ConfigError, match="clients"):
        config = parse(doc, tmp_path)
        yb_conf(config, imaging_conf(config))
    doc["imaging"] = {"lisen": "127.0.0.1:8766"}
    with pytest.raises(ConfigError, match="不认识的配置项 lisen"):
        imaging_conf(parse(doc, tmp_path))


def test_the_runner_serves_the_yb_endpoints(tmp_path: Path) -> None:
    port = _free_port()
    doc = {
        "platform": {"base_url": "http://127.0.0.1:1", "org_code": ORG, "username": "his", "password": "pw"},
        "outbox": {"path": "outbox.db"},
        "imaging": {"listen": f"127.0.0.1:{port}"},
    }
    gw = Gateway(parse(doc, tmp_path), sources=[], client=fake_client(FakePlatform()))
    assert gw.imaging is not None
    [service] = gw._services()
    try:
        r = httpx2.get(f"http://127.0.0.1:{port}{QR}?modality=CT&hospitalId={ORG}", timeout=10)
        assert r.status_code == 202 and r.json()["message"] == "传参数不规范（少传参数）：缺少 accessNumber"
        down = httpx2.get(f"http://127.0.0.1:{port}{QR}?accessNumber=A1&modality=CT&hospitalId={ORG}", timeout=20)
        assert down.status_code == 500 and down.json()["code"] == 500  # its own client: the platform is not there
        assert (tmp_path / "keys" / "yb" / "sm2_public.txt").is_file()  # the key the PACS encrypts ID numbers to
        assert orjson.loads(httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=5).content)["code"] == 200
        login = _login_query(doctorIdCardNo=ID, hospitalId=ORG)  # a plain number is taken too
        assert httpx2.get(f"http://127.0.0.1:{port}/hrball/?{login}", timeout=10).json()["data"]["loggedIn"] is True
        service.stop()
        [service] = gw._services()  # the YB listener restarted on the same data dir
        swipe = httpx2.get(f"http://127.0.0.1:{port}{SWIPE}", timeout=20)
        assert swipe.status_code == 500 and "无法连接" in swipe.json()["message"]  # logged in: it asked the (absent) platform
        assert orjson.loads(httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=5).content)["data"] == {"sessions": 1}
        assert (tmp_path / "yb_sessions.db").is_file() and (tmp_path / "yb_sessions.db").stat().st_mode & 0o077 == 0
    finally:
        service.stop()
        gw.close()


# -- against the platform itself ---------------------------------------------------------------------

database_url = pvt.database_url  # SQLite only: the gateway does not care which database the platform runs on


def test_film_url_and_deletion_through_the_platform(tmp_path: Path, container: Any, client: Any) -> None:
    from huren.context import Principal
    from tests.e2e.gateway_source import ORG as PORG
    from tests.e2e.gateway_source import PASSWORD

    container.directory.add_org(PORG.code, PORG.name, PORG.region_code, "3甲", user="his", password=PASSWORD)
    db = pvt.make_pacs(tmp_path / "pacs.db")
    st = pvt.add_study(db, tmp_path / "f", "Y1", n=2, org=PORG.code)
    db.close()
    gw = pvt.platform_gateway(tmp_path, client._transport)
    gw.poll()
    assert gw.imaging.pusher.drain() == (1, "")  # type: ignore[union-attr]
    nets = (ipaddress.ip_network("127.0.0.1/32"),)
    yb = YbConf(org_code=PORG.code, hospital_ids=frozenset({PORG.code}), clients=nets, hosts=frozenset({"testserver"}), key=KEY)
    app = create_yb_app(yb, gw.client, gw.enqueue, YbSessions(tmp_path / "yb_sessions.db", gw.box.sealer.cipher))
    http = TestClient(app, client=("127.0.0.1", 40000), raise_server_exceptions=False)
    q = {"accessNumber": "Y1", "modality": "CT", "hospitalId": PORG.code}
    r = http.get(QR, params=q)
    assert r.status_code == 200 and r.json()["message"] == "请求成功"
    url = r.json()["data"]
    assert "/film/" in url
    page = client.get(httpx2.URL(url).path)
    assert page.status_code == 200  # the patient's cloud film opens
    assert http.get(QR, params=q | {"accessNumber": "NOPE"}).status_code == 202  # no such study of ours
    notice = {"patientName": "张三", "accessionNo": "Y1", "hospitalId": PORG.code, "operateDoctorName": "李医生",
              "operateDateTime": "2026-11-30 10:20:30"}
    assert http.post("/getway/api/imageDeletion", json=notice).json()["code"] == 200
    assert gw.imaging.pusher.drain() == (1, "")  # type: ignore[union-attr]
    me = Principal(PORG.code, "his", "hospital")
    with pytest.raises(NotFound):
        container.imaging.instances_of(me, st.uid)  # hidden from every answer now
    assert http.get(QR, params=q).status_code == 202  # and no cloud film for it any more
    gw.close()
