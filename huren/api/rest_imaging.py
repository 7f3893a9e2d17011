"""REST: imaging keys and addresses (XC-E7 … XC-E11), the gateway's study commit (BJ-1.1,
XJ-2.3.1), cloud-film links (YB-4.3), image deletion notices (YB-4.5) and a patient's exams with
images elsewhere (YB-4.4.3.2).

Seed 000 gives these functions no wire format; this module defines it (``docs/imaging.md``).
Every answer is ``{"code": "ok", …}``, every refusal the project's error body. A key is 22
characters of URL-safe Base64 (128 random bits); the platform keeps only its SHA-256, so a key
can be verified, expires and can be revoked, and every use is in the access log
(``huren.services.imaging``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import Field, model_validator
from starlette.concurrency import run_in_threadpool

from huren.api.deps import Caller, Services
from huren.api.models import Body
from huren.api.openapi import op
from huren.domain.imaging import UID_MAX, check_uid
from huren.domain.validation import check_identity
from huren.errors import InvalidInput, Problem
from huren.services.imaging_types import KeyCheck, not_found

router = APIRouter(prefix="/api/v1/imaging")

KEY_MAX = 64  # a key is 22 characters; anything much longer is refused before a lookup


class ExamRef(Body):
    """The exam whose images are wanted: its study, or the exam report that names the study."""

    study_instance_uid: str | None = Field(None, description="检查 UID（StudyInstanceUID，与 exammaster.study_instance_uid 一致）", max_length=UID_MAX)
    org_code: str | None = Field(None, description="被调阅机构的组织机构代码（与 report_form_no 一起指定检查报告）", max_length=64)
    report_form_no: str | None = Field(None, description="检查报告单号", max_length=64)

    @model_validator(mode="after")
    def _one(self) -> ExamRef:
        if not self.study_instance_uid and not (self.org_code and self.report_form_no):
            raise ValueError("须给出 study_instance_uid，或 org_code 与 report_form_no")
        return self


class KeyBody(Body):
    key: str = Field(..., description="调阅或下载密钥", min_length=1, max_length=KEY_MAX)


class ViewerKeyBody(Body):
    viewerKey: str = Field(..., description="影像调阅 viewerKey", min_length=1, max_length=KEY_MAX)


class DownloadKeyBody(Body):
    downloadKey: str = Field(..., description="影像下载 downloadKey", min_length=1, max_length=KEY_MAX)


class CommitInstance(Body):
    SOPInstanceUID: str = Field(..., description="图像 UID（SOPInstanceUID）", min_length=1, max_length=UID_MAX)
    sha256: str | None = Field(None, description="该实例文件的 SHA-256（十六进制小写）", pattern="^[0-9a-f]{64}$")


class CommitBody(Body):
    instances: list[CommitInstance] = Field(..., description="本检查应有的全部实例（前置机确认推送完整）", min_length=1, max_length=100_000)


class FilmBody(Body):
    accessNumber: str = Field(..., description="检查编号（AccessionNumber）", min_length=1, max_length=64)
    modality: str = Field(..., description="检查模式（Modality，按检查模式字典）", min_length=1, max_length=16)
    hospitalId: str = Field(..., description="医保医疗机构代码（须为当前登录机构）", min_length=1, max_length=64)


class DeletionBody(Body):
    patientName: str = Field(..., description="患者姓名", min_length=1, max_length=128)
    accessionNo: str = Field(..., description="检查号", min_length=1, max_length=64)
    hospitalId: str = Field(..., description="医保医疗机构ID", min_length=1, max_length=64)
    operateDoctorName: str = Field(..., description="操作医生姓名", min_length=1, max_length=128)
    operateDateTime: datetime = Field(..., description="操作时间")


def _study(c: Services, who: Caller, ref: ExamRef) -> str:
    """The study an exam reference names (NotFound, as for a study the caller may not see)."""
    if ref.study_instance_uid:
        check_uid(ref.study_instance_uid, "study_instance_uid")
        return ref.study_instance_uid
    assert ref.org_code and ref.report_form_no
    uid = c.imaging.study_for_exam(who, ref.org_code, ref.report_form_no)
    if uid is None:
        raise not_found()
    return uid


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _check(check: KeyCheck) -> dict[str, Any]:
    return {
        "code": "ok",
        "valid": check.valid,
        "reason": check.reason,
        "viewer_org_code": check.viewer_org,
        "study_instance_uid": check.study_uid,
        "expires_at": _iso(check.grant.expires_at) if check.grant else None,
        "exam": check.exam,
    }


@router.post("/viewer-key", **op(["XC-E7"], "获取影像调阅 viewerKey（调阅机构调用，调阅他院检查影像前）"))
async def viewer_key(ref: ExamRef, c: Services, who: Caller) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        issued = c.imaging.issue_key(who, "viewer", _study(c, who, ref))
        return {
            "code": "ok",
            "viewerKey": issued.key,
            "study_instance_uid": issued.study_uid,
            "expires_at": _iso(issued.expires_at),
            "viewer_url": c.imaging.viewer_url(issued),
        }

    return await run_in_threadpool(run)


@router.post("/viewer-key/verify", **op(["XC-E8"], "校验 viewerKey（被调阅机构调用：有效则允许调阅，无效则拒绝并说明原因）"))
async def verify_viewer_key(body: ViewerKeyBody, c: Services, who: Caller) -> dict[str, Any]:
    return _check(await run_in_threadpool(lambda: c.imaging.verify_key(body.viewerKey, "viewer", verifier=who)))


@router.post("/download-address", **op(["XC-E9"], "获取影像 UID 查询地址、WADO-URI 下载地址与 downloadKey"))
async def download_address(ref: ExamRef, c: Services, who: Caller) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        issued = c.imaging.issue_key(who, "download", _study(c, who, ref))
        base = c.settings.public_base
        return {
            "code": "ok",
            "study_instance_uid": issued.study_uid,
            "uid_query_url": f"{base}/api/v1/imaging/uids",
            "wado_uri_url": f"{base}/wado",
            "downloadKey": issued.key,
            "expires_at": _iso(issued.expires_at),
        }

    return await run_in_threadpool(run)


@router.get("/uids", **op(["XC-E10"], "按 downloadKey 查询检查 UID、序列 UID 与图像 UID"))
async def uids(c: Services, downloadKey: str = Query(..., min_length=1, max_length=KEY_MAX, description="downloadKey")) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        tree = c.imaging.uid_tree(c.imaging.grant(downloadKey, ("download",)))
        return {"code": "ok", **tree}

    return await run_in_threadpool(run)


@router.post("/download-key/verify", **op(["XC-E11"], "校验 downloadKey（持有影像的一方在下载前调用）"))
async def verify_download_key(body: DownloadKeyBody, c: Services, who: Caller) -> dict[str, Any]:
    return _check(await run_in_threadpool(lambda: c.imaging.verify_key(body.downloadKey, "download", verifier=who)))


@router.post("/keys/revoke", **op(["XC-E7", "XC-E9", "YB-4.3"], "撤销调阅、下载或云胶片密钥"))
async def revoke(body: KeyBody, c: Services, who: Caller) -> dict[str, Any]:
    await run_in_threadpool(lambda: c.imaging.revoke_key(who, body.key))
    return {"code": "ok"}


@router.get("/studies/{study_uid}/keys", **op(["XC-E7", "XC-E9", "YB-4.3"], "列出某检查已签发的密钥（不含密钥本身）"))
async def keys(study_uid: str, c: Services, who: Caller) -> dict[str, Any]:
    check_uid(study_uid, "study_uid")
    rows = await run_in_threadpool(lambda: c.imaging.list_keys(who, study_uid))
    return {"code": "ok", "count": len(rows), "keys": rows}


@router.post("/studies/{study_uid}/commit", **op(["BJ-1.1", "XJ-2.3.1"], "前置机确认检查影像推送完整（逐实例 SHA-256），检查成为完整检查"))
async def commit(study_uid: str, body: CommitBody, c: Services, who: Caller) -> dict[str, Any]:
    check_uid(study_uid, "study_uid")
    problems: list[Problem] = []
    for i, inst in enumerate(body.instances):
        check_uid(inst.SOPInstanceUID, f"instances[{i}].SOPInstanceUID", problems)
    if problems:
        raise InvalidInput("实例 UID 无效", problems)

    def run() -> dict[str, Any]:
        sender = c.imaging.sender_for(who, "gateway")
        got = c.imaging.commit_study(sender, study_uid, [(i.SOPInstanceUID, i.sha256) for i in body.instances])
        return {
            "code": "ok",
            "study_instance_uid": got.study_uid,
            "state": got.state,
            "committed": got.committed,
            "failed": [{"SOPInstanceUID": sop, "reason": reason} for sop, reason in got.failed],
        }

    return await run_in_threadpool(run)


@router.post("/film-url", **op(["YB-4.3"], "为本院检查生成患者云胶片地址（报告单二维码的内容）"))
async def film_url(body: FilmBody, c: Services, who: Caller) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        issued = c.imaging.film_key(who, body.hospitalId, body.accessNumber, body.modality)
        return {"code": "ok", "url": c.imaging.film_url(issued), "key": issued.key, "expires_at": _iso(issued.expires_at)}

    return await run_in_threadpool(run)


@router.post("/deletions", **op(["YB-4.5"], "影像删除通知：PACS 删除图像后通知平台，平台标记删除并不再提供"))
async def deletion(body: DeletionBody, c: Services, who: Caller) -> dict[str, Any]:
    hidden = await run_in_threadpool(
        lambda: c.imaging.delete_notice(
            who, hospitalId=body.hospitalId, accessionNo=body.accessionNo, patientName=body.patientName,
            operateDoctorName=body.operateDoctorName, operateDateTime=body.operateDateTime.strftime("%Y-%m-%d %H:%M:%S"),
        )
    )
    return {"code": "ok", "hidden": hidden}


class PatientBody(Body):
    id_type_code: str = Field("01", description="身份证件类别代码（STD_ID_TYPE）", max_length=2)
    id_no: str = Field(..., description="身份证件号码", min_length=1, max_length=128)


@router.post("/patient-exams", **op(["YB-4.4.3.2"], "患者在其他机构有影像的检查（调阅插件气泡提醒）"))
async def patient_exams(body: PatientBody, c: Services, who: Caller) -> dict[str, Any]:
    problems: list[Problem] = []
    check_identity(body.id_type_code, body.id_no, "id_no", problems)
    if problems:
        raise InvalidInput("身份证件号码无效", problems)
    rows = await run_in_threadpool(lambda: c.imaging.patient_exams(who, body.id_type_code, body.id_no))
    return {"code": "ok", "count": len(rows), "exams": rows}
