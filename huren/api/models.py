"""Request bodies shared by the platform's REST API and the gateway's local API: a patient
question (with the doctor's visit, kept in the reminder log) and an order to check."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from huren.domain.recognition import Visit


class Patient(BaseModel):
    id_type_code: str = Field("01", description="身份证件类别代码（STD_ID_TYPE）", max_length=2)
    id_no: str = Field(..., description="身份证件号码", min_length=1, max_length=128)
    days: Literal[30, 90] = Field(90, description="近期时间窗：30 或 90 天")
    event_no: str = Field("", description="本次就诊事件号（门诊/住院流水号），可空", max_length=128)
    dept_code: str = Field("", description="院内科室编码", max_length=128)
    dept_name: str = Field("", description="院内科室名称", max_length=128)
    dept_std_code: str = Field("", description="标准科室编码", max_length=128)
    dept_std_name: str = Field("", description="标准科室名称", max_length=128)
    doc_code: str = Field("", description="医生编码", max_length=128)
    doc_name: str = Field("", description="医生姓名", max_length=128)

    def visit(self) -> Visit:
        return Visit(
            self.event_no, self.dept_code, self.dept_name, self.dept_std_code, self.dept_std_name, self.doc_code, self.doc_name
        )


class Order(Patient):
    check: list[str] = Field(default_factory=list, description="所开检查项目编码（exam_item_code，标准或本院编码）", max_length=200)
    lab: list[str] = Field(default_factory=list, description="所开检验子项编码（class_code，标准或本院编码）", max_length=200)
    org_code: str | None = Field(None, description="只看某机构的结果（精准互认查询，HZ-15）")
    since: datetime | None = Field(None, description="结果时间不早于（HZ-15）")
    until: datetime | None = Field(None, description="结果时间早于（HZ-15）")
