"""Field tables of seed 002 §1.2.2: every field, its type, length, nullability and dictionary.

Names are spelled as in the seed's tables. Types:

* ``dt``   — DATE with time, ``YYYY-MM-DD hh24:mi:ss``
* ``date`` — DATE, ``YYYY-MM-DD`` (a full date-time is accepted and its date kept: the seed's own
  labmaster sample sends ``retrieve_date="2024-03-11 09:29:00"``)
* ``str``  — VARCHAR2(n) / CHAR(n)
* ``num``  — NUMBER(p), an integer of at most ``p`` digits
* ``b64``  — the Base64 PDF carried in the master (``pdf``)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    title: str
    kind: str  # dt | date | str | num | b64
    size: int = 0  # VARCHAR length or NUMBER precision
    required: bool = True
    dictionary: str | None = None


def _f(name: str, title: str, kind: str, size: int = 0, req: bool = True, dic: str | None = None) -> Field:
    return Field(name, title, kind, size, req, dic)


_S = 128  # VARCHAR2(128), the seed's usual length

LABMASTER: tuple[Field, ...] = (
    _f("last_update_dtime", "最后修改时间", "dt"),
    _f("org_code", "机构编码", "str", _S),
    _f("apply_form_no", "检验申请单号", "str", _S, False),
    _f("report_form_no", "检验报告单号", "str", _S),
    _f("patient_id", "病人ID", "str", _S),
    _f("event_type", "事件类型", "num", 2, dic="STD_EVENT_TYPE"),
    _f("event_no", "本地事件号", "str", _S),
    _f("id_no", "身份证件号码", "str", _S),
    _f("id_type_code", "身份证件类别代码", "str", 2, dic="STD_ID_TYPE"),
    _f("card_no", "卡号", "str", _S, False),
    _f("retrieve_date", "归档检索日期", "date"),
    _f("class_code", "检验报告分类LOINC编码", "str", _S),
    _f("class_name", "检验报告分类标准名称", "str", _S),
    _f("class_local_name", "检验报告分类本地名称", "str", _S),
    _f("report_title", "报告的标题", "str", 256),
    _f("effective_dtime", "文档创建时间", "dt", req=False),
    _f("name", "病人的姓名", "str", _S),
    _f("sex_code", "病人性别编码", "str", _S, dic="STD_SEX"),
    _f("sex_name", "病人性别", "str", _S),
    _f("author_id", "报告作者编号", "str", _S),
    _f("author_dtime", "报告作者生成时间", "dt"),
    _f("author_name", "报告作者姓名", "str", _S),
    _f("authenticator_id", "审核者编号", "str", _S),
    _f("authenticator_dtime", "审核者审核时间", "dt"),
    _f("authenticator_name", "审核者姓名", "str", _S),
    _f("participant_id", "申请医生编号", "str", _S),
    _f("participant_dtime", "申请医生申请时间", "dt"),
    _f("participant_name", "申请医生姓名", "str", _S),
    _f("participant_dept_code", "申请医生科室编码", "str", _S),
    _f("participant_dept_name", "申请医生申请科室名称", "str", _S),
    _f("participant_dept_std_code", "申请医生标准科室编码", "str", _S, dic="STD_DEPT"),
    _f("participant_dept_std_name", "申请医生标准科室名称", "str", _S),
    _f("order_id", "医嘱号", "str", _S, False),
    _f("order_priority", "医嘱优先级", "str", _S, False, "STD_PRIORITY"),
    _f("order_priority_name", "医嘱优先级名称", "str", _S, False),
    _f("specimen_id", "标本编号", "str", _S, False),
    _f("specimen_class_code", "标本类型", "str", _S, False),
    _f("specimen_determiner_code", "标本采集部位", "str", _S, False, "STD_SPECIMEN_DETERMINER"),
    _f("specimen_determiner_name", "标本采集部位描述", "str", _S, False),
    _f("performer_dept_code", "检验执行科室编码", "str", _S),
    _f("performer_dept_name", "检验执行科室名称", "str", _S),
    _f("performer_dept_std_code", "检验执行标准科室编码", "str", _S, dic="STD_DEPT"),
    _f("performer_dept_std_name", "检验执行标准科室名称", "str", _S),
    _f("performer_doctor", "检验执行医生", "str", _S),
    _f("performer_dtime", "检验执行时间", "dt"),
    _f("playing_device", "检验设备名称", "str", _S, False),
    _f("data_status", "数据状态", "num", 1),
)

LAB_SUBITEM: tuple[Field, ...] = (
    _f("last_update_dtime", "最后修改时间", "dt"),
    _f("org_code", "机构编码", "str", _S),
    _f("event_no", "本地事件号", "str", _S),
    _f("report_form_no", "所属报告单号", "str", _S),
    # NUMBER(4) in the table, but the seed's own sample sends serial_no="46530132": 10 digits allowed.
    _f("serial_no", "子项序号", "num", 10),
    _f("class_code", "子项LOINC标准编码", "str", _S),
    _f("class_name", "子项LOINC标准名称", "str", _S),
    _f("class_local_name", "子项本地名称", "str", _S),
    _f("result_type", "结果类型", "str", _S, dic="STD_OBSERVATION_TYPE"),
    _f("result_type_descr", "结果类型描述", "str", _S),
    _f("result_value", "结果值", "str", _S),
    _f("result_unit", "单位", "str", _S, False),
    _f("norm_lower_limit", "正常参考值下限", "str", _S, False),
    _f("norm_upper_limit", "正常参考值上限", "str", _S, False),
    _f("norm_value_notes", "参考值备注", "str", 4000, False),
    _f("result_interpre", "结果值的解释", "str", _S, dic="STD_OBSERVATION_INTERPRET"),
    _f("result_interpre_descr", "结果值的解释描述", "str", _S, False),
    _f("effective_dtime", "该节点的创建时间", "dt"),
    _f("examine_way", "检验方法描述", "str", 512, False),
    _f("recognition", "可互认标识", "num", 2, dic="STD_LAB_EXAM_RECOGNITION"),
)

EXAMMASTER: tuple[Field, ...] = (
    _f("last_update_dtime", "最后修改时间", "dt"),
    _f("org_code", "机构编码", "str", _S),
    _f("apply_form_no", "检查申请单号", "str", _S, False),
    _f("state", "检查状态", "str", 10, False, "EXAM_STATE"),
    _f("report_form_no", "检查报告单号", "str", _S),
    _f("patient_id", "病人ID", "str", _S),
    _f("event_type", "事件类型", "num", 2, dic="STD_EVENT_TYPE"),
    _f("event_no", "本地事件号", "str", _S),
    _f("patient_local_id", "院内患者编号", "str", _S, False),
    _f("performer_dtime", "检查执行时间", "dt"),
    _f("pacs_id", "检查号", "str", _S),
    _f("study_instance_uid", "检查实例UID", "str", 512),
    _f("id_no", "身份证件号码", "str", _S),
    _f("id_type_code", "身份证件类别代码", "str", 2, dic="STD_ID_TYPE"),
    _f("card_no", "卡号", "str", _S, False),
    _f("checked_status", "是否审核", "str", 1, False, "CHECKED_STATUS"),
    _f("class_code", "检查分类编码", "str", _S),
    _f("class_name", "检查分类名称", "str", _S),
    _f("retrieve_date", "归档检索日期", "date"),
    _f("report_title", "报告的标题", "str", 256),
    _f("effective_dtime", "文档创建时间", "dt", req=False),
    _f("confidentiality", "保密级别", "str", _S, False),
    _f("name", "病人的姓名", "str", _S),
    _f("sex_code", "病人性别编码", "str", _S, dic="STD_SEX"),
    _f("sex_name", "病人性别", "str", _S),
    _f("birth_date", "病人出生日期", "date"),
    _f("author_id", "报告者编号", "str", _S),
    _f("author_dtime", "报告生成时间", "dt"),
    _f("author_name", "报告者姓名", "str", _S),
    _f("authenticator_id", "审核者编号", "str", _S),
    _f("authenticator_dtime", "审核者审核时间", "dt"),
    _f("authenticator_name", "审核者姓名", "str", _S),
    _f("authenticator_dept_code", "审核者科室编码", "str", _S),
    _f("authenticator_dept_name", "审核者科室名称", "str", _S),
    _f("authenticator_dept_std_code", "审核者标准科室编码", "str", _S),
    _f("authenticator_dept_std_name", "审核者标准科室名称", "str", _S),
    _f("participant_dept_code", "申请医生申请科室编码", "str", _S),
    _f("participant_dept_name", "申请医生申请科室名称", "str", _S),
    _f("participant_dept_std_code", "申请医生标准科室编码", "str", _S, dic="STD_DEPT"),
    _f("participant_dept_std_name", "申请医生标准科室名称", "str", _S),
    _f("participant_id", "申请医生编号", "str", _S),
    _f("participant_dtime", "申请医生申请时间", "dt"),
    _f("participant_name", "申请医生姓名", "str", _S),
    _f("order_id", "医嘱号", "str", _S, False),
    _f("order_priority", "医嘱优先级", "str", _S, False, "STD_PRIORITY"),
    _f("order_priority_name", "医嘱优先级名称", "str", _S, False),
    _f("performer_dept_code", "检查执行科室", "str", _S),
    _f("performer_dept_name", "检查执行科室名称", "str", _S),
    _f("performer_dept_std_code", "检查执行标准科室编码", "str", _S, dic="STD_DEPT"),
    _f("performer_dept_std_name", "检查执行标准科室名称", "str", _S),
    _f("performer_doctor", "检查执行医生", "str", _S),
    _f("playing_device", "检查设备名称", "str", _S, False),
    _f("outpat_diag_name", "临床诊断", "str", 4000),
    _f("patient_condition_desc", "病情描述", "str", 4000),
    _f("exam_purpose", "检查目的", "str", 4000, False),
    _f("image_descr", "影像所见", "str", 4000),
    _f("is_abnormal", "是否异常", "str", _S, dic="IS_ABNORMAL"),
    _f("conclusion", "影像结论", "str", 4000),
    _f("arrive_dtime", "到检时间", "dt"),
    _f("data_status", "数据状态", "num", 1),
    _f("pacs_url", "影像调阅地址", "str", 512),
)

EXAM_SUBITEM: tuple[Field, ...] = (
    _f("last_update_dtime", "最后修改时间", "dt"),
    _f("org_code", "机构编码", "str", _S),
    _f("event_no", "本地事件号", "str", _S),
    _f("report_form_no", "所属报告单号", "str", _S),
    _f("exam_site_code", "检查部位编码", "str", _S),
    _f("body_part_name", "检查部位名称", "str", _S),
    _f("exam_item_code", "检查项目标准编码", "str", _S),
    _f("exam_item_name", "检查项目标准名称", "str", _S),
    _f("effective_dtime", "该项目的创建时间", "dt"),
    _f("recognition", "可互认标识", "num", 2, dic="STD_LAB_EXAM_RECOGNITION"),
)

LAB_EXAM_REPORT: tuple[Field, ...] = (
    _f("last_update_dtime", "最后修改时间", "dt"),
    _f("org_code", "机构编码", "str", _S),
    _f("date_t", "审核上报日期", "date"),
    _f("dept_code", "科室编码", "str", _S),
    _f("dept_name", "科室名称", "str", _S),
    _f("dept_std_code", "标准科室编码", "str", _S, dic="STD_DEPT"),
    _f("dept_std_name", "标准科室名称", "str", _S),
    _f("lab_num", "检验数量", "num", 4),
    _f("exam_num", "检查数量", "num", 4),
)

#: Void filter of DeleteLabInfo / DeleteExamInfo (seed 002 §1.2.2.2 / §1.2.2.4).
VOID_FILTER: tuple[Field, ...] = (
    _f("org_code", "机构编码", "str", _S),
    _f("report_form_no", "报告单号", "str", _S),
    _f("patient_id", "病人ID", "str", _S),
    _f("event_type", "事件类型", "num", 2, dic="STD_EVENT_TYPE"),
    _f("event_no", "事件号", "str", _S),
    _f("id_no", "身份证号", "str", _S),
    _f("id_type", "身份证件类别", "str", 2, dic="STD_ID_TYPE"),
)

#: The PDF carried in a master node: the table lists it as not nullable, but it may also be
#: uploaded on its own afterwards, so it is optional here.
PDF = _f("pdf", "报告单据PDF", "b64", 0, False)

#: Other spellings seen in the seed's samples → the table's spelling.
ALIASES = {
    "patient_condition_descr": "patient_condition_desc",  # §1.2.2.3 sample vs table
}

#: Primary keys (seed 002 §1.2.2).
LAB_KEY = ("org_code", "report_form_no", "patient_id", "event_type", "event_no")
EXAM_KEY = LAB_KEY
DAILY_KEY = ("org_code", "date_t", "dept_code")

#: 互认结果表 sehr_accept_record (seed 002 §1.3.2.5 / §1.4.2.3).
SEHR_ACCEPT_RECORD: tuple[Field, ...] = (
    _f("new_event_no", "本次就诊事件号", "str", _S),
    _f("new_event_type", "本次就诊事件类型", "str", 1, dic="STD_EVENT_TYPE"),
    _f("hr_org_code", "互认报告机构编码", "str", _S),
    _f("hr_report_form_no", "互认报告单号", "str", _S),
    _f("code", "互认项目标准编码", "str", 256),
    _f("id_no", "身份证件号码", "str", _S),
    _f("id_type_code", "身份证件类别代码", "str", 2, dic="STD_ID_TYPE"),
    _f("is_accept", "是否采纳", "str", 1, dic="IS_ACCEPT"),
    # VARCHAR2(1) in the table, but reason 10 (§3.13) has two characters: 2 allowed.
    _f("reason", "不互认理由编码", "str", 2, False, "REJECT_REASON"),
    _f("record_time", "记录时间", "dt"),
    _f("type", "类型", "str", 1, dic="RECORD_TYPE"),
    _f("dept_code", "本次就诊科室编码", "str", _S),
    _f("dept_name", "本次就诊科室名称", "str", _S),
    _f("dept_std_code", "标准科室编码", "str", _S, dic="STD_DEPT"),
    _f("dept_std_name", "标准科室名称", "str", _S),
    _f("doc_code", "本次就诊医生编码", "str", _S),
    _f("doc_name", "本次就诊医生名称", "str", _S),
)

#: 引用结果表 sehr_quote_record (seed 002 §1.3.2.6 / §1.4.2.6): the accept table less is_accept/reason.
SEHR_QUOTE_RECORD: tuple[Field, ...] = tuple(f for f in SEHR_ACCEPT_RECORD if f.name not in ("is_accept", "reason"))

#: Reminder / view records uploaded by hospitals (XC-P4 提醒和调阅记录上传); the seeds name the
#: function but not its fields, so these follow the accept record's naming.
REMINDER_LOG: tuple[Field, ...] = (
    _f("action", "记录类型", "str", 16, dic="LOG_ACTION"),
    _f("at", "发生时间", "dt"),
    _f("id_no", "身份证件号码", "str", _S),
    _f("id_type_code", "身份证件类别代码", "str", 2, dic="STD_ID_TYPE"),
    _f("event_no", "本次就诊事件号", "str", _S, False),
    _f("dept_code", "科室编码", "str", _S, False),
    _f("dept_std_code", "标准科室编码", "str", _S, False, "STD_DEPT"),
    _f("doc_code", "医生编码", "str", _S, False),
    _f("doc_name", "医生姓名", "str", _S, False),
    _f("item_codes", "涉及项目标准编码（逗号分隔）", "str", 4000, False),
    _f("ordered", "所开项目数", "num", 4, False),
    _f("recognizable", "可互认项目数", "num", 4, False),
    _f("hr_org_code", "被调阅报告机构编码", "str", _S, False),
    _f("hr_report_form_no", "被调阅报告单号", "str", _S, False),
    _f("type", "类型", "str", 1, False, "RECORD_TYPE"),
)
