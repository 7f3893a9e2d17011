"""huren.domain.imaging: UID rules, query matching, key states, the YB-5 dictionaries (issue 12)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from huren.domain import imaging
from huren.errors import InvalidInput


def test_uids() -> None:
    assert imaging.valid_uid("1.2.840.10008.5.1.4.1.1.2") and imaging.valid_uid("0.1")
    for bad in ("", "1.02", "1..2", "1.2.", "a.b", "1." + "1" * 63, "1.2 3"):
        assert not imaging.valid_uid(bad), bad
    assert imaging.check_uid(" 1.2.3\0") == "1.2.3"
    with pytest.raises(InvalidInput) as exc:
        imaging.check_uid("1.02", "SeriesInstanceUID")
    assert exc.value.problems[0].field == "SeriesInstanceUID" and exc.value.problems[0].rule == "uid"
    problems: list = []
    assert imaging.check_uid("x", "a", problems) == "" and problems[0].rule == "uid"
    assert imaging.split_uids("1.2\\1.3,1.4") == ["1.2", "1.3", "1.4"]
    assert imaging.is_storage_class("1.2.840.10008.5.1.4.1.1.2") and not imaging.is_storage_class("1.2.840.10008.1.1")


def test_matching() -> None:
    rx = imaging.wildcard_regex("张*")
    assert rx.fullmatch("张三") and not rx.fullmatch("李张三")
    assert imaging.wildcard_regex("wang^?").fullmatch("WANG^X")
    assert imaging.wildcard_regex("a.b").fullmatch("a.b") and not imaging.wildcard_regex("a.b").fullmatch("axb")
    assert imaging.date_range("20240101-20241231") == ("20240101", "20241231")
    assert imaging.date_range("20240101-") == ("20240101", None)
    assert imaging.date_range("-20241231") == (None, "20241231")
    assert imaging.date_range("20240101") == ("20240101", "20240101")
    for bad in ("2024-01-01x", "-", "abc"):
        with pytest.raises(InvalidInput):
            imaging.date_range(bad)


def test_key_states() -> None:
    now = datetime(2026, 12, 1, 12)
    later = now + timedelta(minutes=5)
    assert imaging.key_state(kind="viewer", expires_at=later, revoked=False, now=now).valid
    assert imaging.key_state(kind="viewer", expires_at=later, revoked=True, now=now).reason == "已撤销"
    assert imaging.key_state(kind="viewer", expires_at=now, revoked=False, now=now).reason == "已过期"
    assert imaging.key_state(kind="viewer", expires_at=later, revoked=False, now=now, allowed=("film",)).reason == "类型不符"
    assert imaging.key_expiry(now, 1800) == now + timedelta(seconds=1800)
    with pytest.raises(InvalidInput):
        imaging.key_expiry(now, 10)
    assert imaging.looks_like_key("A" * 22) and not imaging.looks_like_key("A" * 21) and not imaging.looks_like_key("A" * 21 + "=")
    with pytest.raises(InvalidInput):
        imaging.check_key_kind("other")
    assert imaging.check_ae(" HOSP_A ") == "HOSP_A"
    with pytest.raises(InvalidInput):
        imaging.check_ae("A\\B")


def test_yb5_dictionaries_exactly_as_printed() -> None:
    assert set(imaging.YB_DICTIONARIES) == {"patientType", "sex", "examRsltCode", "imgExamType", "prfs", "chargeType", "doctorType"}
    assert dict(imaging.yb_dictionary("patientType")) == {"1": "门诊", "2": "住院", "3": "体检", "4": "急诊", "9": "未说明"}
    assert dict(imaging.yb_dictionary("sex")) == {"0": "未知", "1": "男", "2": "女", "9": "未说明性别"}
    assert dict(imaging.yb_dictionary("examRsltCode")) == {"1": "阴", "2": "阳", "3": "不确定"}
    assert imaging.yb_name("imgExamType", "2") == "计算机断层成像(CT)" and len(imaging.yb_dictionary("imgExamType")) == 5
    assert list(imaging.yb_dictionary("prfs")) == ["11", "13", "17", "21", "24", "27", "31", "37", "51", "54", "70", "80", "90"]
    assert imaging.yb_name("prfs", "80") == "退（离）休人员"
    assert dict(imaging.yb_dictionary("chargeType")) == {"01": "全自费", "02": "医保", "03": "其他"}
    assert dict(imaging.yb_dictionary("doctorType")) == {"1": "医师", "2": "技师", "3": "护士"}
    assert imaging.check_yb("chargeType", " 02 ") == "02"
    with pytest.raises(InvalidInput) as exc:
        imaging.check_yb("chargeType", "2", "chargeType")
    assert exc.value.problems[0].rule == "dictionary" and "01 全自费" in exc.value.message
    with pytest.raises(KeyError):
        imaging.yb_dictionary("nope")
