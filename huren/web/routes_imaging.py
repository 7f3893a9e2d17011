"""The imaging pages (issue 12): the doctor's viewer (``/ui/imaging/{study_uid}``, "查看影像" from an
exam report) and the patient's cloud film (YB-4.3, ``/film/{key}``, mobile, the key in the URL is
the credential), one renderer for both: the study header, the series list with thumbnails, and a
frame area of server-rendered JPEG frames (DICOMweb ``…/frames/n/rendered``) that
``static/viewer.js`` pages through (buttons, ←/→, mouse wheel) and windows (CT presets, else the
file's own windows). Links work without the script (``?series=&i=&w=``); the script only saves
the round trip. Every image request carries a short-lived key the page issues (viewer) or the
film key itself; the service checks the access policy and logs every read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from huren.domain import access
from huren.domain import imaging as dom
from huren.errors import HurenError, NotFound, Unauthorized
from huren.web.render import TEMPLATES, Caller, caller, container, page
from huren.web.routes_doctor import call

log = logging.getLogger("huren.web.imaging")

router = APIRouter(include_in_schema=False)  # under /ui (login or token)

#: the viewer needs a viewer key for its images: who may ask for one (``image_key.issue``) may open it;
#: the service then decides which studies (``image.read``: NotFound for one the reader may not see)
VIEWER_ROLES = access.roles_for("image_key.issue")

#: CT window presets (center, width in HU); "默认" is the file's own window
CT_PRESETS: tuple[tuple[str, str, float | None, float | None], ...] = (
    ("default", "默认", None, None),
    ("lung", "肺窗", -600, 1500),
    ("mediastinum", "纵隔窗", 40, 400),
    ("bone", "骨窗", 400, 1800),
)
#: tags of the DICOM JSON model the pages read
T = {
    "PatientName": "00100010", "PatientSex": "00100040", "StudyDate": "00080020", "ModalitiesInStudy": "00080061",
    "StudyDescription": "00081030", "InstitutionName": "00080080", "SeriesInstanceUID": "0020000E", "Modality": "00080060",
    "SeriesNumber": "00200011", "SeriesDescription": "0008103E", "SOPInstanceUID": "00080018", "InstanceNumber": "00200013",
    "NumberOfFrames": "00280008", "WindowCenter": "00281050", "WindowWidth": "00281051", "WindowExplanation": "00281055",
}
SEX = {"M": "男", "F": "女", "O": "其他"}
#: instances of one series the page lists: pages of this size, at most MAX_PAGES of them
PAGE, MAX_PAGES = 10000, 5


def values(obj: Mapping[str, Any], keyword: str) -> list[str]:
    """An attribute's values in a DICOM JSON object, as text (a PN's alphabetic group)."""
    out = []
    for v in (obj.get(T[keyword]) or {}).get("Value") or []:
        if isinstance(v, dict):
            v = v.get("Alphabetic") or v.get("Ideographic") or ""
        out.append(str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
    return out


def value(obj: Mapping[str, Any], keyword: str) -> str:
    return next(iter(values(obj, keyword)), "")


def shown_name(pn: str) -> str:
    """A PN as a person reads it: Chinese names without the ``^`` separators."""
    parts = [p for p in pn.split("^") if p]
    return "".join(parts) if any(ord(c) > 0x2E7F for c in pn) else " ".join(parts)


def shown_date(da: str) -> str:
    return f"{da[:4]}-{da[4:6]}-{da[6:8]}" if len(da) == 8 and da.isdigit() else da


@dataclass(slots=True)
class Preset:
    code: str
    label: str
    center: float | None
    width: float | None

    @property
    def window(self) -> str:
        return "" if self.center is None or self.width is None else f"{self.center:g},{self.width:g}"


@dataclass(slots=True)
class SeriesView:
    uid: str
    number: str
    modality: str
    description: str
    instances: list[tuple[str, int]]  # (SOP Instance UID, number of frames), in instance order
    presets: list[Preset] = field(default_factory=list)

    @property
    def preset_data(self) -> list[list[str]]:
        """The presets for viewer.js: [code, label, "center,width" or ""]."""
        return [[p.code, p.label, p.window] for p in self.presets]

    @property
    def frames(self) -> int:
        return sum(n for _, n in self.instances)

    def frame(self, i: int) -> tuple[str, int]:
        """The ``i``-th frame of the series (0-based) as (instance, frame number from 1)."""
        for sop, n in self.instances:
            if i < n:
                return sop, i + 1
            i -= n
        return self.instances[-1][0], self.instances[-1][1]


@dataclass(slots=True)
class StudyView:
    uid: str
    patient_name: str
    patient_sex: str
    exam_date: str
    modality: str
    description: str
    source: str  # 影像来源：the institution the images come from
    series: list[SeriesView]
    exam: dict[str, Any] | None
    #: XC-E-note: the fallback platform's name when the study is shown from it ("" for a held one)
    relayed: str = ""


def _presets(modality: str, meta: Sequence[Mapping[str, Any]]) -> list[Preset]:
    """CT: the four presets; otherwise 默认 and the windows the first instance names."""
    if modality == "CT":
        return [Preset(*p) for p in CT_PRESETS]
    out = [Preset("default", "默认", None, None)]
    if meta:
        centers, widths = values(meta[0], "WindowCenter"), values(meta[0], "WindowWidth")
        names = values(meta[0], "WindowExplanation")
        for n, (c, w) in enumerate(zip(centers, widths, strict=False)):
            try:
                cf, wf = float(c), float(w)
            except ValueError:
                continue
            if wf > 0:  # named as the file names it, else by its level / width
                label = names[n][:16] if n < len(names) and names[n] else f"{cf:g}/{wf:g}"
                out.append(Preset(f"file{n + 1}", label, cf, wf))
    return out


def study_view(imaging: Any, reader: Any, study_uid: str, org_name: Callable[[str], str]) -> StudyView:
    """The study as the pages show it, from the index (the access policy and the access log are the
    service's: NotFound for a study the reader may not see)."""
    found = imaging.find_studies(reader, {"StudyInstanceUID": study_uid}, limit=1)
    if not found:
        imaging.study_state(reader, study_uid)  # NotHeld for a study not held (a fallback may show it)
        raise NotFound("未找到该检查的影像（平台尚未收到，或已被删除）")
    st = found[0]
    series: list[SeriesView] = []
    for s in imaging.find_series(reader, study_uid, {}, limit=1000):
        uid = value(s, "SeriesInstanceUID")
        rows = _all_instances(imaging, reader, study_uid, uid)
        rows.sort(key=lambda r: (_int(value(r, "InstanceNumber"), 0), value(r, "SOPInstanceUID")))
        inst = [(value(r, "SOPInstanceUID"), max(1, _int(value(r, "NumberOfFrames"), 1))) for r in rows]
        if not inst:
            continue
        modality = value(s, "Modality")
        meta: list[dict[str, Any]] = []
        if modality != "CT":
            meta = _first_metadata(imaging.metadata(reader, study_uid, uid))
        series.append(SeriesView(uid, value(s, "SeriesNumber"), modality, value(s, "SeriesDescription"), inst,
                                 _presets(modality, meta)))
    series.sort(key=lambda v: (_int(v.number, 1 << 30), v.uid))
    exam = imaging.exam_for_study(reader, study_uid)
    org = (exam or {}).get("org_code") or ""
    source = (exam or {}).get("org_name") or (org_name(org) if org else "") or value(st, "InstitutionName") or org
    return StudyView(
        uid=study_uid, patient_name=shown_name(value(st, "PatientName")), patient_sex=SEX.get(value(st, "PatientSex"), ""),
        exam_date=shown_date(value(st, "StudyDate")), modality="/".join(values(st, "ModalitiesInStudy")),
        description=value(st, "StudyDescription"), source=source,
        series=series, exam=exam,
    )


def _first_metadata(raw: bytes) -> list[dict[str, Any]]:
    """The first instance's object of a metadata array, decoded alone (a series may hold hundreds)."""
    text = raw.decode("utf-8")
    start = text.find("{")
    first = json.JSONDecoder().raw_decode(text, start)[0] if start >= 0 else None
    return [first] if isinstance(first, dict) else []


def _all_instances(imaging: Any, reader: Any, study_uid: str, series_uid: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for n in range(MAX_PAGES):
        got = imaging.find_instances(reader, study_uid, series_uid, {}, limit=PAGE, offset=n * PAGE)
        rows += got
        if len(got) < PAGE:
            break
    return rows


def _int(text: str, default: int) -> int:
    try:
        return int(float(text))
    except ValueError:
        return default


def frame_template(study_uid: str, key: str) -> str:
    """The rendered-frame URL with ``{series}``, ``{instance}``, ``{frame}`` to fill (viewer.js does
    the same); ``&window=center,width`` added for a preset."""
    return (f"/dicom-web/studies/{study_uid}/series/{{series}}/instances/{{instance}}/frames/{{frame}}/rendered?"
            + urlencode({"key": key}))


def frame_url(template: str, series: str, instance: str, frame: int, window: str) -> str:
    url = template.replace("{series}", series).replace("{instance}", instance).replace("{frame}", str(frame))
    return url + (f"&window={quote(window, safe=',')}" if window else "")


def thumb_url(study_uid: str, series_uid: str, key: str) -> str:
    return f"/dicom-web/studies/{study_uid}/series/{series_uid}/thumbnail?" + urlencode({"key": key})


def _position(request: Request, v: StudyView) -> tuple[int, int, str]:
    """The series, frame and preset the URL asks for (defaults: the first series, frame, 默认)."""
    q = request.query_params
    si = next((n for n, s in enumerate(v.series) if s.uid == q.get("series")), 0)
    fi = _int(q.get("i", "0")[:9], 0) if v.series else 0
    fi = min(max(fi, 0), v.series[si].frames - 1) if v.series else 0
    preset = q.get("w", "default")[:20]
    if v.series and preset not in {p.code for p in v.series[si].presets}:
        preset = "default"
    return si, fi, preset


def viewer_context(request: Request, v: StudyView, key: str, link: Any, *, relay: str = "") -> dict[str, Any]:
    """What the shared viewer partial needs; ``link(**params)`` makes a link to the same page.
    ``relay``: a relayed study's frame route (the page's ``…/relayed``), instead of DICOMweb and a key."""
    si, fi, preset = _position(request, v)
    tpl = frame_template(v.uid, key)
    if relay:
        from huren.web import routes_imaging_relay as rr  # the services, for the platform's pages only

        tpl = rr.frame_template(relay)
    current = ""
    if v.series:
        s = v.series[si]
        sop, n = s.frame(fi)
        win = next((p.window for p in s.presets if p.code == preset), "")
        current = frame_url(tpl, s.uid, sop, n, win)
    thumbs = rr.thumbs(tpl, v) if relay else [thumb_url(v.uid, s.uid, key) for s in v.series]
    return {"v": v, "si": si, "fi": fi, "preset": preset, "frame_tpl": tpl, "current": current, "link": link, "thumbs": thumbs}


# -- the doctor's viewer ---------------------------------------------------------------------------
def imaging_url(request: Request, who: Caller | None, master: Mapping[str, Any]) -> str:
    """The viewer link of an exam report whose study the platform holds and the doctor may see;
    "" otherwise (and on a gateway's pages, which have no archive). The report page calls it
    (a template global, registered below, so only where this module is installed)."""
    c = getattr(request.app.state, "container", None)
    if c is None or who is None or who.role not in VIEWER_ROLES or not master.get("report_form_no"):
        return ""
    try:
        uid = c.imaging.study_for_exam(who.principal, str(master.get("org_code") or ""), str(master["report_form_no"]))
        if not uid or not dom.valid_uid(uid):
            return ""
        c.imaging.study_state(who.principal, uid)  # NotFound: not held, deleted, or not for this reader
    except HurenError:
        return ""
    return who.url(f"/ui/imaging/{uid}")


TEMPLATES.globals["imaging_url"] = imaging_url


@router.get("/ui/imaging/{study_uid}")
async def viewer(request: Request, study_uid: str) -> Response:
    """The doctor's viewer: opened in a session or with a token (the page issues a viewer key for its
    images), or with a viewing institution's ``key`` (XC-E7's viewer_url: the key alone opens it)."""
    if request.query_params.get("key"):
        return await _keyed_viewer(request, study_uid, request.query_params["key"])
    who = await caller(request)
    who.require(VIEWER_ROLES, "影像调阅页面")
    uid = dom.check_uid(study_uid)
    c = container(request)
    try:
        v = await call(study_view, c.imaging, who.principal, uid, _org_names(c))
    except NotFound as exc:
        relayed = await _relayed_viewer(request, who, uid, exc)
        if relayed is None:
            raise
        return relayed
    issued = await call(c.imaging.issue_key, who.principal, dom.VIEWER, uid)
    exam = v.exam or {}
    report = who.url(f"/ui/report/exam/{exam['ref']}") if exam.get("ref") else ""

    def link(**params: Any) -> str:
        return who.url(f"/ui/imaging/{uid}", **params)

    return page(request, who, "imaging/viewer.html", title="影像调阅", report_url=report, keyed=False,
                expires_at=issued.expires_at, **viewer_context(request, v, issued.key, link))


async def _relayed_viewer(request: Request, who: Caller, uid: str, exc: NotFound) -> Response | None:
    """XC-E-note: a study not held here, shown from the fallback platform (None: not relayed)."""
    from huren.web import routes_imaging_relay as rr

    c = container(request)
    fw = rr.relayable(c.imaging_forward, who.principal, exc)
    if fw is None:
        return None
    v = await call(rr.relayed_view, fw, who.principal, uid)

    def link(**params: Any) -> str:
        return who.url(f"/ui/imaging/{uid}", **params)

    return page(request, who, "imaging/viewer.html", title="影像调阅", report_url="", keyed=False, expires_at=None,
                **viewer_context(request, v, "", link, relay=who.url(f"/ui/imaging/{uid}/relayed")))


@router.get("/ui/imaging/{study_uid}/relayed/series/{series}/instances/{instance}/frames/{frame}/rendered")
async def relayed_frame(request: Request, study_uid: str, series: str, instance: str, frame: str) -> Response:
    """A frame of a study not held here, rendered by the fallback platform, for the doctor's page
    (the session or page token checked here; a study held here is never fetched elsewhere)."""
    from huren.web import routes_imaging_relay as rr

    who = await caller(request)
    who.require(VIEWER_ROLES, "影像调阅页面")
    uid = dom.check_uid(study_uid)
    c = container(request)
    try:
        await call(c.imaging.study_state, who.principal, uid)
    except NotFound as exc:
        fw = rr.relayable(c.imaging_forward, who.principal, exc)
        if fw is None:
            raise
        return rr.image_response(await call(rr.relayed_frame, fw, who.principal, uid, series, instance, frame))
    raise NotFound("该检查由本平台存储，请从影像调阅页面打开")


async def _keyed_viewer(request: Request, study_uid: str, key: str) -> Response:
    uid = dom.check_uid(study_uid)
    c = container(request)
    grant = await call(_key_grant, c, key.strip(), dom.VIEWER, uid)
    v = await call(study_view, c.imaging, grant, uid, _org_names(c))

    def link(**params: Any) -> str:
        q = {k: x for k, x in params.items() if x not in (None, "")} | {"key": key}
        return f"/ui/imaging/{uid}?{urlencode(q)}"

    resp = page(request, None, "imaging/viewer.html", title="影像调阅", report_url="", keyed=True,
                expires_at=grant.expires_at, **viewer_context(request, v, key, link))
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp


def _org_names(c: Any) -> Callable[[str], str]:
    """An institution's name by its code ("" for one the directory does not hold)."""
    def name(code: str) -> str:
        try:
            return str(c.directory.get_org(code)["name"])
        except NotFound:
            return ""
    return name


def _key_grant(c: Any, key: str, kind: str, study_uid: str | None = None) -> Any:
    """A key's grant (an unknown key, or one for another study: NotFound; expired: LinkExpired;
    revoked or of another kind: Forbidden)."""
    if not dom.looks_like_key(key):
        raise NotFound("链接或密钥不存在")
    try:
        g = c.imaging.grant(key, (kind,))
    except Unauthorized as exc:
        raise NotFound(exc.text()) from exc
    if study_uid is not None and g.study_uid != study_uid:
        raise NotFound("该密钥不能用于这项检查")
    return g
