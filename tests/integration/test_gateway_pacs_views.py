"""The gateway's PACS views source (XJ-2.3.1 v_web_jcjg, XJ-2.3.2 v_web_jctj, XJ-2.4) and the study
pusher: a SQLite file standing in for the PACS (the two views over tables, the seed's columns),
pydicom's CT_small / MR_small copied with new UIDs as the files, a platform answering STOW-RS and
the commit. A study is pushed once, a count mismatch waits, a killed run resumes without doubling."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import orjson
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from huren.client import HurenClient
from huren.gateway.config import parse
from huren.gateway.imaging_spool import Spool
from huren.gateway.runner import Gateway
from huren.gateway.sealing import Sealer, cipher_beside
from huren.gateway.sources.pacs_views import FILE_COLUMNS, STUDY_COLUMNS, PacsViewsSource, build

ORG = "457759922"
OLD = (datetime.now() - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")


# -- the PACS -------------------------------------------------------------------------------------


def make_pacs(path: Path, study_view: str = "v_web_jctj", file_view: str = "v_web_jcjg") -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"CREATE TABLE pacs_file ({', '.join(c + ' TEXT' for c in FILE_COLUMNS)})")
    db.execute(f"CREATE TABLE pacs_study ({', '.join(c + ' TEXT' for c in STUDY_COLUMNS)})")
    db.execute(f"CREATE VIEW {file_view} AS SELECT {', '.join(FILE_COLUMNS)} FROM pacs_file")
    db.execute(f"CREATE VIEW {study_view} AS SELECT {', '.join(STUDY_COLUMNS)} FROM pacs_study")
    return db


@dataclass
class Study:
    uid: str
    access_no: str
    files: list[tuple[Path, str, str]] = field(default_factory=list)  # (path, series uid, sop uid)


def add_study(db: sqlite3.Connection, folder: Path, access_no: str, *, n: int = 2, org: str = ORG,
              modify: str = OLD, count: int | None = None, size_delta: int = 0, name: str = "张三") -> Study:
    """``n`` instances (CT_small, MR_small alternately) with new UIDs, in the tables; ``count`` /
    ``size_delta`` make v_web_jctj disagree with the files."""
    st = Study(generate_uid(), access_no)
    series = generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for i in range(n):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm" if i % 2 == 0 else "MR_small.dcm"))
        ds.StudyInstanceUID, ds.SeriesInstanceUID = st.uid, series
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.AccessionNumber, ds.PatientID = access_no, f"P{access_no}"
        ds.SpecificCharacterSet, ds.PatientName = "ISO_IR 192", name
        path = folder / f"{access_no}-{i}.dcm"
        ds.save_as(path, enforce_file_format=True)
        size = path.stat().st_size
        total += size
        st.files.append((path, series, ds.SOPInstanceUID))
        row = {
            "FILEPATH": str(path), "CREATEDTIME": modify, "STUDIUIID": st.uid, "STUDYDATE": "2026-11-30",
            "SERIESIUID": series, "SERIESNO": "1", "INSTANCESOPIUID": ds.SOPInstanceUID, "INSTANCEINSTNO": str(i + 1),
            "PATIENTNAME": name, "PATIENTAGE": "45Y", "PATIENTSEX": "1", "ACCESS_NO": access_no,
            "PATIENT_ID": f"P{access_no}", "MODALITY": "CT", "INSTITUTIONNAME": "测试医院", "INSTITUTIONCODE": org,
            "FILESIZE": str(size),
        }
        db.execute(f"INSERT INTO pacs_file VALUES ({','.join('?' * len(FILE_COLUMNS))})", [row[c] for c in FILE_COLUMNS])
    srow = {
        "PATIENT_ID": f"P{access_no}", "PATIENTNAME": name, "MODALITY": "CT", "ACCESS_NO": access_no,
        "STUDIUIID": st.uid, "STUDYTIME": "2026-11-30 08:00:00", "MODIFYTIME": modify, "INSTITUTIONNAME": "测试医院",
        "INSTITUTIONCODE": org, "FILESIZE": str(total + size_delta), "INSTANCECOUNT": str(n if count is None else count),
    }
    db.execute(f"INSERT INTO pacs_study VALUES ({','.join('?' * len(STUDY_COLUMNS))})", [srow[c] for c in STUDY_COLUMNS])
    return st


# -- a platform answering STOW-RS and the commit -----------------------------------------------------


class FakePlatform:
    """The platform's imaging REST as the contract fixes it (STOW-RS at /dicom-web/studies, the commit,
    the film URL, the deletions, the patient's exams), recording what arrived."""

    def __init__(self) -> None:
        self.stored: dict[str, dict[str, str]] = {}  # study → sop → sha256
        self.sent = 0  # instances received (duplicates included)
        self.commits: list[str] = []
        self.deletions: list[dict[str, Any]] = []
        self.down = False
        self.fail_commit_once = False
        self.film_status = 200
        self.calls: list[str] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        if self.down:
            raise httpx2.ConnectError("connection refused", request=request)
        path = request.url.path
        self.calls.append(path)
        if path == "/api/v1/auth/token":
            return httpx2.Response(200, json={"access_token": "t", "expires_in": 3600})
        assert request.headers["authorization"] == "Bearer t"
        if path == "/dicom-web/studies":
            return self._stow(request)
        m = re.fullmatch(r"/api/v1/imaging/studies/([0-9.]+)/commit", path)
        if m:
            if self.fail_commit_once:
                self.fail_commit_once = False
                return httpx2.Response(503, json={"code": "busy", "message": "busy"})
            return self._commit(m[1], orjson.loads(request.read()))
        if path == "/api/v1/imaging/film-url":
            body = orjson.loads(request.read())
            if self.film_status != 200:
                return httpx2.Response(self.film_status, json={"code": "not_found", "message": "检查不存在"})
            return httpx2.Response(200, json={"code": "ok", "url": f"http://film.example/f/{body['accessNumber']}k", "key": "k"})
        if path == "/api/v1/imaging/deletions":
            self.deletions.append(orjson.loads(request.read()))
            return httpx2.Response(200, json={"code": "ok", "hidden": 2})
        if path == "/api/v1/imaging/patient-exams":
            body = orjson.loads(request.read())
            exams = [{"org_code": "B", "accession_number": "X1", "modality": "CT"}] if body["id_no"] == "650102198001010012" else []
            return httpx2.Response(200, json={"code": "ok", "count": len(exams), "exams": exams})
        return httpx2.Response(404, json={"code": "not_found", "message": path})

    def _stow(self, request: httpx2.Request) -> httpx2.Response:
        ctype = request.headers["content-type"]
        assert ctype.startswith('multipart/related; type="application/dicom"; boundary=')
        boundary = ctype.rsplit("=", 1)[1].encode()
        body = request.read()
        assert len(body) == int(request.headers["content-length"])
        parts = body.split(b"--" + boundary)
        assert parts[0] == b"" and parts[-1] == b"--\r\n"
        refs = []
        for part in parts[1:-1]:
            head, _, data = part.partition(b"\r\n\r\n")
            assert b"Content-Type: application/dicom" in head
            data = data[:-2]  # the CRLF before the next delimiter
            ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data), stop_before_pixels=True)
            self.stored.setdefault(str(ds.StudyInstanceUID), {})[str(ds.SOPInstanceUID)] = hashlib.sha256(data).hexdigest()
            self.sent += 1
            refs.append({"00081155": {"vr": "UI", "Value": [str(ds.SOPInstanceUID)]}})
        return httpx2.Response(200, json={"00081199": {"vr": "SQ", "Value": refs}})

    def _commit(self, uid: str, body: dict[str, Any]) -> httpx2.Response:
        self.commits.append(uid)
        have = self.stored.get(uid, {})
        failed = []
        for inst in body["instances"]:
            got = have.get(inst["SOPInstanceUID"])
            if got is None:
                failed.append({"SOPInstanceUID": inst["SOPInstanceUID"], "reason": "missing"})
            elif got != inst["sha256"]:
                failed.append({"SOPInstanceUID": inst["SOPInstanceUID"], "reason": "sha256"})
        state = "receiving" if failed else "complete"
        return httpx2.Response(200, json={"code": "ok", "study_instance_uid": uid, "state": state, "committed": [], "failed": failed})


def fake_client(fake: FakePlatform) -> HurenClient:
    return HurenClient("http://platform", ORG, "his", "pw", http=httpx2.Client(base_url="http://platform", transport=httpx2.MockTransport(fake)))


@pytest.fixture
def pacs(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    db = make_pacs(tmp_path / "pacs.db")
    yield db
    db.close()


def spool(tmp_path: Path, folder: str = "spool", **kw: Any) -> Spool:
    return Spool(tmp_path / folder, Sealer(cipher_beside(tmp_path / "outbox.db")), **kw)


def source(tmp_path: Path, **kw: Any) -> PacsViewsSource:
    raw = {"name": "pacs", "url": f"sqlite:///{tmp_path / 'pacs.db'}", "recheck_seconds": 0} | kw
    return build(raw, org_code=ORG, spool=spool(tmp_path))


def gateway(tmp_path: Path, fake: FakePlatform, **views: Any) -> Gateway:
    doc = {
        "platform": {"base_url": "http://platform", "org_code": ORG, "username": "his", "password": "pw"},
        "outbox": {"path": "outbox.db", "max_backoff_seconds": 2},
        "pacs_views": {"url": "sqlite:///pacs.db", "recheck_seconds": 0} | views,
        "imaging": {"spool_dir": "spool"},
    }
    return Gateway(parse(doc, tmp_path), sources=[], client=fake_client(fake))


# -- tests --------------------------------------------------------------------------------------------


def test_a_complete_study_is_pushed_once_byte_exact(tmp_path: Path, pacs: sqlite3.Connection) -> None:
    st = add_study(pacs, tmp_path / "pacsfiles", "A1001", n=3)
    fake = FakePlatform()
    gw = gateway(tmp_path, fake)
    assert gw.poll() == 1
    assert gw.box.counts()["pending"] == 1
    [item] = gw.box.next_batch(["study"], 10)
    doc = orjson.loads(item.payload)
    assert doc["study_instance_uid"] == st.uid and doc["instance_count"] == 3
    assert {i["sop_instance_uid"] for i in doc["instances"]} == {sop for _, _, sop in st.files}
    assert "PATIENTNAME" not in item.payload.decode() and b"\xe5\xbc\xa0" not in item.payload  # names stay in the files
    want = {sop: hashlib.sha256(path.read_bytes()).hexdigest() for path, _, sop in st.files}
    for path, _, _ in st.files:  # the PACS purges its files once queued: nothing is lost
        path.unlink()
    settled, down = gw.imaging.pusher.drain()  # type: ignore[union-attr]
    assert (settled, down) == (1, "")
    assert fake.stored[st.uid] == want  # the bytes as the PACS had them
    assert {i["sop_instance_uid"]: i["sha256"] for i in doc["instances"]} == want
    assert fake.commits == [st.uid] and gw.box.counts() == {"pending": 0, "done": 1, "dead": 0}
    assert list((tmp_path / "spool").iterdir()) == []  # the spool is emptied once the study is committed
    assert gw.poll() == 0  # read again: nothing new
    assert gw.imaging.pusher.drain() == (0, "")  # type: ignore[union-attr]
    assert fake.sent == 3
    gw.close()


def _meta(gw: Gateway, what: str, name: str = "pacs_views") -> str:
    return gw.box.meta(f"imaging_{what}:{name}")


def test_a_count_mismatch_waits_and_later_studies_go_on(tmp_path: Path, pacs: sqlite3.Connection, caplog: pytest.LogCaptureFixture) -> None:
    short = add_study(pacs, tmp_path / "f", "B1", n=2, count=3, modify="2026-11-30 08:00:00")
    later = add_study(pacs, tmp_path / "f", "B2", n=2, modify="2026-11-30 09:00:00")
    fake = FakePlatform()
    gw = gateway(tmp_path, fake)
    assert gw.poll() == 1
    [item] = gw.box.next_batch(["study"], 10)
    assert orjson.loads(item.payload)["study_instance_uid"] == later.uid
    text = _meta(gw, "waiting")
    assert short.uid in text and "实例数不符：v_web_jctj 的 INSTANCECOUNT 为 3，v_web_jcjg 列出 2 个文件" in text
    status = gw.box.stats()["sources"]["pacs_views"]
    assert status["last_error"].startswith("1 个检查尚不完整，等待重试") and status["poll_failures"] == 0
    assert any("检查影像尚不完整" in r.getMessage() and getattr(r, "reason", "").startswith("实例数不符") for r in caplog.records)
    assert gw.imaging.pusher.drain() == (1, "")  # type: ignore[union-attr]
    assert short.uid not in fake.stored
    assert gw.poll() == 0  # still short: still waiting, nothing half pushed
    assert short.uid not in fake.stored and short.uid in _meta(gw, "waiting")
    # the PACS finishes the study (without touching MODIFYTIME): the waiting list finds it
    extra = add_study(pacs, tmp_path / "g", "B1x", n=1)
    pacs.execute("UPDATE pacs_file SET STUDIUIID = ?, ACCESS_NO = 'B1' WHERE STUDIUIID = ?", (short.uid, extra.uid))
    pacs.execute("DELETE FROM pacs_study WHERE STUDIUIID = ?", (extra.uid,))
    ds = pydicom.dcmread(extra.files[0][0])
    ds.StudyInstanceUID = short.uid
    ds.save_as(extra.files[0][0])
    size = extra.files[0][0].stat().st_size
    pacs.execute("UPDATE pacs_file SET FILESIZE = ? WHERE INSTANCESOPIUID = ?", (str(size), extra.files[0][2]))
    pacs.execute("UPDATE pacs_study SET FILESIZE = CAST(FILESIZE AS INTEGER) + ? WHERE STUDIUIID = ?", (size, short.uid))
    assert gw.poll() == 1
    assert _meta(gw, "waiting") == ""
    assert gw.imaging.pusher.drain() == (1, "")  # type: ignore[union-attr]
    assert len(fake.stored[short.uid]) == 3
    gw.close()


def test_sizes_must_agree_and_the_files_must_be_the_rows(tmp_path: Path, pacs: sqlite3.Connection) -> None:
    big = add_study(pacs, tmp_path / "f", "C1", n=2, size_delta=10)
    other = add_study(pacs, tmp_path / "f", "C2", n=1)
    swapped = add_study(pacs, tmp_path / "f", "C3", n=1)
    pacs.execute("UPDATE pacs_file SET FILEPATH = ? WHERE STUDIUIID = ?", (str(other.files[0][0]), swapped.uid))
    junk = add_study(pacs, tmp_path / "f", "C4", n=1)
    junk.files[0][0].write_bytes(b"\0" * junk.files[0][0].stat().st_size)
    gone = add_study(pacs, tmp_path / "f", "C5", n=1)
    gone.files[0][0].unlink()
    odd = add_study(pacs, tmp_path / "f", "C6", n=1)
    pacs.execute("UPDATE pacs_study SET INSTANCECOUNT = 'one' WHERE STUDIUIID = ?", (odd.uid,))
    gw = gateway(tmp_path, FakePlatform())
    assert gw.poll() == 1  # C2 only
    text = _meta(gw, "waiting")
    assert f"{big.uid}：文件大小不符" in text
    assert f"{swapped.uid}：文件中的 SOP Instance UID" in text
    assert f"{junk.uid}：不是 DICOM 文件" in text
    assert f"{gone.uid}：无法读取文件" in text and "文件不存在" in text
    assert f"{odd.uid}：v_web_jctj 的 INSTANCECOUNT“one”不是数字" in text
    assert [p.name for p in (tmp_path / "spool").iterdir() if not p.name.startswith(".")] != []
    assert not [p for p in (tmp_path / "spool").iterdir() if p.name.startswith(".part-")]
    gw.close()


def test_another_institutions_study_is_refused(tmp_path: Path, pacs: sqlite3.Connection, caplog: pytest.LogCaptureFixture) -> None:
    foreign = add_study(pacs, tmp_path / "f", "D1", n=1, org="999999999")
    gw = gateway(tmp_path, FakePlatform())
    assert gw.poll() == 0
    assert f"{foreign.uid}：INSTITUTIONCODE“999999999”不是本前置机的机构（{ORG}），拒绝推送" in _meta(gw, "refused")
    assert any(r.levelname == "ERROR" and "拒绝推送" in r.getMessage() for r in caplog.records)
    assert gw.box.counts()["pending"] == 0
    gw.close()


def test_view_names_and_columns_are_configurable(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "pacs.db", isolation_level=None)
    cols = [("STUDYIUID" if c == "STUDIUIID" else c) for c in FILE_COLUMNS]
    db.execute(f"CREATE TABLE f ({', '.join(c + ' TEXT' for c in cols)})")
    db.execute(f"CREATE TABLE s ({', '.join(('STUDYIUID' if c == 'STUDIUIID' else c) + ' TEXT' for c in STUDY_COLUMNS)})")
    db.execute("CREATE VIEW v_web_jcjc AS SELECT * FROM f")  # as the seed misspells it (002:1356)
    db.execute("CREATE VIEW \"v_web_jc jg\" AS SELECT * FROM s")
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    path = tmp_path / "x.dcm"
    ds.save_as(path, enforce_file_format=True)
    row = dict.fromkeys(FILE_COLUMNS, "") | {
        "FILEPATH": "D:\\PACS\\x.dcm", "CREATEDTIME": OLD, "STUDIUIID": ds.StudyInstanceUID, "INSTANCESOPIUID": ds.SOPInstanceUID,
        "INSTITUTIONCODE": "H01", "FILESIZE": str(path.stat().st_size),
    }
    db.execute("INSERT INTO f VALUES (" + ",".join("?" * len(cols)) + ")", [row[c] for c in FILE_COLUMNS])
    srow = dict.fromkeys(STUDY_COLUMNS, "") | {
        "STUDIUIID": ds.StudyInstanceUID, "MODIFYTIME": OLD, "INSTITUTIONCODE": "H01", "FILESIZE": row["FILESIZE"], "INSTANCECOUNT": "1",
    }
    db.execute("INSERT INTO s VALUES (" + ",".join("?" * len(STUDY_COLUMNS)) + ")", [srow[c] for c in STUDY_COLUMNS])
    db.close()
    src = source(
        tmp_path, study_view="v_web_jc jg", file_view="v_web_jcjc", columns={"STUDIUIID": "STUDYIUID"},
        institution_codes=["H01"], path_map={"D:\\PACS\\": f"{tmp_path}/"},
    )
    [rec] = list(src.poll(""))
    assert rec.payload["study_instance_uid"] == ds.StudyInstanceUID and rec.payload["org_code"] == "H01"
    assert rec.payload["instances"][0]["filepath"] == f"{tmp_path}/x.dcm"


def test_a_waiting_study_is_not_fetched_at_every_poll(tmp_path: Path, pacs: sqlite3.Connection) -> None:
    st = add_study(pacs, tmp_path / "f", "J1", n=2)
    st.files[1][0].unlink()  # one file missing: the other is fetched at each check
    src = source(tmp_path, recheck_seconds=3600)
    fetched: list[str] = []
    stage = src.spool.stage
    src.spool.stage = lambda path, sop, study: fetched.append(sop) or stage(path, sop, study)  # type: ignore[method-assign]
    assert list(src.poll("")) == []
    assert "无法读取文件" in src.waiting[st.uid] and len(fetched) == 2  # the first file, then the missing one
    n = len(fetched)
    wm = orjson.dumps({"at": None, "wait": {str(st.uid): datetime.now().strftime("%Y-%m-%d %H:%M:%S")}}).decode()
    assert list(src.poll(wm)) == [] and len(fetched) == n  # checked a moment ago: not again
    assert "无法读取文件" in src.waiting[st.uid]  # still reported
    src.recheck_seconds = 0
    assert list(src.poll(wm)) == [] and len(fetched) > n


def test_files_too_young_wait(tmp_path: Path, pacs: sqlite3.Connection) -> None:
    now = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    st = add_study(pacs, tmp_path / "f", "E1", n=1, modify=now)
    src = source(tmp_path, settle_seconds=600)
    assert list(src.poll("")) == []
    assert "PACS 可能仍在写入" in src.waiting[st.uid]
    assert [r.payload["study_instance_uid"] for r in source(tmp_path, settle_seconds=0).poll("")] == [st.uid]


def test_a_killed_run_resumes_without_doubling(tmp_path: Path, pacs: sqlite3.Connection) -> None:
    st = add_study(pacs, tmp_path / "f", "F1", n=2)
    fake = FakePlatform()
    fake.fail_commit_once = True  # the instances arrive, the commit does not: as if killed after STOW
    gw = gateway(tmp_path, fake)
    assert gw.poll() == 1
    settled, down = gw.imaging.pusher.drain()  # type: ignore[union-attr]
    assert settled == 0 and "503" in down
    assert gw.box.counts() == {"pending": 1, "done": 0, "dead": 0}
    gw.close()  # the process ends here
    again = gateway(tmp_path, fake)  # a new run on the same outbox and spool
    assert again.poll() == 0  # the study is already queued: not a second record
    assert again.imaging.pusher.drain() == (1, "")  # type: ignore[union-attr]
    assert again.box.counts() == {"pending": 0, "done": 1, "dead": 0}
    assert fake.sent == 4 and len(fake.stored[st.uid]) == 2  # sent twice, held once
    assert fake.commits == [st.uid]
    assert again.poll() == 0 and again.imaging.pusher.drain() == (0, "")  # type: ignore[union-attr]
    again.close()


def test_platform_down_keeps_the_study_pending(tmp_path: Path, pacs: sqlite3.Connection) -> None:
    add_study(pacs, tmp_path / "f", "G1", n=1)
    fake = FakePlatform()
    gw = gateway(tmp_path, fake)
    gw.poll()
    fake.down = True
    settled, down = gw.imaging.pusher.drain()  # type: ignore[union-attr]
    assert settled == 0 and "ConnectError" in down
    fake.down = False
    assert gw.imaging.pusher.drain() == (1, "")  # type: ignore[union-attr]
    gw.close()


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    folder = tmp_path / "web"
    folder.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()
    server.server_close()


def test_files_by_http_url_with_a_size_bound(tmp_path: Path, pacs: sqlite3.Connection, http_folder: tuple[str, Path]) -> None:
    base, folder = http_folder
    st = add_study(pacs, folder, "H1", n=2)
    for path, _, sop in st.files:
        pacs.execute("UPDATE pacs_file SET FILEPATH = ? WHERE INSTANCESOPIUID = ?", (f"{base}/{path.name}", sop))
    missing = add_study(pacs, folder, "H2", n=1)
    pacs.execute("UPDATE pacs_file SET FILEPATH = ? WHERE STUDIUIID = ?", (f"{base}/nothing.dcm", missing.uid))
    src = source(tmp_path)
    [rec] = list(src.poll(""))
    assert rec.payload["study_instance_uid"] == st.uid
    spooled = {i["sha256"] for i in rec.payload["instances"]}
    assert spooled == {hashlib.sha256(p.read_bytes()).hexdigest() for p, _, _ in st.files}
    assert "下载影像文件失败：HTTP 404" in src.waiting[missing.uid]
    small = build({"name": "pacs", "url": f"sqlite:///{tmp_path / 'pacs.db'}", "recheck_seconds": 0}, org_code=ORG,
                  spool=spool(tmp_path, "spool2", max_file_bytes=4096))
    assert list(small.poll("")) == []
    assert "文件超过上限 4096 字节" in small.waiting[st.uid]


def test_the_spool_is_sealed_at_rest_and_a_broken_file_is_fetched_again(tmp_path: Path, pacs: sqlite3.Connection) -> None:
    st = add_study(pacs, tmp_path / "f", "K1", n=2, name="王五")
    fake = FakePlatform()
    gw = gateway(tmp_path, fake)
    gw.poll()
    files = sorted((tmp_path / "spool").iterdir())
    assert len(files) == 2
    clear = [p.read_bytes() for p, _, _ in st.files]
    for f in files:
        raw = f.read_bytes()
        assert b"DICM" not in raw
        assert not any(c[132:196] in raw or c[-64:] in raw for c in clear)  # no stretch of either file in the clear
        assert f.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "spool").stat().st_mode & 0o777 == 0o700
    raw = bytearray(files[0].read_bytes())
    raw[-5] ^= 1  # a flipped bit in the last chunk
    files[0].write_bytes(bytes(raw))
    settled, why = gw.imaging.pusher.drain()  # type: ignore[union-attr]
    assert settled == 0 and "暂存文件无法读取，将从 PACS 重新读取" in why
    assert not files[0].exists() and files[1].exists()
    assert st.uid not in fake.commits
    assert gw.imaging.pusher.drain() == (1, "")  # type: ignore[union-attr]  # fetched again from the PACS
    assert sorted(fake.stored[st.uid].values()) == sorted(hashlib.sha256(c).hexdigest() for c in clear)
    gw.close()


# -- against the platform itself (its STOW-RS and commit, in process) --------------------------------


@pytest.fixture
def database_url(tmp_path: Path, sqlite_template: Path) -> str:
    """SQLite only: the gateway does not care which database the platform runs on."""
    import shutil

    target = tmp_path / "huren.db"
    shutil.copy(sqlite_template, target)
    return f"sqlite:///{target}"


class Counting(httpx2.BaseTransport):
    """The in-process platform, counting the STOW-RS requests and failing the next commit on demand."""

    def __init__(self, inner: httpx2.BaseTransport) -> None:
        self.inner, self.stows, self.fail_commit = inner, 0, False

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/dicom-web/studies":
            self.stows += 1
        if request.url.path.endswith("/commit") and self.fail_commit:
            self.fail_commit = False
            raise httpx2.ConnectError("killed", request=request)
        return self.inner.handle_request(request)


def platform_gateway(tmp_path: Path, transport: httpx2.BaseTransport) -> Gateway:
    from tests.e2e.gateway_source import ORG as PORG
    from tests.e2e.gateway_source import PASSWORD

    doc = {
        "platform": {"base_url": "http://testserver", "org_code": PORG.code, "username": "his", "password": PASSWORD},
        "outbox": {"path": "outbox.db", "max_backoff_seconds": 2},
        "pacs_views": {"url": "sqlite:///pacs.db", "recheck_seconds": 0},
    }
    hc = HurenClient("http://testserver", PORG.code, "his", PASSWORD, http=httpx2.Client(base_url="http://testserver", transport=transport))
    return Gateway(parse(doc, tmp_path), sources=[], client=hc)


def test_pushed_to_the_platform_once_byte_exact_and_committed(tmp_path: Path, pacs: sqlite3.Connection, container: Any, client: Any) -> None:
    from huren.context import Principal
    from tests.e2e.gateway_source import ORG as PORG
    from tests.e2e.gateway_source import PASSWORD

    container.directory.add_org(PORG.code, PORG.name, PORG.region_code, "3甲", user="his", password=PASSWORD)
    st = add_study(pacs, tmp_path / "f", "P1", n=3, org=PORG.code)
    clear = {sop: path.read_bytes() for path, _, sop in st.files}
    transport = Counting(client._transport)
    transport.fail_commit = True  # the instances arrive, then the gateway is killed before its commit
    gw = platform_gateway(tmp_path, transport)
    assert gw.poll() == 1
    settled, down = gw.imaging.pusher.drain()  # type: ignore[union-attr]
    assert settled == 0 and down
    me = Principal(PORG.code, "his", "hospital")
    assert gw.box.counts() == {"pending": 1, "done": 0, "dead": 0}  # not confirmed: the study stays queued
    gw.close()
    again = platform_gateway(tmp_path, transport)
    assert again.poll() == 0
    assert again.imaging.pusher.drain() == (1, "")  # type: ignore[union-attr]
    assert container.imaging.study_state(me, st.uid) == "complete"
    held = container.imaging.instances_of(me, st.uid)
    assert {f.sop_uid: b"".join(f.chunks()) for f in held} == clear  # byte-exact, each once
    assert transport.stows == 2 and again.box.counts() == {"pending": 0, "done": 1, "dead": 0}
    assert again.poll() == 0 and again.imaging.pusher.drain() == (0, "")  # type: ignore[union-attr]
    assert transport.stows == 2
    again.close()


def test_the_run_loop_polls_and_pushes_and_backs_off(tmp_path: Path, pacs: sqlite3.Connection) -> None:
    st = add_study(pacs, tmp_path / "f", "L1", n=1)
    fake = FakePlatform()
    fake.down = True
    gw = gateway(tmp_path, fake)
    gw._round()  # polled, the push found the platform down: the gateway backs off
    assert gw.box.counts()["pending"] == 1 and not gw.available()
    fake.down = False
    gw._retry_at = 0.0
    gw._round()
    assert fake.commits == [st.uid] and gw.box.counts() == {"pending": 0, "done": 1, "dead": 0}
    gw.close()


@pytest.mark.e2e
def test_huren_gateway_run_killed_mid_push_resumes_without_doubling(tmp_path: Path, pacs: sqlite3.Connection) -> None:
    """`huren gateway run` as a real process in front of `huren serve`: killed (SIGKILL) while it
    pushes the studies, started again: every instance is held once, every study complete."""
    import contextlib
    import os
    import signal
    import subprocess
    import sys

    from tests.e2e.gateway_source import ORG as PORG
    from tests.e2e.test_gateway_faults import ROOT, Platform, _env, _free_port, _wait

    studies = [add_study(pacs, tmp_path / "f", f"Q{i}", n=3, org=PORG.code) for i in range(8)]
    port = _free_port()
    platform = Platform(tmp_path / "data", port)
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[platform]\nbase_url = "http://127.0.0.1:{port}"\norg_code = "{PORG.code}"\nusername = "his"\n'
        'password_env = "HUREN_GATEWAY_PASSWORD"\ntimeout_seconds = 10\n'
        '[outbox]\npath = "outbox.db"\nmax_backoff_seconds = 1\n'
        '[schedule]\npoll_every_seconds = 0.2\ndaily_counts = "off"\n'
        f'[pacs_views]\nurl = "sqlite:///{tmp_path / "pacs.db"}"\nsettle_seconds = 0\n'
        '[imaging]\nmax_stow_bytes = 1024\n',  # one instance per STOW-RS request: a longer push to land in
        "utf-8",
    )
    log = tmp_path / "gateway.log"

    def start() -> subprocess.Popen[bytes]:
        with log.open("ab") as fh:
            return subprocess.Popen(
                [sys.executable, "-m", "huren.cli", "gateway", "run", "--config", str(config)],
                env=_env(), cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def outbox(sql: str) -> Any:
        try:
            with contextlib.closing(sqlite3.connect(tmp_path / "outbox.db", timeout=30)) as db:
                return db.execute(sql).fetchone()
        except sqlite3.OperationalError:
            return None

    def held() -> int:
        with contextlib.closing(sqlite3.connect(tmp_path / "data" / "huren.db", timeout=30)) as db:
            try:
                return int(db.execute("SELECT count(*) FROM image_instance").fetchone()[0])
            except sqlite3.OperationalError:
                return 0

    gw: subprocess.Popen[bytes] | None = None
    try:
        platform.start()
        gw = start()
        _wait("a first instance to arrive", lambda: held() >= 4, logs=(log, platform.log))
        os.killpg(gw.pid, signal.SIGKILL)
        gw.wait(15)
        left = outbox("SELECT count(*) FROM record WHERE state = 'pending'")
        assert left is not None and left[0] > 0, "the push was over before the kill"
        gw = start()
        _wait("every study to be confirmed", lambda: (outbox("SELECT count(*) FROM record WHERE state = 'done'") or [0])[0] == 8,
              logs=(log, platform.log))
        os.killpg(gw.pid, signal.SIGTERM)
        assert gw.wait(30) == 0
    finally:
        for p in (gw, platform.proc):
            if p is not None and p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(15)
    assert outbox("SELECT count(*), sum(state = 'done') FROM record") == (8, 8)  # one record per study, ever
    with contextlib.closing(sqlite3.connect(tmp_path / "data" / "huren.db")) as db:
        rows = db.execute(
            "SELECT s.study_uid, s.state, count(i.id), count(DISTINCT i.sop_uid) FROM image_study s"
            " JOIN image_instance i ON i.study_id = s.id GROUP BY s.study_uid"
        ).fetchall()
        shas = dict(db.execute("SELECT sop_uid, sha256 FROM image_instance").fetchall())
    assert sorted(rows) == sorted((st.uid, "complete", 3, 3) for st in studies)
    assert shas == {sop: hashlib.sha256(p.read_bytes()).hexdigest() for st in studies for p, _, sop in st.files}


def test_configuration_errors_name_the_key(tmp_path: Path, pacs: sqlite3.Connection) -> None:
    from huren.gateway.config import ConfigError

    with pytest.raises(ConfigError, match=r"pacs_views\[pacs_views\]\.batch_size 不能大于 1000"):
        gateway(tmp_path, FakePlatform(), batch_size=5000)
    with pytest.raises(ConfigError, match=r"pacs_views\[pacs_views\]\.url：SQLite 数据库 .*nope.db 不存在"):
        gateway(tmp_path, FakePlatform(), url="sqlite:///nope.db")
    with pytest.raises(ConfigError, match=r"pacs_views\[pacs_views\]：不认识的配置项 view"):
        gateway(tmp_path, FakePlatform(), view="v_web_jcjg")
    with pytest.raises(ConfigError, match="name = \"pacs\" 与其他来源重名"):
        parse({"platform": {"base_url": "http://x", "org_code": ORG, "username": "u", "password": "p"},
               "source": [{"name": "pacs", "type": "db"}], "pacs_views": {"name": "pacs", "url": "sqlite:///pacs.db"}}, tmp_path)


def test_a_study_that_never_completes_becomes_a_dead_letter(tmp_path: Path, pacs: sqlite3.Connection) -> None:
    from huren.gateway.imaging import MAX_TRIES

    st = add_study(pacs, tmp_path / "f", "M1", n=1)
    fake = FakePlatform()
    real = fake._commit
    fake._commit = lambda uid, body: real(uid, {"instances": [*body["instances"], {"SOPInstanceUID": "1.2.3", "sha256": "0" * 64}]})  # type: ignore[method-assign]
    gw = gateway(tmp_path, fake)
    gw.poll()
    for _ in range(MAX_TRIES - 1):
        settled, why = gw.imaging.pusher.drain()  # type: ignore[union-attr]
        assert settled == 0 and f"平台确认检查 {st.uid} 尚不完整" in why
    assert gw.imaging.pusher.drain() == (1, "")  # type: ignore[union-attr]
    [dead] = gw.box.dead()
    assert dead["kind"] == "study" and f"{MAX_TRIES} 次推送后仍未完成" in dead["error"]
    gw.close()
