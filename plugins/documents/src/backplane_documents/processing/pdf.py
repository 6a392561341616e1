"""PDF text layers with pdfium (pypdfium2: Chrome's PDF engine, wheel-only, no system library).

Why pdfium and not a pure-Python reader: it opens a document lazily (a 10,000-page PDF opens in
~30 ms; pypdf flattens the whole page tree first, seconds for the same file, which a bulk job's
every chunk would pay again), reads text about ten times faster, and is the engine that also
rasterises pages for OCR, so one parser sees every PDF. pdfium is not thread-safe: every call
here holds one process-wide lock (the OCR process has its own pdfium).

A page whose text layer is empty is reported as needing OCR: scanned pages are images with no
text objects. Text comes as pdfium lays it out, with ``\\r\\n`` made ``\\n`` and trailing spaces
stripped from each line, so a page typeset from known lines comes back as exactly those lines.
"""

from __future__ import annotations

import threading

import pypdfium2
from pypdfium2 import PdfiumError

from backplane_documents.processing.limits import ExtractionError, ProcessingLimits

PDFIUM_LOCK = threading.Lock()
"""Serialises pdfium in this process (its global state is not thread-safe)."""


def clean_lines(text: str) -> str:
    """``text`` without trailing whitespace on any line nor blank lines at either end."""
    return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")


def _open(data: bytes, limits: ProcessingLimits) -> pypdfium2.PdfDocument:
    try:
        document = pypdfium2.PdfDocument(data)
    except PdfiumError as exc:
        if "password" in str(exc).lower():
            raise ExtractionError("the PDF is encrypted: upload it without a password") from None
        raise ExtractionError(f"the file is not a readable PDF ({exc})") from None
    count = len(document)
    if count > limits.max_pages:
        document.close()
        raise ExtractionError(
            f"the PDF has {count} pages; documents.processing.max_pages is {limits.max_pages}",
            status_code=413,
        )
    if count == 0:
        document.close()
        raise ExtractionError("the PDF has no pages")
    return document


def page_count(data: bytes, limits: ProcessingLimits) -> int:
    """The PDF's pages; :class:`ExtractionError` for an encrypted, broken or too long PDF."""
    with PDFIUM_LOCK:
        document = _open(data, limits)
        try:
            return len(document)
        finally:
            document.close()


def page_texts(
    data: bytes, limits: ProcessingLimits, start: int = 0, stop: int | None = None
) -> tuple[int, dict[int, str]]:
    """The PDF's page count, and the text layer of pages ``[start, stop)`` by 0-based index
    ('' where a page has none)."""
    texts: dict[int, str] = {}
    with PDFIUM_LOCK:
        document = _open(data, limits)
        try:
            count = len(document)
            for index in range(start, count if stop is None else min(stop, count)):
                texts[index] = _page_text(document, index)
        finally:
            document.close()
    return count, texts


def _page_text(document: pypdfium2.PdfDocument, index: int) -> str:
    try:
        page = document[index]
        try:
            textpage = page.get_textpage()
            try:
                raw = textpage.get_text_range()
            finally:
                textpage.close()
        finally:
            page.close()
    except PdfiumError as exc:
        raise ExtractionError(f"page {index + 1} of the PDF is damaged ({exc})") from None
    return clean_lines(raw.replace("\r\n", "\n").replace("\x00", ""))
