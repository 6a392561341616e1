"""Acceptance 1: every engine renders the demo templates. PDFs are parsed back and their pages
counted with pypdf, DOCX files open with python-docx, HTML is escaped."""

from __future__ import annotations

import io

import pytest
from documents_helpers import demo, docx_text, snapshot
from pypdf import PdfReader

from backplane_documents.demo import demo_templates
from backplane_documents.fields import example_fields, parse_schema
from backplane_documents.rendering import RenderLimits, render

LIMITS = RenderLimits(timeout_s=30)
HOSTILE = 'Ada <script>alert(1)</script> & "Co" #emph[x] $x^2$ {{ 7*7 }}'


def pdf_text(content: bytes) -> tuple[int, str]:
    reader = PdfReader(io.BytesIO(content))
    return len(reader.pages), "\n".join(page.extract_text() for page in reader.pages)


def test_the_demo_covers_every_engine() -> None:
    assert {t.engine for t in demo_templates()} == {"typst", "html", "docx"}


@pytest.mark.parametrize("template", demo_templates(), ids=lambda t: t.name)
def test_each_demo_template_renders_with_its_examples(template: object) -> None:
    version = snapshot(template)  # type: ignore[arg-type]
    fields = example_fields(parse_schema(version.field_schema))
    rendered = render(version, fields, LIMITS)
    assert rendered.pages >= 1
    assert len(rendered.content) > 0
    if version.engine == "typst":
        assert rendered.media_type == "application/pdf"
        pages, text = pdf_text(rendered.content)
        assert pages == rendered.pages
    elif version.engine == "html":
        assert rendered.filename_ext == "html"
        text = rendered.content.decode("utf-8")
    else:
        assert rendered.filename_ext == "docx"
        text = docx_text(rendered.content)
    for value in fields.values():
        if isinstance(value, str) and "&" not in value and "<" not in value:
            assert value in text, (value, text[:500])


def test_the_typst_invoice_shows_data_as_text_and_computes_the_total() -> None:
    version = snapshot(demo("Invoice"))
    fields = {
        "number": "INV-1",
        "issued_on": "2026-12-05",
        "customer": HOSTILE,
        "lines": [
            {"description": "Tea", "quantity": 3, "unit_price": 2.5},
            {"description": "Cake", "quantity": 1, "unit_price": 4.25},
        ],
    }
    pages, text = pdf_text(render(version, fields, LIMITS).content)
    assert pages == 1
    flat = " ".join(text.split())
    # typst markup and Jinja2 syntax in the data are printed, not evaluated
    assert "#emph[x]" in flat
    assert "$x^2$" in flat
    assert "{{ 7*7 }}" in flat
    assert "<script>alert(1)</script>" in flat
    assert "11.75 EUR" in flat  # 3 * 2.50 + 4.25


def test_a_long_invoice_runs_over_several_pages_and_pypdf_counts_them() -> None:
    version = snapshot(demo("Invoice"))
    lines = [{"description": f"Item {n}", "quantity": 1, "unit_price": 1.0} for n in range(200)]
    fields = {"number": "INV-2", "issued_on": "2026-12-05", "customer": "Ada", "lines": lines}
    rendered = render(version, fields, LIMITS)
    pages, text = pdf_text(rendered.content)
    assert pages == rendered.pages > 1
    assert "Item 199" in text
    assert "200.00 EUR" in text


def test_html_is_escaped() -> None:
    version = snapshot(demo("Invoice (HTML)"))
    fields = {
        "number": "INV-3",
        "issued_on": "2026-12-05",
        "customer": HOSTILE,
        "lines": [{"description": "<b>bold</b>", "quantity": 2, "unit_price": 1.5}],
    }
    html = render(version, fields, LIMITS).content.decode("utf-8")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;Co&#34;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "{{ 7*7 }}" in html  # data is never evaluated as a template
    assert "3.00 EUR" in html


def test_docx_data_cannot_inject_wordprocessingml() -> None:
    version = snapshot(demo("Letter"))
    fields = {
        "recipient": 'Ada</w:t></w:r><w:r><w:t>injected & "quoted"',
        "address": "1 Main St",
        "sent_on": "2026-12-05",
        "body": HOSTILE,
        "sender": "Bob",
    }
    rendered = render(version, fields, LIMITS)
    text = docx_text(rendered.content)
    assert 'Dear Ada</w:t></w:r><w:r><w:t>injected & "quoted",' in text
    assert HOSTILE in text
    assert rendered.pages == 1


def test_page_counts_read_from_typst_s_page_tree_and_other_pdfs_through_pdfium() -> None:
    from pypdf import PdfWriter

    from backplane_documents.engines.typst_pdf import _PAGE_TREE, count_pdf_pages

    version = snapshot(demo("Invoice"))
    lines = [{"description": f"Item {n}", "quantity": 1, "unit_price": 1.0} for n in range(120)]
    fields = {"number": "INV-3", "issued_on": "2026-12-05", "customer": "Ada", "lines": lines}
    content = render(version, fields, LIMITS).content
    assert _PAGE_TREE.match(content) is not None  # typst's own page tree, first in the file
    assert count_pdf_pages(content) == pdf_text(content)[0] > 1
    writer = PdfWriter()  # another producer's layout: counted by pdfium
    for _ in range(3):
        writer.add_blank_page(width=200, height=200)
    other = io.BytesIO()
    writer.write(other)
    assert _PAGE_TREE.match(other.getvalue()) is None
    assert count_pdf_pages(other.getvalue()) == 3
