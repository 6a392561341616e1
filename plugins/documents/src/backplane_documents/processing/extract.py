"""One entry point: the text of a document, whatever its type.

``extract`` is pure (no database, no network) and synchronous: routes and tasks call it in a
worker thread. The media type is the one the kernel's files service sniffed from the bytes when
the upload was stored, never the client's word.
"""

from __future__ import annotations

from collections.abc import Callable

from backplane_documents.processing.docx import docx_pages
from backplane_documents.processing.images import OCR_IMAGE_TYPES, image_frames
from backplane_documents.processing.limits import ExtractionError, ProcessingLimits
from backplane_documents.processing.ocr import recognise
from backplane_documents.processing.pdf import page_texts
from backplane_documents.processing.results import Extraction, PageText

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
SUPPORTED_TYPES = frozenset({PDF, DOCX} | OCR_IMAGE_TYPES)
"""Media types :func:`extract` reads."""

Progress = Callable[[int, int], None]
"""``progress(done, total)``: pages finished so far, out of the document's pages."""


def extract(
    data: bytes,
    media_type: str,
    limits: ProcessingLimits,
    *,
    ocr: bool = True,
    progress: Progress | None = None,
) -> Extraction:
    """The text of every page of ``data``.

    PDF pages use their text layer; pages without one, and images, go through OCR (unless
    ``ocr`` is False: their text is then ''). :class:`ExtractionError` for an unsupported type,
    a damaged file or a limit hit."""
    if len(data) > limits.max_bytes:
        raise ExtractionError(
            f"the file has {len(data)} bytes; documents.processing.max_bytes is {limits.max_bytes}",
            status_code=413,
        )
    if media_type == PDF:
        pages = _pdf(data, limits, ocr, progress)
    elif media_type == DOCX:
        pages = docx_pages(data, limits)
    elif media_type in OCR_IMAGE_TYPES:
        frames = image_frames(data, limits)
        found = _ocr(data, "image", list(range(frames)), limits, ocr, progress, 0, frames)
        pages = [
            PageText(number=i + 1, text=found[i][0], method="ocr", confidence=found[i][1])
            for i in range(frames)
        ]
    else:
        raise ExtractionError(
            f"documents of type {media_type} cannot be processed; supported: "
            + ", ".join(sorted(SUPPORTED_TYPES)),
            status_code=415,
        )
    if sum(len(page.text) for page in pages) > limits.max_text_chars:
        raise ExtractionError(
            f"the document holds more than documents.processing.max_text_chars "
            f"({limits.max_text_chars}) characters of text",
            status_code=413,
        )
    return Extraction(media_type=media_type, pages=pages)


def extract_pdf_pages(
    data: bytes, limits: ProcessingLimits, start: int, stop: int, *, ocr: bool = True
) -> list[PageText]:
    """Pages ``[start, stop)`` (0-based) of a PDF, as :func:`extract` reads them: what one
    chunk of a bulk job does."""
    return _pdf(data, limits, ocr, None, start, stop)


def _pdf(
    data: bytes,
    limits: ProcessingLimits,
    ocr: bool,
    progress: Progress | None,
    start: int = 0,
    stop: int | None = None,
) -> list[PageText]:
    count, texts = page_texts(data, limits, start, stop)
    stop = count if stop is None else min(stop, count)
    total = stop - start
    with_text = sum(1 for text in texts.values() if text)
    if progress is not None and with_text:
        progress(with_text, total)
    scanned = [index for index, text in texts.items() if not text] if ocr else []
    found = _ocr(data, "pdf", scanned, limits, ocr, progress, total - len(scanned), total)
    return [
        PageText(number=i + 1, text=texts[i], method="text-layer")
        if i not in found
        else PageText(number=i + 1, text=found[i][0], method="ocr", confidence=found[i][1])
        for i in range(start, stop)
    ]


def _ocr(
    data: bytes,
    kind: str,
    pages: list[int],
    limits: ProcessingLimits,
    enabled: bool,
    progress: Progress | None,
    done_before: int,
    total: int,
) -> dict[int, tuple[str, float | None]]:
    if not pages:
        return {}
    if not enabled:
        return {index: ("", None) for index in pages}
    if len(pages) > limits.max_ocr_pages:
        raise ExtractionError(
            f"{len(pages)} pages need OCR; documents.processing.max_ocr_pages is "
            f"{limits.max_ocr_pages}",
            status_code=413,
        )
    step = None if progress is None else (lambda done: progress(done_before + done, total))
    recognised = recognise(data, "pdf" if kind == "pdf" else "image", pages, limits, step)
    return {index: (page.text, page.confidence) for index, page in recognised.items()}
