"""The Xinjiang profile's XML (seed 002 §1.2–1.4): parse the decrypted parameters into the payload
dicts the services take, and render the query answers in the seed's exact layouts.

Parsing is safe: lxml with entity resolution, DTD loading and the network off; a document with a
DOCTYPE (and so any entity declaration) is refused before and after parsing; ``huge_tree`` (text
nodes over 10 MB, e.g. a Base64 PDF) only for documents within the request size limit.

Payloads mirror the XML nodes: ``<root><labmaster><item a=…/></labmaster><lab_subitem><item …/>…``
→ ``{"labmaster": {…}, "lab_subitem": [{…}, …]}``. Attribute names are kept as sent (the
validator matches them case-insensitively, e.g. the seed's ``Id_Type_Code``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from huren.domain import kinds
from huren.domain.fields import EXAM_SUBITEM, EXAMMASTER, LAB_SUBITEM, LABMASTER
from huren.errors import InvalidInput, MalformedBody, Problem, TooLarge

_DOCTYPE = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n'
EMPTY = "<root />"


# -- parsing -----------------------------------------------------------------------------------
def safe_parse(data: bytes, *, limit: int, what: str) -> etree._Element:
    """The root element of ``data``; MalformedBody for bad XML or any DOCTYPE, TooLarge over ``limit``."""
    if len(data) > limit:
        raise TooLarge(f"{what} 超过上限 {limit} 字节", [Problem(what, "max_size", f"{what} 不能超过 {limit} 字节")])
    if _DOCTYPE.search(data) or (data[:2] in _UTF16_BOMS and _DOCTYPE.search(data.replace(b"\x00", b""))):
        raise _refused(what)
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=True,  # only reached within the size limit
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        alt = _as_gb18030(data)
        if alt is None:
            raise MalformedBody(f"{what} 不是合法的XML", [Problem(what, "xml", f"XML解析失败：{exc.msg}")]) from exc
        try:
            root = etree.fromstring(alt, parser)
        except etree.XMLSyntaxError:
            raise MalformedBody(f"{what} 不是合法的XML", [Problem(what, "xml", f"XML解析失败：{exc.msg}")]) from exc
    except (ValueError, LookupError) as exc:  # e.g. an unknown encoding in the declaration
        raise MalformedBody(f"{what} 不是合法的XML", [Problem(what, "xml", f"XML解析失败：{exc}")]) from exc
    if root is None:
        raise MalformedBody(f"{what} 为空", [Problem(what, "xml", "XML文档没有根元素")])
    if root.getroottree().docinfo.doctype:
        raise _refused(what)
    return root


_DECLARATION = re.compile(r"^\ufeff?\s*<\?xml[^>]*\?>")


def _as_gb18030(data: bytes) -> bytes | None:
    """Hospital code that writes GBK bytes (often under a declaration saying UTF-8): the same
    document re-encoded as UTF-8, when ``data`` is not UTF-8 but is GB18030; else None."""
    try:
        data.decode("utf-8")
        return None
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        return None
    return _DECLARATION.sub("", text, count=1).encode("utf-8")


def _refused(what: str) -> MalformedBody:
    return MalformedBody(f"{what} 含有DOCTYPE或实体声明，已拒绝", [Problem(what, "doctype", "不接受DOCTYPE与实体声明")])


def local(tag: Any) -> str:
    """An element's or attribute's name without its namespace."""
    text = str(tag)
    return text.rsplit("}", 1)[-1] if text.startswith("{") else text


def _elements(node: etree._Element) -> Iterable[etree._Element]:
    return (c for c in node if isinstance(c.tag, str))


def _record(el: etree._Element) -> dict[str, str]:
    """One ``<item>``: its attributes, then its leaf children's text for names not given as attributes."""
    rec = {local(k): v for k, v in el.attrib.items()}
    for child in _elements(el):
        if len(child) == 0:
            rec.setdefault(local(child.tag), (child.text or "").strip())
    return rec


def nodes(root: etree._Element) -> dict[str, list[dict[str, str]]]:
    """``<root><node><item …/>…</node>…</root>`` → ``{"node": [{…}, …]}`` (names lower-cased)."""
    out: dict[str, list[dict[str, str]]] = {}
    for node in _elements(root):
        out.setdefault(local(node.tag).lower(), []).extend(_record(i) for i in _elements(node))
    return out


def fields(root: etree._Element) -> dict[str, str]:
    """A flat filter: the root's attributes and its leaf children's text (``<id_no>…</id_no>``)."""
    out = {local(k): v.strip() for k, v in root.attrib.items()}
    for child in _elements(root):
        if len(child) == 0:
            out[local(child.tag)] = (child.text or "").strip()
    return out


#: master / item node of each report kind, lab first (the order the submitted nodes are looked for)
REPORT_NODES = {k.name: (k.master_node, k.item_node) for k in (kinds.LAB, kinds.EXAM)}


def report(root: etree._Element) -> tuple[str, dict[str, Any]]:
    """ArchiveAutoReport's strReportInfo → (``lab`` | ``exam`` | ``daily``, payload)."""
    got = nodes(root)
    found = [k for k, (m, _) in REPORT_NODES.items() if m in got] + (["daily"] if "lab_exam_report" in got else [])
    if len(found) != 1:
        msg = "一次只能提交一份检验报告、一份检查报告或一份日报" if found else "缺少 labmaster、exammaster 或 lab_exam_report 节点"
        raise InvalidInput(msg, [Problem("strReportInfo", "node", msg)])
    kind = found[0]
    if kind == "daily":
        return kind, {"lab_exam_report": got["lab_exam_report"]}
    master_name, item_name = REPORT_NODES[kind]
    masters = got[master_name]
    if len(masters) != 1:
        msg = f"{master_name} 节点中应有且只有一份报告（item），实际 {len(masters)} 份"
        raise InvalidInput(msg, [Problem(master_name, "node", msg)])
    return kind, {master_name: masters[0], item_name: got.get(item_name, [])}


@dataclass(frozen=True, slots=True)
class Credential:
    """strCredential: ``<root><org code=…>名称</org><visitor type="0" code=用户 key=密码/></root>``."""

    org_code: str
    org_name: str
    visitor_type: str
    username: str
    password: str


def credential(root: etree._Element) -> Credential:
    org = next((e for e in _elements(root) if local(e.tag).lower() == "org"), None)
    visitor = next((e for e in _elements(root) if local(e.tag).lower() == "visitor"), None)
    problems = []
    if org is None or not (org.get("code") or "").strip():
        problems.append(Problem("strCredential.org.code", "required", "身份证据缺少机构编码（org 的 code 属性）"))
    if visitor is None or not (visitor.get("code") or "").strip():
        problems.append(Problem("strCredential.visitor.code", "required", "身份证据缺少用户名（visitor 的 code 属性）"))
    if visitor is None or not visitor.get("key"):
        problems.append(Problem("strCredential.visitor.key", "required", "身份证据缺少密码（visitor 的 key 属性）"))
    if problems or org is None or visitor is None:
        raise InvalidInput("身份证据格式错误", problems)
    return Credential(
        (org.get("code") or "").strip(),
        (org.text or "").strip(),
        (visitor.get("type") or "").strip(),
        (visitor.get("code") or "").strip(),
        visitor.get("key") or "",
    )


@dataclass(frozen=True, slots=True)
class ExistsFilter:
    """ExistsReCureInfo's strFilter: the visit on the root's attributes, the ordered codes inside."""

    attrs: dict[str, str]
    check: list[str] = field(default_factory=list)
    lab: list[str] = field(default_factory=list)


def exists_filter(root: etree._Element) -> ExistsFilter:
    codes: dict[str, list[str]] = {"check": [], "lab": []}
    for node in _elements(root):
        name = local(node.tag).lower()
        if name in codes:
            codes[name] += [t for t in ((i.text or "").strip() for i in _elements(node)) if t]
    return ExistsFilter(fields(root), codes["check"], codes["lab"])


def id_type(f: Mapping[str, str]) -> str:
    """The filter's ID type (``id_type``; ``id_type_code`` also accepted), default 01."""
    return f.get("id_type") or f.get("id_type_code") or "01"


# -- rendering ---------------------------------------------------------------------------------
def _clean(value: Any) -> str:
    text = "" if value is None else str(value)
    return _BAD_CHARS.sub("", text) if _BAD_CHARS.search(text) else text


#: Answer attribute → the service's key, where the seed's answers spell a field differently.
_SOURCE = {"patient_condition_descr": "patient_condition_desc", "outpatient_diag_name": "outpat_diag_name"}


def _item(parent: etree._Element, tag: str, row: Mapping[str, Any], attrs: Sequence[str], *, omit_empty: bool = False) -> etree._Element:
    el = etree.SubElement(parent, tag)
    for name in attrs:
        value = _clean(row.get(_SOURCE.get(name, name), ""))
        if value or not omit_empty:
            el.set(name, value)
    return el


def _text(root: etree._Element, declaration: bool = False) -> str:
    body: str = etree.tostring(root, encoding="unicode")
    return DECLARATION + body if declaration else body


# §1.3.2.1 / §1.4.2.1 GetCheckLabList
LIST_ITEM = ("type", "org_name", "item_code", "item_name", "dtime", "expired_time", "recognition", "url", "pacs_url")


def render_list(items: Sequence[Mapping[str, Any]]) -> str:
    if not items:
        return EMPTY
    root = etree.Element("root")
    for row in items:
        _item(root, "item", row, LIST_ITEM)
    return _text(root)


# §1.3.2.2 GetCheckLabInfo: the seed sample's attribute order (it differs from the table's).
DETAIL_EXAM = (
    "org_name", "last_update_dtime", "org_code", "apply_form_no", "state", "report_form_no", "patient_id",
    "event_type", "event_no", "patient_local_id", "performer_dtime", "pacs_id", "study_instance_uid", "id_no",
    "id_type_code", "card_no", "checked_status", "class_code", "class_name", "retrieve_date", "report_title",
    "effective_dtime", "confidentiality", "name", "sex_code", "sex_name", "birth_date", "author_id", "author_dtime",
    "author_name", "authenticator_dept_code", "authenticator_dept_name", "authenticator_dept_std_code",
    "authenticator_dept_std_name", "authenticator_id", "authenticator_dtime", "authenticator_name",
    "participant_dept_code", "participant_dept_name", "participant_dept_std_code", "participant_dept_std_name",
    "participant_id", "participant_dtime", "participant_name", "order_id", "order_priority", "order_priority_name",
    "performer_dept_code", "performer_dept_name", "performer_dept_std_code", "performer_dept_std_name",
    "performer_doctor", "playing_device", "outpat_diag_name", "patient_condition_descr", "exam_purpose",
    "image_descr", "is_abnormal", "conclusion", "arrive_dtime", "pacs_url", "url", "pdf_url",
)
DETAIL_EXAM_ITEM = (*(f.name for f in EXAM_SUBITEM), "expired_time")
DETAIL_LAB = ("org_name", *(f.name for f in LABMASTER if f.name != "data_status"), "url", "pdf_url")
DETAIL_LAB_ITEM = (*(f.name for f in LAB_SUBITEM), "expired_time")


def render_detail(detail: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    exams, labs = detail.get("exammaster", []), detail.get("labmaster", [])
    if not exams and not labs:
        return EMPTY
    root = etree.Element("root")
    for master, sub, rows, mattrs, iattrs in (
        ("exammaster", "exam_subitem", exams, DETAIL_EXAM, DETAIL_EXAM_ITEM),
        ("labmaster", "lab_subitem", labs, DETAIL_LAB, DETAIL_LAB_ITEM),
    ):
        mnode = etree.SubElement(root, master)
        inode = etree.SubElement(root, sub)
        for row in rows:
            _item(mnode, "item", row, mattrs)
            for it in row.get("item", []):
                _item(inode, "item", it, iattrs)
    return _text(root, declaration=True)


# §1.4.2.2 ExistsReCureInfo
EXISTS_LAB = ("org_code", "org_name", "report_form_no", "event_no", "id_no", "id_type_code", "event_type",
              "report_title", "class_name", "dtime", "url")
EXISTS_LAB_ITEM = ("item_code", "item_name", "result_value", "lower_value", "upper_value", "result_unit", "expired_time")
EXISTS_EXAM = ("org_code", "org_name", "report_form_no", "event_no", "id_no", "id_type_code", "event_type",
               "report_title", "item_code", "item_name", "dtime", "pacs_url", "url")


def render_exists(res: Mapping[str, Any]) -> str:
    labs, exams = res.get("labmaster", []), res.get("exammaster", [])
    if not labs and not exams:
        return EMPTY
    root = etree.Element("root")
    for row in labs:
        m = _item(root, "labmaster", row, EXISTS_LAB)
        for it in row.get("item", []):
            _item(m, "item", it, EXISTS_LAB_ITEM)
    for row in exams:
        _item(root, "exammaster", row, EXISTS_EXAM)
    return _text(root)


# §1.4.2.4 GetLabInfo / §1.4.2.5 GetExamInfo: the seed prints these as maps, empty values left out,
# in its samples' order; fields its samples happen not to show follow in table order.
_LAB_INFO_SEED = (
    "id_no", "card_no", "retrieve_date", "performer_dept_std_name", "author_id", "participant_name",
    "performer_dept_name", "performer_dtime", "specimen_id", "event_type", "report_title", "area_code", "class_name",
    "sex_code", "participant_dept_name", "create_at", "performer_doctor", "playing_device", "event_no", "id_type_code",
    "participant_dtime", "participant_id", "authenticator_dtime", "org_name", "author_name",
    "participant_dept_std_code", "last_update_dtime", "authenticator_id", "name", "data_status", "effective_dtime",
    "order_id", "org_code", "report_form_no", "class_local_name", "participant_dept_std_name", "patient_id",
    "authenticator_name", "sex_name", "author_dtime", "participant_dept_code", "performer_dept_code",
    "performer_dept_std_code", "pdf_url",
)
_LAB_INFO_ITEM_SEED = (
    "result_value", "class_code", "result_type_descr", "recognition", "serial_no", "result_interpre",
    "result_interpre_descr", "last_update_dtime", "class_name", "result_type", "norm_lower_limit",
    "norm_upper_limit", "effective_dtime", "create_at", "result_unit", "org_code", "report_form_no",
    "class_local_name", "event_no",
)
_EXAM_INFO_SEED = (
    "card_no", "performer_dept_std_name", "participant_name", "performer_dept_name", "recognition", "event_type",
    "area_code", "participant_dept_name", "create_at", "performer_doctor", "birth_date",
    "authenticator_dept_std_name", "event_no", "participant_id", "class_code", "authenticator_dtime",
    "authenticator_dept_name", "conclusion", "author_name", "name", "is_abnormal", "arrive_dtime", "org_code",
    "participant_dept_std_name", "patient_condition_descr", "exam_item_name", "patient_id", "performer_dept_code",
    "performer_dept_std_code", "id_no", "retrieve_date", "authenticator_dept_code", "author_id", "performer_dtime",
    "exam_site_code", "patient_local_id", "state", "report_title", "pacs_id", "class_name", "sex_code",
    "exam_item_code", "pacs_url", "playing_device", "id_type_code", "participant_dtime", "org_name",
    "study_instance_uid", "outpatient_diag_name", "participant_dept_std_code", "last_update_dtime",
    "authenticator_id", "body_part_name", "data_status", "effective_dtime", "report_form_no", "image_descr",
    "apply_form_no", "authenticator_name", "sex_name", "author_dtime", "participant_dept_code",
    "authenticator_dept_std_code", "pdf_url",
)


def _then_table(seed: Sequence[str], *specs: Iterable[str]) -> tuple[str, ...]:
    have = set(seed) | {_SOURCE.get(s, s) for s in seed}
    extra = [n for spec in specs for n in spec if n not in have]
    return (*seed, *dict.fromkeys(extra))


LAB_INFO = _then_table(_LAB_INFO_SEED, (f.name for f in LABMASTER))
LAB_INFO_ITEM = _then_table(_LAB_INFO_ITEM_SEED, (f.name for f in LAB_SUBITEM))
EXAM_INFO = _then_table(_EXAM_INFO_SEED, (f.name for f in EXAMMASTER), (f.name for f in EXAM_SUBITEM))


def render_lab_info(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return EMPTY
    root = etree.Element("root")
    for row in rows:
        m = _item(root, "labmaster", row, LAB_INFO, omit_empty=True)
        for it in row.get("item", []):
            _item(m, "item", it, LAB_INFO_ITEM, omit_empty=True)
    return _text(root)


def render_exam_info(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return EMPTY
    root = etree.Element("root")
    for row in rows:
        _item(root, "exammaster", row, EXAM_INFO, omit_empty=True)
    return _text(root, declaration=True)
