"""REST: a patient's reports across institutions and abnormal results (POST bodies keep ID
numbers out of URLs and server logs)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from huren.api.deps import Caller, Services
from huren.api.models import Body, Moment
from huren.api.openapi import op
from huren.domain.validation import check_identity
from huren.errors import InvalidInput, Problem

router = APIRouter(prefix="/api/v1/query")


class PatientQuery(Body):
    id_type_code: str = Field("01", description="身份证件类别代码（STD_ID_TYPE）", max_length=2)
    id_no: str = Field(..., description="身份证件号码", min_length=1, max_length=128)
    start: Moment | None = Field(None, description="开始时间（含），默认结束时间前90天")
    end: Moment | None = Field(None, description="结束时间（不含），默认当前时间")


def _check(q: PatientQuery) -> None:
    problems: list[Problem] = []
    check_identity(q.id_type_code, q.id_no, "id_no", problems)
    if problems:
        raise InvalidInput("身份证件号码无效", problems)


@router.post("/lab-reports", **op(["XC-L7", "BJ-1.2.1"], "按身份证件号码查询患者在各机构的检验报告"))
async def lab_reports(q: PatientQuery, c: Services, who: Caller) -> dict[str, Any]:
    _check(q)
    rows = await run_in_threadpool(lambda: c.query.patient_reports("lab", q.id_type_code, q.id_no, who, start=q.start, end=q.end))
    return {"code": "ok", "count": len(rows), "reports": rows}


@router.post("/exam-reports", **op(["XC-E4"], "按身份证件号码查询患者在各机构的检查报告"))
async def exam_reports(q: PatientQuery, c: Services, who: Caller) -> dict[str, Any]:
    _check(q)
    rows = await run_in_threadpool(lambda: c.query.patient_reports("exam", q.id_type_code, q.id_no, who, start=q.start, end=q.end))
    return {"code": "ok", "count": len(rows), "reports": rows}


@router.post("/lab-abnormal", **op(["XC-L9"], "查询患者的检验异常结果（结果解释为 H/L/P/WP 的子项）"))
async def lab_abnormal(q: PatientQuery, c: Services, who: Caller) -> dict[str, Any]:
    _check(q)
    rows = await run_in_threadpool(lambda: c.query.abnormal("lab", q.id_type_code, q.id_no, who, start=q.start, end=q.end))
    return {"code": "ok", "count": len(rows), "results": rows}


@router.post("/exam-abnormal", **op(["XC-E6"], "查询患者的检查异常结果（is_abnormal = 0 的报告）"))
async def exam_abnormal(q: PatientQuery, c: Services, who: Caller) -> dict[str, Any]:
    _check(q)
    rows = await run_in_threadpool(lambda: c.query.abnormal("exam", q.id_type_code, q.id_no, who, start=q.start, end=q.end))
    return {"code": "ok", "count": len(rows), "results": rows}
