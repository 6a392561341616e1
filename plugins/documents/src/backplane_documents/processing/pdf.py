"""PDF text layers with pypdf (pure Python, maintained, with its own decompression limits).

A page whose text layer is empty is reported as needing OCR: scanned pages are images with no
text objects. Text is returned as pypdf lays it out, with trailing spaces stripped from each
line (pypdf keeps the space where a paragraph wrapped), so a page typeset from known lines comes
back as exactly those lines.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

import pypdf
from pypdf.errors import PdfReadError, PyPdfError

from backplane_documents.processing.limits import ExtractionError, ProcessingLimits


def clean_lines(text: str) -> str:
    """``text`` without trailing whitespace on any line nor blank lines at either end."""
    return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")


def open_pdf(data: bytes, limits: ProcessingLimits) -> pypdf.PdfReader:
    """A reader of ``data``; :class:`ExtractionError` for an encrypted, broken or too long PDF."""
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise ExtractionError("the PDF is encrypted: upload it without a password")
        count = len(reader.pages)
    except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError) as exc:
        raise ExtractionError(f"the file is not a readable PDF ({exc})") from None
    if count > limits.max_pages:
        raise ExtractionError(
            f"the PDF has {count} pages; documents.processing.max_pages is {limits.max_pages}",
            status_code=413,
        )
    if count == 0:
        raise ExtractionError("the PDF has no pages")
    return reader


def page_texts(
    reader: pypdf.PdfReader, start: int = 0, stop: int | None = None
) -> Iterator[tuple[int, str]]:
    """``(index, text)`` of pages ``[start, stop)`` of the text layer ('' where there is none)."""
    stop = len(reader.pages) if stop is None else min(stop, len(reader.pages))
    for index in range(start, stop):
        try:
            text = reader.pages[index].extract_text()
        except (PyPdfError, ValueError, KeyError, TypeError, ZeroDivisionError) as exc:
            raise ExtractionError(f"page {index + 1} of the PDF is damaged ({exc})") from None
        yield index, clean_lines(text)


def text_layer(
    data: bytes, limits: ProcessingLimits, progress: Callable[[int], None] | None = None
) -> list[str]:
    """Every page's text layer ('' for a page without one)."""
    reader = open_pdf(data, limits)
    texts: list[str] = []
    for index, text in page_texts(reader):
        texts.append(text)
        if progress is not None:
            progress(index + 1)
    return texts
