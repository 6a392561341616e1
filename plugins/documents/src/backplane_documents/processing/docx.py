"""DOCX text and tables with python-docx.

The body is read in document order (paragraphs and tables interleaved, as a reader sees them);
a table's rows also appear in the page text, cells separated by tabs, so that anchors such as
"the text after 'Total:'" find values that sit in table cells. Pages are split at explicit page
breaks: Word's automatic pagination is a property of the renderer, not of the file.

A DOCX is a ZIP: its declared uncompressed size is checked before python-docx inflates any part
(a ZIP bomb is a few KiB that declare gigabytes).
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

from backplane_documents.processing.limits import ExtractionError, ProcessingLimits
from backplane_documents.processing.pdf import clean_lines
from backplane_documents.processing.results import PageText

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def _check_archive(data: bytes, limits: ProcessingLimits) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(item.file_size for item in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ExtractionError(f"the file is not a readable DOCX ({exc})") from None
    allowed = limits.max_bytes * 10
    if unpacked > allowed:
        raise ExtractionError(
            f"the DOCX unpacks to {unpacked} bytes, more than 10 x "
            f"documents.processing.max_bytes ({allowed})",
            status_code=413,
        )


def _paragraph_parts(paragraph: Any) -> list[str]:
    """The paragraph's text, split where it holds an explicit page break."""
    parts, current = [], []
    for node in paragraph._p.iter():
        if node.tag == f"{_W}t":
            current.append(node.text or "")
        elif node.tag == f"{_W}tab":
            current.append("\t")
        elif node.tag == f"{_W}br" and node.get(f"{_W}type") == "page":
            parts.append("".join(current))
            current = []
    parts.append("".join(current))
    return parts


def docx_pages(data: bytes, limits: ProcessingLimits) -> list[PageText]:
    """The document's pages (at explicit page breaks) with their text and tables."""
    _check_archive(data, limits)
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 (python-docx raises KeyError, lxml errors, ...)
        raise ExtractionError(f"the file is not a readable DOCX ({exc})") from None
    pages: list[tuple[list[str], list[list[list[str]]]]] = [([], [])]
    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            parts = _paragraph_parts(block)
            pages[-1][0].append(parts[0])
            for part in parts[1:]:
                pages.append(([part], []))
        elif isinstance(block, Table):
            rows = [[cell.text for cell in row.cells] for row in block.rows]
            pages[-1][1].append(rows)
            pages[-1][0].extend("\t".join(row) for row in rows)
        if len(pages) > limits.max_pages:
            raise ExtractionError(
                f"the DOCX has more than documents.processing.max_pages ({limits.max_pages}) pages",
                status_code=413,
            )
    return [
        PageText(number=n, text=clean_lines("\n".join(lines)), method="docx", tables=tables)
        for n, (lines, tables) in enumerate(pages, start=1)
    ]
