"""Request bodies shared by the platform's REST API and the gateway's local API: a patient
question (with the doctor's visit, kept in the reminder log) and an order to check; and the
parameter types every REST operation uses for identifiers, offsets and dates.

The bounds are the domain's (:mod:`huren.domain.limits`, the Visit of
:mod:`huren.domain.recognition`); the models repeat them only so that OpenAPI shows them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, Field, field_validator

from huren.domain import limits
from huren.domain.answers import MAX_CODE, MAX_ORDERED
from huren.domain.recognition import VISIT_MAX, Visit


def _text(value: Any) -> Any:
    """Every text of a body, also inside lists: no control or bidi-override character."""
    if isinstance(value, str):
        reason = limits.text_problem(value)
        if reason:
            raise ValueError(reason)
    elif isinstance(value, list):
        for v in value:
            _text(v)
    return value


def _day(value: date) -> date:
    reason = limits.day_problem(value)
    if reason:
        raise ValueError(reason)
    return value


class Body(BaseModel):
    """A JSON request body: text is text (no number or boolean turned into text, pydantic's
    strict string rule) and holds no control or bidi-override character."""

    @field_validator("*", mode="after")
    @classmethod
    def _clean(cls, value: Any) -> Any:
        return _text(value)


#: A report in a path: its opaque ref (``huren.services.refs``). Deliberately unconstrained here:
#: a ref of the wrong length or alphabet is answered 404 like every other ref naming no report,
#: never 422 (a validation error would tell a forged ref from a missing report).
REPORT_REF_DESCRIPTION = "报告标识：平台生成的不透明编号（22位字符，来自查询或注册应答的 report_id），不是顺序号"
ReportRef = Annotated[str, Path(description=REPORT_REF_DESCRIPTION)]
#: A rejected submission in a path: its opaque ref, unconstrained for the same reason.
REJECTED_REF_DESCRIPTION = "被拒提交标识：平台生成的不透明编号（22位字符，来自拒绝应答或被拒提交列表的 rejected_id / id），不是顺序号"
RejectedRef = Annotated[str, Path(description=REJECTED_REF_DESCRIPTION)]
#: Rows skipped by a list: 0 … 2^63−1.
Offset = Annotated[int, Query(ge=0, le=limits.MAX_INT, description="跳过的条数")]
#: A calendar day within the domain's bounds (1900-01-01 … 2099-12-31).
Day = Annotated[date, AfterValidator(_day)]
#: A time within the same bounds.
Moment = Annotated[datetime, AfterValidator(_day)]


class Patient(Body):
    id_type_code: str = Field("01", description="身份证件类别代码（STD_ID_TYPE）", max_length=2)
    id_no: str = Field(..., description="身份证件号码", min_length=1, max_length=128)
    days: Literal[30, 90] = Field(90, description="近期时间窗：30 或 90 天")
    event_no: str = Field("", description="本次就诊事件号（门诊/住院流水号），可空", max_length=VISIT_MAX)
    dept_code: str = Field("", description="院内科室编码", max_length=VISIT_MAX)
    dept_name: str = Field("", description="院内科室名称", max_length=VISIT_MAX)
    dept_std_code: str = Field("", description="标准科室编码", max_length=VISIT_MAX)
    dept_std_name: str = Field("", description="标准科室名称", max_length=VISIT_MAX)
    doc_code: str = Field("", description="医生编码", max_length=VISIT_MAX)
    doc_name: str = Field("", description="医生姓名", max_length=VISIT_MAX)

    def visit(self) -> Visit:
        return Visit(
            self.event_no, self.dept_code, self.dept_name, self.dept_std_code, self.dept_std_name, self.doc_code, self.doc_name
        )


class Order(Patient):
    check: list[Annotated[str, Field(max_length=MAX_CODE)]] = Field(
        default_factory=list, description="所开检查项目编码（exam_item_code，标准或本院编码）", max_length=MAX_ORDERED
    )
    lab: list[Annotated[str, Field(max_length=MAX_CODE)]] = Field(
        default_factory=list, description="所开检验子项编码（class_code，标准或本院编码）", max_length=MAX_ORDERED
    )
    org_code: str | None = Field(None, description="只看某机构的结果（精准互认查询，HZ-15）", max_length=128)
    since: Moment | None = Field(None, description="结果时间不早于（HZ-15）")
    until: Moment | None = Field(None, description="结果时间早于（HZ-15）")
