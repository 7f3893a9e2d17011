"""REST: directory master data — departments (HZ-2), staff (HZ-3), patients (HZ-1), lab instruments
(XC-L1), lab QC records (XC-L4). ``POST /api/v1/directory/{kind}`` upserts ``{node: [row, …]}``;
``GET`` pages through the caller's own rows (a supervisor's: any institution's by ``org_code``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from huren.api.deps import Caller, Services, write
from huren.api.models import Day
from huren.api.openapi import op
from huren.api.rest_reports import json_body
from huren.context import Principal
from huren.domain.masterdata import KINDS, Kind
from huren.services.container import Container
from huren.wire.json_schema import body, node_schema

router = APIRouter(prefix="/api/v1/directory")

#: Uploads of patients, departments and staff are also HZ-20 (the hospital's upload interface).
UPLOAD_EXTRA = {"patient": ["HZ-20"], "dept": ["HZ-20"], "staff": ["HZ-20"]}

ORG = Query(None, description="机构编码（监管用户可查任意机构；不填则为本机构，监管用户为全部机构）")
LIMIT = Query(100, ge=1, le=1000, description="每页条数")
OFFSET = Query(0, ge=0, le=2**63 - 1, description="跳过的条数")


def _upload_schema(kind: Kind) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [kind.node],
        "properties": {kind.node: {"type": "array", "minItems": 1, "items": node_schema(kind.spec)}},
    }


def _upload_route(kind: Kind) -> None:
    ids = [*kind.ids, *UPLOAD_EXTRA.get(kind.node, [])]
    summary = f"上传{kind.title}目录（按 {', '.join(kind.key)} 新增或替换；任一条有误则全部不写入）"

    @router.post(f"/{kind.path}", **op(ids, summary, body(_upload_schema(kind))), name=f"upload_{kind.node}")
    async def upload(request: Request, c: Services, who: Caller) -> dict[str, Any]:
        payload, raw = await json_body(request, c, who, kind.node)
        n = await write(c, c.masterdata.upload, kind.node, payload, who, channel="rest", raw=raw)
        return {"code": "ok", "message": "ok", "rows": n}


for _kind in KINDS.values():
    _upload_route(_kind)


async def _read(c: Container, who: Principal, node: str, org_code: str | None, limit: int, offset: int, **kw: Any) -> dict[str, Any]:
    day_from = kw.pop("day_from", None)
    day_to = kw.pop("day_to", None)
    res = await run_in_threadpool(
        lambda: c.masterdata.read(
            node, who, org_code=org_code, filters=kw, day_from=day_from, day_to=day_to, limit=limit, offset=offset
        )
    )
    return {"code": "ok"} | res


def _ids(node: str) -> list[str]:
    return list(KINDS[node].ids)


@router.get("/depts", **op(_ids("dept"), "查询科室目录（本机构；监管用户可按机构）"))
async def read_depts(
    c: Services,
    who: Caller,
    org_code: str | None = ORG,
    dept_code: str | None = Query(None, description="科室编码"),
    dept_std_code: str | None = Query(None, description="标准科室编码（STD_DEPT）"),
    limit: int = LIMIT,
    offset: int = OFFSET,
) -> dict[str, Any]:
    return await _read(c, who, "dept", org_code, limit, offset, dept_code=dept_code, dept_std_code=dept_std_code)


@router.get("/staff", **op(_ids("staff"), "查询医护人员目录（本机构；监管用户可按机构）"))
async def read_staff(
    c: Services,
    who: Caller,
    org_code: str | None = ORG,
    dept_code: str | None = Query(None, description="所属科室编码"),
    limit: int = LIMIT,
    offset: int = OFFSET,
) -> dict[str, Any]:
    return await _read(c, who, "staff", org_code, limit, offset, dept_code=dept_code)


@router.get("/patients", **op(_ids("patient"), "查询患者主索引（本机构；监管用户可按机构）；每位返回的患者均记入访问日志"))
async def read_patients(
    c: Services,
    who: Caller,
    org_code: str | None = ORG,
    patient_id: str | None = Query(None, description="病人ID（院内）"),
    limit: int = LIMIT,
    offset: int = OFFSET,
) -> dict[str, Any]:
    # No filter by ID number here: ID numbers stay out of URLs and server logs.
    return await _read(c, who, "patient", org_code, limit, offset, patient_id=patient_id)


@router.get("/devices", **op(_ids("device"), "查询检验仪器目录（本机构；监管用户可按机构）"))
async def read_devices(
    c: Services,
    who: Caller,
    org_code: str | None = ORG,
    dept_code: str | None = Query(None, description="所属科室编码"),
    limit: int = LIMIT,
    offset: int = OFFSET,
) -> dict[str, Any]:
    return await _read(c, who, "device", org_code, limit, offset, dept_code=dept_code)


@router.get("/qc-records", **op(_ids("qc_record"), "查询检验质控记录（本机构；监管用户可按机构），可按日期范围、仪器、项目筛选"))
async def read_qc_records(
    c: Services,
    who: Caller,
    org_code: str | None = ORG,
    device_code: str | None = Query(None, description="仪器编码"),
    item_code: str | None = Query(None, description="质控项目编码"),
    in_control: bool | None = Query(None, description="是否在控（1/0）"),
    day_from: Day | None = Query(None, description="质控日期起（含）YYYY-MM-DD"),
    day_to: Day | None = Query(None, description="质控日期止（含）YYYY-MM-DD"),
    limit: int = LIMIT,
    offset: int = OFFSET,
) -> dict[str, Any]:
    return await _read(
        c, who, "qc_record", org_code, limit, offset,
        device_code=device_code, item_code=item_code, in_control=in_control, day_from=day_from, day_to=day_to,
    )
