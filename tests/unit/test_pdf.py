"""The PDF structure check (issue 10 §1.14; huren.domain.pdf) and its use in validation."""

from __future__ import annotations

import base64
import zlib

import pytest

from huren.demo.pdf import render_exam_pdf, render_lab_pdf
from huren.domain import pdf
from huren.domain.validation import validate_report
from tests import samples


def rules(data: bytes) -> list[str]:
    return [rule for rule, _ in pdf.check(data)]


def test_real_pdfs_pass() -> None:
    assert pdf.check(samples.PDF_BYTES) == []
    assert pdf.check(render_lab_pdf({"report_title": "肝功能", "name": "张三"}, [{"class_local_name": "白蛋白", "result_value": "45.3"}])) == []
    assert pdf.check(render_exam_pdf({"class_code": "CT", "image_descr": "所见" * 400}, [])) == []
    assert pdf.check(b"\r\n  " + samples.PDF_BYTES) == []  # white space before the header


FAKES = {
    "html after the header": b"%PDF-1.4\n<html><body><script>alert(document.cookie)</script></body></html>",
    "no header": b"<html>%PDF-1.4</html>",
    "header only": b"%PDF-1.7\n",
    "no %%EOF": samples.PDF_BYTES.replace(b"%%EOF", b""),
    "startxref beyond the file": samples.PDF_BYTES.replace(b"startxref\n164", b"startxref\n99999"),
    "no cross-reference": samples.PDF_BYTES.replace(b"xref\n0 4", b"").replace(b"startxref", b"start"),
    "no object": b"%PDF-1.4\nxref\n0 1\n0000000000 65535 f \ntrailer<<>>\nstartxref\n9\n%%EOF\n",
}


@pytest.mark.parametrize("name", list(FAKES))
def test_fakes_are_refused(name: str) -> None:
    found = rules(FAKES[name])
    assert found, name
    if name == "no header":
        assert found == ["pdf_format"]
    elif name == "html after the header":
        assert found == ["pdf_structure", "pdf_active_content"]
    else:
        assert found == ["pdf_structure"], name


def test_markup_or_script_inside_a_well_formed_pdf_is_refused() -> None:
    body = samples.PDF_BYTES.replace(b"/MediaBox", b"/Annots[<</S/JavaScript/JS(app.alert(1))>>]/MediaBox")
    assert "pdf_active_content" in rules(body)
    html = samples.PDF_BYTES.replace(b"endobj\n2 0 obj", b"endobj\n%<iframe src=x>\n2 0 obj")
    [(rule, message)] = pdf.check(html)
    assert rule == "pdf_active_content" and "<iframe" in message
    launch = samples.PDF_BYTES.replace(b"/Type/Catalog", b"/Type/Catalog/OpenAction<</S/Launch/F(cmd.exe)>>")
    assert rules(launch) == ["pdf_active_content"]
    hidden = samples.PDF_BYTES.replace(b"/Type/Catalog", b"/Type/Catalog/OpenAction<</S/J#61vaScript>>")
    assert rules(hidden) == ["pdf_active_content"]  # a name spelled with #xx escapes is the same name


def test_compressed_stream_bytes_are_not_read_as_markup() -> None:
    """Encoded (``/Filter``) stream bodies are noise, not text: ``<svg`` in them is no tag (past
    the first kilobyte, which is always read whole)."""
    noise = zlib.compress(bytes(range(256)) * 8) + b"\x01" * 1200 + b"<svg" + b"\x00" * 10
    stream = b"4 0 obj<</Length %d/Filter/FlateDecode>>stream\n" % len(noise) + noise + b"\nendstream endobj\n"
    data = samples.PDF_BYTES.replace(b"xref\n", stream + b"xref\n", 1)
    assert "pdf_active_content" not in rules(data)
    # the same bytes in a plain (unencoded) stream are markup
    plain = data.replace(b"/Filter/FlateDecode", b"")
    assert "pdf_active_content" in rules(plain)


def test_validation_names_the_field_and_rule() -> None:
    payload = samples.lab()
    payload["labmaster"]["pdf"] = base64.b64encode(FAKES["html after the header"]).decode()
    report, problems = validate_report("lab", payload, max_pdf_bytes=1 << 20)
    assert report is None
    assert {(p.field, p.rule) for p in problems} == {("labmaster.pdf", "pdf_structure"), ("labmaster.pdf", "pdf_active_content")}
    assert all(p.message for p in problems)
