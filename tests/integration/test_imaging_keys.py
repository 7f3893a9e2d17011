"""Image keys (XC-E7…E11, YB-4.3) and deletion notices (YB-4.5) on SQLite and PostgreSQL (issue 12)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import select

from huren.context import Clock, Principal
from huren.errors import Forbidden, InvalidInput, LinkExpired, NotFound, Unauthorized
from huren.services.container import Container
from huren.store.tables import access_log, image_deletion, image_key
from tests.conftest import ORG_A, ORG_B
from tests.integration.test_imaging_store import A, make

HIS_A = Principal(ORG_A[0], "his", "hospital")
DOC_B = Principal(ORG_B[0], "doc", "doctor")
HIS_B = Principal(ORG_B[0], "lis", "hospital")


def actions(c: Container) -> list[str]:
    with c.db.read() as conn:
        return [r.action for r in conn.execute(select(access_log.c.action).where(access_log.c.action.like("image_key.%")))]


def test_viewer_key_issue_verify_use_revoke(container: Container, tmp_path: Path) -> None:
    img = container.imaging_keys
    p, ds = make(tmp_path)
    container.imaging.store_instance(A, p)
    uid = ds.StudyInstanceUID
    issued = img.issue_key(DOC_B, "viewer", uid)
    assert len(issued.key) == 22 and issued.kind == "viewer"
    with container.db.read() as conn:
        row = conn.execute(select(image_key)).mappings().one()
    assert row["key_sha256"] == hashlib.sha256(issued.key.encode()).hexdigest() and issued.key not in str(dict(row))
    check = img.verify_key(issued.key, "viewer", verifier=HIS_A)
    assert check.valid and check.study_uid == uid and check.viewer_org == ORG_B[0] and check.grant is not None
    assert not img.verify_key(issued.key, "download", verifier=HIS_A).valid
    assert img.verify_key(issued.key, "download").reason == "类型不符"
    assert img.verify_key("A" * 22).reason == "不存在"
    assert not img.verify_key(issued.key, "viewer", verifier=HIS_B).valid  # not B's study to verify
    grant = img.grant(issued.key, ("viewer",))
    f = container.imaging.instance(grant, uid, None, ds.SOPInstanceUID)
    assert b"".join(f.chunks()) == p.read_bytes()
    with pytest.raises(Forbidden):
        img.grant(issued.key, ("download",))
    with pytest.raises(Unauthorized):
        img.grant("", ("viewer",))
    with pytest.raises(Unauthorized):
        img.grant("x" * 22, ("viewer",))
    [listed] = img.list_keys(HIS_A, uid)
    assert listed["state"] == "valid" and listed["uses"] == 1 and "key" not in listed
    with pytest.raises(NotFound):
        img.revoke_key(Principal("650100000", "admin", "admin"), issued.key_id)
    img.revoke_key(DOC_B, issued.key)
    assert img.verify_key(issued.key, "viewer", verifier=HIS_A).reason == "已撤销"
    with pytest.raises(Forbidden):
        img.grant(issued.key, ("viewer",))
    with pytest.raises(NotFound):
        container.imaging.instance(img.grant(img.issue_key(DOC_B, "viewer", uid).key, ("viewer",)), uid, None, "1.2.3")
    assert {"image_key.issue", "image_key.verify", "image_key.use", "image_key.revoke"} <= set(actions(container))


def test_keys_expire_and_film_is_the_study_s_own(container: Container, tmp_path: Path) -> None:
    clock = Clock()
    container.imaging._clock = clock
    img = container.imaging
    p, ds = make(tmp_path, accession="ACC-9")
    img.store_instance(A, p)
    with pytest.raises(Forbidden):
        img.issue_key(DOC_B, "film", ds.StudyInstanceUID)
    film = img.film_key(HIS_A, ORG_A[0], "ACC-9", "CT")
    assert img.film_url(film).endswith(f"/film/{film.key}")
    with pytest.raises(NotFound):
        img.film_key(HIS_A, ORG_A[0], "ACC-9", "MR")
    with pytest.raises(Forbidden):
        img.film_key(HIS_B, ORG_A[0], "ACC-9")
    dl = img.issue_key(DOC_B, "download", ds.StudyInstanceUID, ttl_seconds=60)
    tree = img.uid_tree(img.grant(dl.key, ("download",)))
    assert tree["series"][0]["sop_instance_uids"] == [ds.SOPInstanceUID]
    clock.offset = 120
    with pytest.raises(LinkExpired):
        img.grant(dl.key, ("download",))
    assert img.verify_key(dl.key, verifier=HIS_A).reason == "已过期"
    assert img.grant(film.key, ("film",)).study_uid == ds.StudyInstanceUID
    with pytest.raises(InvalidInput):
        img.issue_key(DOC_B, "viewer", ds.StudyInstanceUID, ttl_seconds=10**9)


def test_deletion_notice_hides_everything(container: Container, tmp_path: Path) -> None:
    img = container.imaging
    p, ds = make(tmp_path, name="王五", accession="DEL-1")
    img.store_instance(A, p)
    key = img.issue_key(DOC_B, "viewer", ds.StudyInstanceUID)
    with pytest.raises(Forbidden):
        img.delete_notice(HIS_B, hospitalId=ORG_A[0], accessionNo="DEL-1", patientName="王五")
    with pytest.raises(InvalidInput):
        img.delete_notice(HIS_A, hospitalId=ORG_A[0], accessionNo="DEL-1", patientName="李四")
    with pytest.raises(InvalidInput):
        img.delete_notice(HIS_A, hospitalId=ORG_A[0], accessionNo="")
    n = img.delete_notice(
        HIS_A, hospitalId=ORG_A[0], accessionNo="DEL-1", patientName="王五", operateDoctorName="赵医生",
        operateDateTime="2026-12-01 10:00:00",
    )
    assert n == 1
    assert img.find_studies(DOC_B, {"AccessionNumber": "DEL-1"}) == []
    for call in (
        lambda: img.instance(DOC_B, ds.StudyInstanceUID, None, ds.SOPInstanceUID),
        lambda: img.metadata(DOC_B, ds.StudyInstanceUID),
        lambda: img.instances_of(img.grant(key.key, ("viewer",)), ds.StudyInstanceUID),
    ):
        with pytest.raises(NotFound):
            call()
    assert not img.verify_key(key.key, verifier=HIS_A).valid
    assert img.delete_notice(HIS_A, hospitalId=ORG_A[0], accessionNo="DEL-1") == 0
    with container.db.read() as conn:
        rows = conn.execute(select(image_deletion).order_by(image_deletion.c.id)).mappings().all()
    assert [r["instances"] for r in rows] == [1, 0] and str(rows[0]["patient_name"]).startswith("enc1:")
    assert rows[0]["study_uids"] == ds.StudyInstanceUID and rows[0]["operate_doctor_name"] == "赵医生"
    assert container.blobs.exists(hashlib.sha256(p.read_bytes()).hexdigest())  # marked, not erased


def test_a_study_pushed_again_after_deletion_is_shown_again(container: Container, tmp_path: Path) -> None:
    img = container.imaging
    p1, ds = make(tmp_path, accession="DEL-2")
    p2, _ = make(tmp_path, study=ds.StudyInstanceUID, accession="DEL-2")
    img.store_instance(A, p1)
    img.store_instance(A, p2)
    assert img.delete_notice(HIS_A, hospitalId=ORG_A[0], accessionNo="DEL-2") == 2
    assert img.find_studies(DOC_B, {"AccessionNumber": "DEL-2"}) == []
    assert not img.store_instance(A, p1).duplicate  # the PACS sends it again
    [study] = img.find_studies(DOC_B, {"AccessionNumber": "DEL-2"})
    assert study["00201208"]["Value"] == [1] and study["00201206"]["Value"] == [1]
    assert [f.sop_uid for f in img.instances_of(DOC_B, ds.StudyInstanceUID)] == [ds.SOPInstanceUID]
