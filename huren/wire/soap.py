"""A small SOAP layer for the Xinjiang profile (seed 002 §1.2–1.4): parse a SOAP 1.1 or 1.2
request into its method and string parameters, build the document/literal wrapped answer
``<MethodResponse><MethodResult>…</MethodResult></MethodResponse>``, and the WSDL.

Parameters are found by local name, so a client generated from another platform's WSDL (another
target namespace, qualified or unqualified parameters) is understood; the answer is written in the
namespace the request used, which is what such a client expects back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from xml.sax.saxutils import escape

from huren.errors import MalformedBody, Problem
from huren.wire.xj_xml import local, safe_parse

NS = "http://huren.platform/Myhealth"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
CONTENT_TYPES = {"1.1": "text/xml; charset=utf-8", "1.2": "application/soap+xml; charset=utf-8"}

_AUTH = ("strCredential", "strKey")
#: Every method of the profile and its parameters, in the seed's order.
METHODS: dict[str, tuple[str, ...]] = {
    "ArchiveAutoReport": ("strReportInfo", *_AUTH),
    "DeleteLabInfo": ("strFilter", *_AUTH),
    "DeleteExamInfo": ("strFilter", *_AUTH),
    "GetCheckLabList": ("strFilter", *_AUTH),
    "GetCheckLabInfo": ("strFilter", *_AUTH),
    "ExistsReCureInfo": ("strFilter", *_AUTH),
    "SubmitAccept": ("strReportInfo", *_AUTH),
    "SubmitQuote": ("strReportInfo", *_AUTH),
    "GetLabInfo": ("strFilter", *_AUTH),
    "GetExamInfo": ("strFilter", *_AUTH),
}
DOCS = {
    "ArchiveAutoReport": "检验/检查报告注册、检查检验日报上传（1.2.2.1 / 1.2.2.3 / 1.2.2.5）",
    "DeleteLabInfo": "检验报告作废（1.2.2.2）",
    "DeleteExamInfo": "检查报告作废（1.2.2.4）",
    "GetCheckLabList": "获取近期检查检验记录（1.3.2.1 / 1.4.2.1）",
    "GetCheckLabInfo": "获取近期互认项目明细信息（1.3.2.2）",
    "ExistsReCureInfo": "获取近期可互认项目记录（1.4.2.2）",
    "SubmitAccept": "提交互认结果（1.3.2.5 / 1.4.2.3）",
    "SubmitQuote": "提交引用结果（1.3.2.6 / 1.4.2.6）",
    "GetLabInfo": "检验报告结果引用（1.4.2.4）",
    "GetExamInfo": "检查报告结果引用（1.4.2.5）",
}
_XMLNS_RE = re.compile(rb"""xmlns(?::[\w.-]+)?\s*=\s*["']([^"'<>]+)["']""")
_METHOD_RE = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(" + b"|".join(m.encode() for m in METHODS) + rb")[\s/>]")


@dataclass(frozen=True, slots=True)
class SoapCall:
    method: str
    params: dict[str, str]
    version: str = "1.1"  # 1.1 | 1.2
    ns: str = NS  # the namespace of the request's wrapper element, echoed in the answer


def parse_request(body: bytes, *, limit: int) -> SoapCall:
    """The method and string parameters of a SOAP 1.1 / 1.2 request; MalformedBody otherwise."""
    env = safe_parse(body, limit=limit, what="SOAP请求")
    env_ns = _ns(env.tag)
    if local(env.tag) != "Envelope" or env_ns not in (SOAP11, SOAP12):
        raise _bad("请求不是SOAP 1.1或1.2信封（Envelope）")
    version = "1.1" if env_ns == SOAP11 else "1.2"
    body_el = next((c for c in env if isinstance(c.tag, str) and local(c.tag) == "Body"), None)
    if body_el is None:
        raise _bad("SOAP信封中缺少 Body")
    wrapper = next((c for c in body_el if isinstance(c.tag, str)), None)
    if wrapper is None:
        raise _bad("SOAP Body 中没有方法元素")
    params = {local(p.tag): (p.text or "") for p in wrapper if isinstance(p.tag, str)}
    return SoapCall(local(wrapper.tag), params, version, _ns(wrapper.tag) or NS)


def _ns(tag: object) -> str:
    text = str(tag)
    return text[1:].split("}", 1)[0] if text.startswith("{") else ""


def _bad(message: str) -> MalformedBody:
    return MalformedBody(message, [Problem("envelope", "soap", message)])


def guess_call(body: bytes, soap_action: str | None, content_type: str | None) -> SoapCall | None:
    """For answering a request that could not be parsed: its method from the SOAPAction header,
    the SOAP 1.2 ``action`` parameter, or the first known method element in the body."""
    version = "1.2" if content_type and "soap+xml" in content_type.lower() else "1.1"
    actions = [soap_action or ""]
    m = re.search(r'action\s*=\s*"?([^";]+)', content_type or "")
    if m:
        actions.append(m.group(1))
    names = [re.split(r"[/#:]", a.strip().strip('"'))[-1] for a in actions]
    name = next((n for n in names if n in METHODS), None)
    ns = NS
    found = _METHOD_RE.search(body)
    if found:
        name = name or found.group(1).decode()
        end = body.find(b">", found.end() - 1)
        declared = _XMLNS_RE.search(body[found.start() : end if end > 0 else found.end()])
        if declared:
            ns = declared.group(1).decode("utf-8", "replace")
    return SoapCall(name, {}, version, ns) if name else None


def _envelope(version: str, inner: str) -> bytes:
    env_ns = SOAP11 if version == "1.1" else SOAP12
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{env_ns}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xmlns:xsd="http://www.w3.org/2001/XMLSchema"><soap:Body>{inner}</soap:Body></soap:Envelope>'
    ).encode()


_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _escape(text: str) -> str:
    return escape(_BAD_CHARS.sub("", text))


def response(call: SoapCall, result: str) -> bytes:
    """The document/literal wrapped answer carrying ``result`` (``ok`` / ``error:…`` / Base64)."""
    m = call.method
    ns = escape(call.ns, {'"': "&quot;"})
    return _envelope(call.version, f'<{m}Response xmlns="{ns}"><{m}Result>{_escape(result)}</{m}Result></{m}Response>')


def fault(version: str, message: str) -> bytes:
    """A SOAP Fault, for a request in which no method can be recognised at all."""
    text = _escape(message)
    if version == "1.2":
        inner = (
            "<soap:Fault><soap:Code><soap:Value>soap:Sender</soap:Value></soap:Code>"
            f'<soap:Reason><soap:Text xml:lang="zh">{text}</soap:Text></soap:Reason></soap:Fault>'
        )
    else:
        inner = f"<soap:Fault><faultcode>soap:Client</faultcode><faultstring>{text}</faultstring></soap:Fault>"
    return _envelope(version, inner)


def wsdl(location: str) -> str:
    """The WSDL 1.1 of the service at ``location``: SOAP 1.1 and 1.2 bindings, document/literal wrapped."""
    types: list[str] = []
    messages: list[str] = []
    ops: list[str] = []
    b11: list[str] = []
    b12: list[str] = []
    for m, params in METHODS.items():
        seq = "".join(f'<s:element minOccurs="0" maxOccurs="1" name="{p}" type="s:string"/>' for p in params)
        types.append(
            f'<s:element name="{m}"><s:complexType><s:sequence>{seq}</s:sequence></s:complexType></s:element>'
            f'<s:element name="{m}Response"><s:complexType><s:sequence>'
            f'<s:element minOccurs="0" maxOccurs="1" name="{m}Result" type="s:string"/>'
            "</s:sequence></s:complexType></s:element>"
        )
        messages.append(
            f'<wsdl:message name="{m}SoapIn"><wsdl:part name="parameters" element="tns:{m}"/></wsdl:message>'
            f'<wsdl:message name="{m}SoapOut"><wsdl:part name="parameters" element="tns:{m}Response"/></wsdl:message>'
        )
        ops.append(
            f'<wsdl:operation name="{m}"><wsdl:documentation>{escape(DOCS[m])}</wsdl:documentation>'
            f'<wsdl:input message="tns:{m}SoapIn"/><wsdl:output message="tns:{m}SoapOut"/></wsdl:operation>'
        )
        for prefix, out in (("soap", b11), ("soap12", b12)):
            out.append(
                f'<wsdl:operation name="{m}"><{prefix}:operation soapAction="{NS}/{m}" style="document"/>'
                f'<wsdl:input><{prefix}:body use="literal"/></wsdl:input>'
                f'<wsdl:output><{prefix}:body use="literal"/></wsdl:output></wsdl:operation>'
            )
    loc = escape(location, {'"': "&quot;"})
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" '
        'xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:soap12="http://schemas.xmlsoap.org/wsdl/soap12/" '
        f'xmlns:s="http://www.w3.org/2001/XMLSchema" xmlns:tns="{NS}" targetNamespace="{NS}">'
        f'<wsdl:types><s:schema elementFormDefault="qualified" targetNamespace="{NS}">{"".join(types)}</s:schema></wsdl:types>'
        f'{"".join(messages)}'
        f'<wsdl:portType name="MyhealthSoap">{"".join(ops)}</wsdl:portType>'
        '<wsdl:binding name="MyhealthSoap" type="tns:MyhealthSoap">'
        f'<soap:binding transport="http://schemas.xmlsoap.org/soap/http"/>{"".join(b11)}</wsdl:binding>'
        '<wsdl:binding name="MyhealthSoap12" type="tns:MyhealthSoap">'
        f'<soap12:binding transport="http://schemas.xmlsoap.org/soap/http"/>{"".join(b12)}</wsdl:binding>'
        '<wsdl:service name="Myhealth">'
        f'<wsdl:port name="MyhealthSoap" binding="tns:MyhealthSoap"><soap:address location="{loc}"/></wsdl:port>'
        f'<wsdl:port name="MyhealthSoap12" binding="tns:MyhealthSoap12"><soap12:address location="{loc}"/></wsdl:port>'
        "</wsdl:service></wsdl:definitions>\n"
    )
