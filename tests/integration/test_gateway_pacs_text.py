"""YB-4.1.1: exam reports from the PACS's ``View_Pacs_Text_Info`` (a SQLite file standing in for the
PACS database, the view over a table): the default columns mapped to exammaster / exam_subitem, a
report of two items (two rows) queued once, renamed and missing columns, a withdrawn report, the
watermark, configuration errors."""

from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from huren.gateway.config import ConfigError, build_sources, parse
from huren.gateway.ingest import ingest
from huren.gateway.outbox import Outbox
from huren.gateway.sealing import cipher_beside
from huren.gateway.sources.base import SourceError
from huren.gateway.sources.pacs_text import ITEM_COLUMNS, MASTER_COLUMNS, PacsTextSource

ORG = "457759922"
COLUMNS = sorted({*MASTER_COLUMNS.values(), *ITEM_COLUMNS.values(), "IMAGE_PATH"})


def row(report: str = "R1", **kw: str) -> dict[str, str]:
    base = {
        "REPORT_NO": report, "ACCESS_NO": f"A{report}", "PATIENT_ID": "P1", "EVENT_TYPE": "1", "EVENT_NO": "V1",
        "ID_TYPE": "01", "ID_NO": "650102198001010012", "PATIENT_NAME": "张三", "PATIENT_SEX": "1",
        "BIRTH_DATE": "1980-01-01", "MODALITY": "CT", "ITEM_CODE": "CT001", "ITEM_NAME": "胸部CT平扫",
        "BODY_PART_CODE": "CHEST", "BODY_PART": "胸部", "EXAM_TIME": "2026-11-30 08:10:00",
        "REPORT_TIME": "2026-11-30 09:00:00", "REPORT_DOCTOR": "李医生", "APPROVE_TIME": "2026-11-30 09:30:00",
        "APPROVE_DOCTOR": "王主任", "MODIFY_TIME": "2026-11-30 09:30:00", "FINDINGS": "双肺纹理清晰。",
        "CONCLUSION": "胸部CT未见异常。", "ABNORMAL": "0", "STUDY_UID": "1.2.3.4", "DATA_STATUS": "1",
        "ORG_CODE": ORG, "IMAGE_PATH": "http://pacs/1.dcm;http://pacs/2.dcm",
    }
    return base | kw


def make_view(path: Path, columns: list[str] = COLUMNS, view: str = "View_Pacs_Text_Info") -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"CREATE TABLE pacs_text ({', '.join(c + ' TEXT' for c in columns)})")
    db.execute(f"CREATE VIEW {view} AS SELECT * FROM pacs_text")
    return db


def insert(db: sqlite3.Connection, r: dict[str, str]) -> None:
    cols = [c[1] for c in db.execute("PRAGMA table_info(pacs_text)")]
    db.execute(f"INSERT INTO pacs_text VALUES ({','.join('?' * len(cols))})", [r.get(c) for c in cols])


def config(tmp_path: Path, **text: Any) -> Any:
    doc = {
        "platform": {"base_url": "http://platform", "org_code": ORG, "username": "his", "password": "pw"},
        "outbox": {"path": "outbox.db"},
        "pacs_text": {"url": "sqlite:///pacs.db"} | text,
    }
    return parse(doc, tmp_path)


def source(tmp_path: Path, **text: Any) -> PacsTextSource:
    [src] = build_sources(config(tmp_path, **text))
    assert isinstance(src, PacsTextSource)
    return src


def test_default_columns_map_to_exammaster_and_items(tmp_path: Path) -> None:
    db = make_view(tmp_path / "pacs.db")
    insert(db, row())
    insert(db, row(ITEM_CODE="CT002", ITEM_NAME="上腹部CT平扫", BODY_PART="上腹部"))  # the report's second item
    insert(db, row("R2", MODIFY_TIME="2026-11-30 10:00:00", PATIENT_SEX="女", STUDY_UID="1.2.3.5"))
    src = source(tmp_path)
    recs = list(src.poll(""))
    assert [r.key for r in recs] == [f"exam:{ORG}|R1|P1|1|V1", f"exam:{ORG}|R2|P1|1|V1"]  # R1 once, not once per row
    m = recs[0].payload["exammaster"]
    assert (m["report_form_no"], m["pacs_id"], m["patient_id"], m["id_type_code"], m["id_no"]) == (
        "R1", "AR1", "P1", "01", "650102198001010012")
    assert (m["name"], m["sex_code"], m["sex_name"], m["birth_date"]) == ("张三", "1", "男", "1980-01-01")
    assert (m["class_code"], m["class_name"], m["performer_dtime"], m["authenticator_dtime"]) == (
        "CT", "CT", "2026-11-30 08:10:00", "2026-11-30 09:30:00")
    assert (m["author_name"], m["authenticator_name"], m["last_update_dtime"]) == ("李医生", "王主任", "2026-11-30 09:30:00")
    assert (m["image_descr"], m["conclusion"], m["is_abnormal"], m["study_instance_uid"]) == (
        "双肺纹理清晰。", "胸部CT未见异常。", "0", "1.2.3.4")
    items = recs[0].payload["exam_subitem"]
    assert sorted((i["exam_item_code"], i["exam_item_name"], i["body_part_name"]) for i in items) == [
        ("CT001", "胸部CT平扫", "胸部"), ("CT002", "上腹部CT平扫", "上腹部")]
    assert all(i["report_form_no"] == "R1" and i["org_code"] == ORG for i in items)
    m2 = recs[1].payload["exammaster"]
    assert (m2["sex_code"], m2["sex_name"]) == ("2", "女")  # a name where the code belongs
    master, paths, _ = next(src.studies(""))
    assert master["study_instance_uid"] == "1.2.3.4" and paths == ["http://pacs/1.dcm", "http://pacs/2.dcm"]
    db.close()


def test_through_the_outbox_with_a_watermark_and_a_void(tmp_path: Path) -> None:
    db = make_view(tmp_path / "pacs.db")
    insert(db, row())
    src = source(tmp_path)
    box = Outbox(tmp_path / "outbox.db", cipher=cipher_beside(tmp_path / "outbox.db"))
    assert ingest(box, src) == 1
    assert ingest(box, src) == 0  # nothing new after the watermark
    db.execute("UPDATE pacs_text SET CONCLUSION = '胸部CT：右肺小结节。', MODIFY_TIME = '2026-11-30 11:00:00'")
    assert ingest(box, src) == 1  # a modification is a resubmission
    db.execute("UPDATE pacs_text SET DATA_STATUS = '0', MODIFY_TIME = '2026-11-30 12:00:00'")
    assert ingest(box, src) == 1
    items = box.next_batch(["exam", "void_exam"], 10)
    assert [i.kind for i in items] == ["exam"]  # one at a time per key: the void waits for its registration
    assert orjson.loads(items[0].payload)["exammaster"]["conclusion"] == "胸部CT未见异常。"
    rows = box._rows("SELECT kind FROM record ORDER BY id")
    assert [r["kind"] for r in rows] == ["exam", "exam", "void_exam"]
    box.close()
    db.close()


def test_renamed_and_missing_columns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "huren.gateway.sources.pacs_text")
    cols = ["BGDH", "JCH", "BRID", "XM", "XB", "JCSJ", "XGSJ", "YXSJ", "ZDYJ", "XMDM", "XMMC", "DICOM_UID", "TPLJ"]
    db = make_view(tmp_path / "pacs.db", cols, view="V_PACS_TEXT")
    insert(db, {"BGDH": "B9", "JCH": "J9", "BRID": "P9", "XM": "李四", "XB": "2", "JCSJ": "2026-11-29 08:00:00",
                "XGSJ": "2026-11-29 10:00:00", "YXSJ": "肝脏形态正常。", "ZDYJ": "未见异常。", "XMDM": "US01",
                "XMMC": "腹部超声", "DICOM_UID": "1.2.9", "TPLJ": "/mnt/pacs/a.dcm\n/mnt/pacs/b.dcm"})
    src = source(
        tmp_path, view="V_PACS_TEXT",
        columns={"report_form_no": "BGDH", "pacs_id": "JCH", "patient_id": "BRID", "name": "XM", "sex_code": "XB",
                 "performer_dtime": "JCSJ", "last_update_dtime": "XGSJ", "image_descr": "YXSJ", "conclusion": "ZDYJ",
                 "study_instance_uid": "DICOM_UID"},
        item_columns={"exam_item_code": "XMDM", "exam_item_name": "XMMC", "report_form_no": "BGDH", "last_update_dtime": "XGSJ"},
        defaults={"event_type": "1", "event_no": "-", "id_type_code": "01"}, image_path_columns=["TPLJ"],
    )
    [rec] = list(src.poll(""))
    m = rec.payload["exammaster"]
    assert rec.key == f"exam:{ORG}|B9|P9|1|-"
    assert (m["pacs_id"], m["name"], m["sex_name"], m["image_descr"], m["conclusion"], m["org_code"]) == (
        "J9", "李四", "女", "肝脏形态正常。", "未见异常。", ORG)
    assert m["id_no"] == "" and m["birth_date"] == ""  # not in the view, no default: empty (the platform says what is missing)
    assert [(i["exam_item_code"], i["exam_item_name"]) for i in rec.payload["exam_subitem"]] == [("US01", "腹部超声")]
    assert next(src.studies(""))[1] == ["/mnt/pacs/a.dcm", "/mnt/pacs/b.dcm"]
    assert any("没有这些字段的列" in r.getMessage() and "birth_date" in r.getMessage() for r in caplog.records)
    db.close()


def test_a_view_without_the_modification_time_is_named(tmp_path: Path) -> None:
    db = make_view(tmp_path / "pacs.db", ["REPORT_NO", "CONCLUSION"])
    src = source(tmp_path)
    with pytest.raises(SourceError, match="视图 View_Pacs_Text_Info 中没有 last_update_dtime 对应的列 MODIFY_TIME"):
        list(src.poll(""))
    db.close()
    with pytest.raises(SourceError, match="读取检查文字视图 V_NONE 失败"):
        list(source(tmp_path, view="V_NONE").poll(""))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ({"colums": {}}, "pacs_text[pacs_text]：不认识的配置项 colums"),
        ({"columns": {"report_no": "X"}}, "pacs_text[pacs_text].columns：不认识的字段 report_no"),
        ({"batch_size": 5000}, "pacs_text[pacs_text].batch_size 不能大于 1000"),
        ({"image_path_separator": ""}, "image_path_separator 不能为空"),
    ],
)
def test_configuration_errors_name_the_key(tmp_path: Path, text: dict[str, Any], message: str) -> None:
    make_view(tmp_path / "pacs.db").close()
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_sources(config(tmp_path, **text))


def test_backfill_only_names_the_text_view(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``gateway backfill --only pacs_text`` re-reads the View_Pacs_Text_Info source; an unknown
    name is refused, naming it."""
    from huren.gateway.cli import backfill

    db = make_view(tmp_path / "pacs.db")
    insert(db, row("R1"))
    (tmp_path / "gateway.toml").write_text(
        f'[platform]\nbase_url = "http://127.0.0.1:9"\norg_code = "{ORG}"\nusername = "his"\npassword = "pw"\n'
        '[outbox]\npath = "outbox.db"\n[pacs_text]\nurl = "sqlite:///pacs.db"\n', encoding="utf-8",
    )
    from datetime import date

    assert backfill(tmp_path / "gateway.toml", date(2026, 1, 1), ["nope"]) == 2
    assert "nope" in capsys.readouterr().err
    assert backfill(tmp_path / "gateway.toml", date(2026, 1, 1), ["pacs_text"]) == 0
    assert '"queued": 1' in capsys.readouterr().out
