"""The structure of a report PDF (ISO 32000-1 §7.5: header, body, cross-reference, trailer).

A report sheet is served to doctors' browsers, so a file is taken as a PDF only when it is
built like one: the ``%PDF-n.n`` header at the start (after nothing but white space), an
``%%EOF`` marker near the end, a ``startxref`` with the offset of a cross-reference table
(``xref``) or stream (``/Type/XRef``) inside the file, and at least one indirect object
(``n g obj``). Markup that a browser would run as a page (HTML, SVG, script) is refused anywhere
in the file, and so are the PDF actions that start scripts or programs (``/JavaScript``,
``/Launch``): a lab or exam sheet needs neither.

This is a structure check, not a parser: a file can pass it and still be damaged inside, and
names hidden in compressed object streams are not seen (see docs/data-model.md).
"""

from __future__ import annotations

import re

HEADER = re.compile(rb"%PDF-[12]\.\d")
#: ``%%EOF`` must be within this many bytes of the end (writers append line ends, some padding)
EOF_WINDOW = 1024
#: ``startxref`` is looked for this far before the last ``%%EOF``
STARTXREF_WINDOW = 1024
_STARTXREF = re.compile(rb"startxref\s+(\d{1,12})\s*%%EOF")
_XREF_TABLE = re.compile(rb"(?:^|[\r\n])\s*xref\s")
_XREF_STREAM = re.compile(rb"/Type\s*/XRef\b")
_OBJECT = re.compile(rb"(?:^|[\s>\]])\d{1,10}\s+\d{1,5}\s+obj\b")
#: markup a browser renders, looked for anywhere (case-insensitive)
_MARKUP = re.compile(rb"<\s*(?:!doctype\s+html|html|head|body|script|iframe|svg|object|embed|meta\s|img\s)", re.IGNORECASE)
_ACTIONS = re.compile(rb"/(?:JavaScript|JS|Launch)\b")
_NAME_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")
_STREAM = re.compile(rb"(?<!end)stream(?:\r\n|\n|\r)")
#: the head of the file is always looked at whole (old browsers sniffed it for markup)
HEAD_WINDOW = 1024

Finding = tuple[str, str]  # (rule, Chinese message)


def check(data: bytes) -> list[Finding]:
    """What is wrong with ``data`` as a PDF: (rule, message) pairs, empty when it passes.

    Rules: ``pdf_format`` (no ``%PDF-`` header at the start: not a PDF at all, nothing more is
    checked), ``pdf_structure`` (no ``%%EOF`` near the end, no ``startxref`` / cross-reference,
    no object), ``pdf_active_content`` (HTML / script markup, or a JavaScript / Launch action).
    """
    start = len(data) - len(data.lstrip())
    if start > 1024 or not HEADER.match(data, start):
        return [("pdf_format", "报告单据不是PDF文件（文件开头缺少 %PDF-n.n 文件头）")]
    found: list[Finding] = []
    missing: list[str] = []
    tail_at = data.rfind(b"%%EOF", max(0, len(data) - EOF_WINDOW))
    if tail_at < 0:
        missing.append(f"文件末尾 {EOF_WINDOW} 字节内的 %%EOF 结束标记")
    else:
        hits = list(_STARTXREF.finditer(data, max(0, tail_at - STARTXREF_WINDOW), tail_at + 5))
        m = hits[-1] if hits else None
        if m is None or int(m.group(1)) >= len(data):
            missing.append("指向文件内的 startxref 交叉引用位置")
    if not (_XREF_TABLE.search(data) or _XREF_STREAM.search(data)):
        missing.append("交叉引用表（xref）或交叉引用流（/Type/XRef）")
    if not _OBJECT.search(data):
        missing.append("至少一个对象（n 0 obj）")
    if missing:
        found.append(("pdf_structure", "报告单据PDF结构不完整，缺少：" + "、".join(missing)))
    parts = [data[:HEAD_WINDOW], *_readable(data)]
    markup = next((m for part in parts if (m := _MARKUP.search(part))), None)
    if markup:
        tag = markup.group(0).decode("ascii", "replace").strip()
        found.append(("pdf_active_content", f"报告单据PDF中含有网页标记“{tag}”，不予接收（疑似伪装成PDF的网页或脚本）"))
    action = next((m for part in parts if (m := _ACTIONS.search(_unescape_names(part)))), None)
    if action:
        name = action.group(0).decode("ascii")
        found.append(("pdf_active_content", f"报告单据PDF中含有脚本或启动程序动作“{name}”，不予接收"))
    return found


def _unescape_names(part: bytes) -> bytes:
    """Names with ``#xx`` escapes spelled out (``/J#61vaScript`` is ``/JavaScript``, ISO 32000-1 §7.3.5)."""
    if b"#" not in part:
        return part
    return _NAME_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), part)


def _readable(data: bytes) -> list[bytes]:
    """The file without the bodies of encoded streams (those whose dictionary has a /Filter):
    compressed bytes are noise in which a short tag such as ``<svg`` can turn up by chance, while
    markup in plain text cannot hide there."""
    out: list[bytes] = []
    pos = 0
    for m in _STREAM.finditer(data):
        if m.start() < pos:
            continue
        obj = data.rfind(b"obj", pos, m.start())
        head = data[obj if obj >= 0 else pos : m.start()]
        if b"/Filter" not in _unescape_names(head):
            continue
        end = data.find(b"endstream", m.end())
        out.append(data[pos : m.end()])
        pos = len(data) if end < 0 else end
    out.append(data[pos:])
    return out
