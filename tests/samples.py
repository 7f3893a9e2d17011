"""Sample payloads from seed 002 (新疆方案) §1.2.2, as the seed prints them.

Placeholders the seed leaves in its samples are replaced by valid values, and nothing else:
``身份证号`` → a valid GB 11643 number, ``患者姓名`` → a name, the ``pdf`` placeholder text → a real
PDF, ``影像调阅URL`` → a URL. The exam sample's ``participant_dept_std_code="1411"`` and
``performer_dept_std_code="3221"`` are local codes, not STD_DEPT codes (§3.5); they are replaced
by A11 / A32.02 so that the sample passes the dictionary check, and the untouched form is kept in
``EXAM_XML_SEED_DEPTS`` to prove the check names the field.
"""

from __future__ import annotations

import base64
import copy
from datetime import date
from typing import Any

from lxml import etree

from huren.domain import idcard

ID_NO = idcard.make("650102", date(1967, 2, 1), 123)

# A minimal valid one-page PDF.
PDF_BYTES = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>endobj\n"
    b"xref\n0 4\n0000000000 65535 f \n0000000009 00000 n \n0000000052 00000 n \n0000000101 00000 n \n"
    b"trailer<</Size 4/Root 1 0 R>>\nstartxref\n164\n%%EOF\n"
)
PDF_B64 = base64.b64encode(PDF_BYTES).decode()

# §1.2.2.1 检验报告注册 strReportInfo (placeholders replaced, see module doc).
LAB_XML = f"""<?xml version="1.0" encoding="UTF-8"?>
<root>
  <labmaster>
    <item last_update_dtime="2024-03-11 09:29:00" org_code="457759922" apply_form_no=""
report_form_no="14437173" patient_id="1878" event_type="1" event_no="1878" id_no="{ID_NO}"
id_type_code="01" card_no="K55297388" retrieve_date="2024-03-11 09:29:00" class_code="A01"
class_name="生化" class_local_name="生化" report_title="常规报告" effective_dtime="2024-03-11 08:09:38"
name="张三" sex_code="1" sex_name="男性" author_id="8262" author_dtime="2024-03-11 09:29:00" author_name="黄胜"
authenticator_id="8262" authenticator_dtime="2024-03-11 09:28:59" authenticator_name="黄胜" participant_id="8106"
participant_dtime="2024-03-11 08:09:38" participant_name="白萍" participant_dept_code="1511"
participant_dept_name="保健科门诊" participant_dept_std_code="A01" participant_dept_std_name="预防保健科"
order_id="14437173" order_priority="" order_priority_name="" specimen_id="33" specimen_class_code=""
specimen_determiner_code="" specimen_determiner_name="" performer_dept_code="4300" performer_dept_name="检验科"
performer_dept_std_code="A30" performer_dept_std_name="医学检验科" performer_doctor="林平"
performer_dtime="2024-03-11 00:00:00" playing_device="BS-2000M" data_status="1" pdf="{PDF_B64}"/>
  </labmaster>
  <lab_subitem>
    <item last_update_dtime="2024-03-11 09:29:00" org_code="457759922" event_no="1878"
report_form_no="14437173" serial_no="46530132" class_code="AG" class_name="阴离子间隙"
class_local_name="阴离子间隙" result_type="PQ" result_type_descr="数值型" result_value="11.25"
result_unit="mmol/L" norm_lower_limit="" norm_upper_limit="" norm_value_notes=""
result_interpre="N" result_interpre_descr="正常" effective_dtime="2024-03-11 09:28:01"
examine_way="" recognition="0"/>
    <item last_update_dtime="2024-03-11 09:29:00" org_code="457759922" event_no="1878"
report_form_no="14437173" serial_no="46530131" class_code="250301002" class_name="白蛋白(ALB)"
class_local_name="*白蛋白(溴甲酚氯)" result_type="PQ" result_type_descr="数值型"
result_value="45.3" result_unit="g/L" norm_lower_limit="40.0000" norm_upper_limit="55.0000"
norm_value_notes="" result_interpre="N" result_interpre_descr="正常" effective_dtime="2024-03-11 09:27:58"
examine_way="" recognition="1"/>
  </lab_subitem>
</root>
"""

# §1.2.2.3 检查报告注册 strReportInfo (placeholders replaced, dept std codes fixed, see module doc).
EXAM_XML_SEED_DEPTS = f"""<?xml version="1.0" encoding="UTF-8"?>
<root>
  <exammaster>
    <item last_update_dtime="2024-05-11 08:59:33" org_code="457759922" apply_form_no="333493"
state="4" report_form_no="71468573" patient_id="1658522" event_type="1" event_no="2022208962"
patient_local_id="1658522" performer_dtime="2024-05-11 00:00:00" pacs_id="0000544534"
study_instance_uid="1.2.840.113619.2.437.3.279741441.35.1709683344.354" id_no="{ID_NO}"
Id_Type_Code="01" card_no="AD9329902" checked_status="" class_code="A01" class_name="CT"
retrieve_date="2024-05-11" report_title="CT平扫+三维重建" effective_dtime="2024-05-11 08:59:33"
confidentiality="" name="张三" sex_code="1" sex_name="男" birth_date="1967-02-01" author_id="2292"
author_dtime="2024-05-11 08:58:45" author_name="张欣悦" authenticator_id="8287"
authenticator_dtime="2024-05-11 08:58:48" authenticator_name="曹海念" participant_dept_code="1411"
participant_dept_name="耳鼻喉门诊" participant_dept_std_code="1411" participant_dept_std_name="耳鼻喉门诊"
participant_id="8401" participant_dtime="2024-05-11 08:17:22" participant_name="罗高青" order_id=""
order_priority="" order_priority_name="" performer_dept_code="3221" performer_dept_name="普通放射"
performer_dept_std_code="3221" performer_dept_std_name="普通放射" performer_doctor="陈星榕"
playing_device="CT报告" outpat_diag_name="慢性鼻炎;鼻中隔偏曲" patient_condition_descr="无" exam_purpose=""
image_descr="双上颌窦、筛窦、额窦窦腔粘膜增厚,腔内见软组织影充填,各窦腔骨壁无增厚,无扩大,未见吸收、破坏。双侧中上鼻道见软组织影堵塞,下鼻道尚通畅.鼻中隔稍右偏.鼻咽部软组织未见增厚.咽旁间隙正常.颅底骨质无破坏."
is_abnormal="0" conclusion="鼻息肉,双侧上颌窦、筛窦、额窦慢性炎症。鼻中隔稍右偏。" arrive_dtime="2024-05-11 08:17:34"
authenticator_dept_std_code="3221" authenticator_dept_std_name="普通放射" authenticator_dept_code="3221"
authenticator_dept_name="普通放射" data_status="1" pacs_url="https://pacs.example.invalid/view?study=1"
pdf="{PDF_B64}"/>
  </exammaster>
  <exam_subitem>
    <item last_update_dtime="2024-05-11 08:59:33" org_code="457759922" event_no="2022208962"
report_form_no="71468573" exam_site_code="115" body_part_name="CT平扫+三维重建"
exam_item_code="115" exam_item_name="CT平扫+三维重建" recognition="0" effective_dtime="2024-05-11 08:59:33"/>
  </exam_subitem>
</root>
"""
EXAM_XML = EXAM_XML_SEED_DEPTS.replace('participant_dept_std_code="1411"', 'participant_dept_std_code="A11"').replace(
    'performer_dept_std_code="3221"', 'performer_dept_std_code="A32.02"'
)

# §1.2.2.5 检查检验日报上传 strReportInfo.
DAILY_XML = """<?xml version="1.0" encoding="UTF-8"?>
<root >
  <lab_exam_report>
    <item last_update_dtime="2024-05-30 03:00:07" org_code="457759922" date_t="2024-05-29"
dept_code="1190000" dept_name="内镜中心" dept_std_code="A03" dept_std_name="内科" lab_num="0"
exam_num="74"/>
    <item last_update_dtime="2024-05-30 03:00:07" org_code="457759922" date_t="2024-05-29"
dept_code="1180000" dept_name="超声室" dept_std_code="A32.05" dept_std_name="超声诊断专业"
lab_num="0" exam_num="490"/>
  </lab_exam_report>
</root>
"""


def xml_to_payload(xml: str) -> dict[str, Any]:
    """The REST form of a seed XML sample: each node → its items' attributes (master: one object)."""
    root = etree.fromstring(xml.encode(), etree.XMLParser(resolve_entities=False, no_network=True))
    out: dict[str, Any] = {}
    for node in root:
        items = [dict(item.attrib) for item in node]
        out[node.tag] = items[0] if node.tag.endswith("master") else items
    return out


def lab() -> dict[str, Any]:
    return copy.deepcopy(_LAB)


def exam() -> dict[str, Any]:
    return copy.deepcopy(_EXAM)


def daily() -> dict[str, Any]:
    return copy.deepcopy(_DAILY)


_LAB = xml_to_payload(LAB_XML)
_EXAM = xml_to_payload(EXAM_XML)
_DAILY = xml_to_payload(DAILY_XML)
