"""Documents made by the tests from known text: PDFs typeset by typst (a real text layer),
scans (a typeset page rasterised by pdfium, so no text layer survives) and DOCX files."""

from __future__ import annotations

import io
import json

import pypdfium2
import typst
from PIL import Image

PAGE = "#set page(width: 210mm, height: 297mm, margin: 2cm)\n#set text(size: {size}pt)\n"


def pdf_from_pages(pages: list[list[str]], size: int = 12) -> bytes:
    """A PDF whose page ``i`` holds ``pages[i]``, one paragraph a line (lines too short to
    wrap). The text reaches typst as data (``sys.inputs``), never as markup."""
    body = (
        '#let pages = json(bytes(sys.inputs.at("pages")))\n'
        "#for (i, lines) in pages.enumerate() {\n"
        "  if i > 0 { pagebreak() }\n"
        "  for line in lines { par(line) }\n"
        "}\n"
    )
    source = PAGE.format(size=size) + body
    return typst.compile(source.encode(), sys_inputs={"pages": json.dumps(pages)})


def scanned_image(lines: list[str], dpi: int = 200, size: int = 12) -> Image.Image:
    """The page typeset from ``lines``, rasterised: what a scanner would produce."""
    document = pypdfium2.PdfDocument(pdf_from_pages([lines], size=size))
    try:
        return document[0].render(scale=dpi / 72).to_pil().convert("L")
    finally:
        document.close()


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def scanned_pdf(images: list[Image.Image], dpi: int = 200) -> bytes:
    """A PDF of page images only (no text layer), as scanners write them."""
    out = io.BytesIO()
    images[0].save(out, format="PDF", resolution=dpi, save_all=True, append_images=images[1:])
    return out.getvalue()


def docx_bytes(paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    import docx

    document = docx.Document()
    for text in paragraphs:
        if text == "\f":
            document.add_page_break()
        else:
            document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
