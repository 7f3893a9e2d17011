"""YB-4.3…4.5 parameters on the gateway (seed 003): the ``$``-for-``%`` encodeURI convention, the
seed's ``hospitalld`` spelling, missing and bad fields named in Chinese, the dictionaries, SM2 ID
numbers, the deletion notice's time, the QR image's caption."""

from __future__ import annotations

import base64
import io

import pytest
import segno
from PIL import Image

from huren.crypto import sm2
from huren.domain import idcard
from huren.gateway.imaging import CAPTION, find_font, qr_png
from huren.gateway.yb_params import (
    Bad,
    check_modality,
    decrypt_id,
    deletion_notice,
    dollar_decode,
    hrball_login,
    query_params,
    require,
)

ID = "650102198001010012"
KEY = sm2.generate_key()
IDS = frozenset({"H650102"})


def test_the_seeds_example_decodes() -> None:
    assert dollar_decode("$E5$BC$A0$E5$8C$BB$E7$94$9F") == "张医生"  # 003: 张医生 → $E5$BC$A0$E5$8C$BB$E7$94$9F
    assert dollar_decode("%E5%BC%A0") == "张"
    assert dollar_decode("a$b$2") == "a$b$2"  # a $ not followed by two hex digits stays
    with pytest.raises(UnicodeDecodeError):
        dollar_decode("$E5$BC")


def test_query_params_trim_alias_and_refuse_repeats() -> None:
    p = query_params("hisUserId= u1 &doctorName=$E5$BC$A0&hospitalld=H1&{phoneNumber}=13800138000&x=a+b")
    assert p == {"hisUserId": "u1", "doctorName": "张", "hospitalId": "H1", "phoneNumber": "13800138000", "x": "a+b"}
    with pytest.raises(Bad) as e:
        query_params("type=1&type=2&doctorName=$E5$BC")
    assert str(e.value) == "传参数不规范：type 重复出现；doctorName 不是合法的 encodeURI 编码（UTF-8，% 以 $ 代替）"
    with pytest.raises(Bad, match="含有控制字符"):
        query_params("doctorName=a%0Ab")


def test_missing_parameters_are_named_as_the_seed_says() -> None:
    with pytest.raises(Bad) as e:
        require({"modality": "CT", "accessNumber": ""}, ("accessNumber", "modality", "hospitalId"))
    assert str(e.value) == "传参数不规范（少传参数）：缺少 accessNumber、hospitalId"


def test_modality_follows_the_xj_list() -> None:
    assert check_modality("CT") is None and check_modality("MR") is None
    why = check_modality("XYZ")
    assert why is not None and why.startswith("“XYZ”不在检查模式字典") and "US" in why


def test_id_numbers_plain_or_sm2() -> None:
    assert decrypt_id(ID, None) == ID
    assert decrypt_id(sm2.sm2_encrypt(KEY, ID.encode()).hex(), KEY) == ID
    assert decrypt_id(base64.b64encode(sm2.sm2_encrypt(KEY, ID.encode())).decode(), KEY) == ID
    assert decrypt_id(sm2.sm2_encrypt(KEY, ID.encode(), "C1C2C3").hex(), KEY, "C1C2C3") == ID
    with pytest.raises(ValueError, match="SM2 解密失败"):
        decrypt_id(sm2.sm2_encrypt(sm2.generate_key(), ID.encode()).hex(), KEY)
    with pytest.raises(ValueError, match="解密后不是有效的居民身份证号"):
        decrypt_id(sm2.sm2_encrypt(KEY, b"650102198001010013").hex(), KEY)
    with pytest.raises(ValueError, match="未配置 SM2 私钥"):
        decrypt_id("abcdef", None)


def _login(**over: str) -> dict[str, str]:
    return {
        "hisUserId": "pacs01", "type": "1", "doctorName": "张医生", "hospitalId": "H650102", "department": "放射科",
        "departmentCode": "0301", "doctorSex": "1", "doctorType": "1", "doctorCode": "D650102000001",
        "doctorIdCardNo": sm2.sm2_encrypt(KEY, ID.encode()).hex(), "phoneNumber": "13800138000",
    } | over


def test_a_good_login() -> None:
    login = hrball_login(_login(), client="10.0.0.5", hospital_ids=IDS, key=KEY)
    assert (login.his_user_id, login.doctor_name, login.client) == ("pacs01", "张医生", "10.0.0.5")
    assert login.id_no_masked == idcard.mask(ID) and ID not in repr(login)


def test_each_bad_login_field_is_named() -> None:
    with pytest.raises(Bad) as e:
        hrball_login(
            _login(doctorSex="5", doctorType="4", hospitalId="H999", doctorIdCardNo="00ff", phoneNumber="abc"),
            client="10.0.0.5", hospital_ids=IDS, key=KEY,
        )
    text = str(e.value)
    assert text.startswith("传参数不规范：")
    for part in (
        "hospitalId “H999”不是本前置机的医保医疗机构",
        "doctorSex “5”不在性别字典（0 未知、1 男、2 女、9 未说明性别）中",
        "doctorType “4”不在人员类型字典（1 医师、2 技师、3 护士）中",
        "phoneNumber 不是有效的电话号码",
        "doctorIdCardNo 不是本前置机 SM2 公钥加密的身份证号",
    ):
        assert part in text
    with pytest.raises(Bad, match="缺少 departmentCode、doctorIdCardNo"):
        hrball_login(_login(departmentCode="", doctorIdCardNo=""), client="x", hospital_ids=IDS, key=KEY)


def test_the_deletion_notice() -> None:
    good = {"patientName": "张三", "accessionNo": "A1", "hospitalId": "H650102", "operateDoctorName": "李医生"}
    for text in ("2026-11-30 10:20:30", "2026-11-30T10:20:30", "20261130102030"):
        assert deletion_notice(good | {"operateDateTime": text}, IDS)["operateDateTime"] == "2026-11-30T10:20:30"
    with pytest.raises(Bad, match="operateDateTime 应为"):
        deletion_notice(good | {"operateDateTime": "yesterday"}, IDS)
    with pytest.raises(Bad, match="缺少 operateDateTime"):
        deletion_notice(good, IDS)


def test_the_qr_code_carries_the_caption_under_it() -> None:
    url = "http://film.example/f/abc"
    bare = Image.open(io.BytesIO(qr_png(url, caption=False)))
    font = find_font()
    if font is None:
        pytest.skip("no CJK font here (fonts-noto-cjk)")
    captioned = Image.open(io.BytesIO(qr_png(url, font=font))).convert("L")
    assert captioned.width == bare.width and captioned.height > bare.height
    # the code itself is untouched: the top is segno's image of the URL, pixel for pixel
    want = io.BytesIO()
    segno.make(url, error="m", micro=False).save(want, kind="png", scale=8, border=4)
    top = captioned.crop((0, 0, bare.width, bare.height))
    assert top.tobytes() == Image.open(want).convert("L").tobytes()
    band = captioned.crop((0, bare.height, bare.width, captioned.height))
    assert min(band.tobytes()) < 128  # dark pixels: the text 扫描查看数字影像
    assert CAPTION == "扫描查看数字影像"
