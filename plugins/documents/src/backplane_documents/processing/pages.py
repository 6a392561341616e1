"""How many pages a document has, cheaply: what is metered before the work starts."""

from __future__ import annotations

from backplane_documents.processing.extract import DOCX, PDF
from backplane_documents.processing.images import OCR_IMAGE_TYPES, image_frames
from backplane_documents.processing.limits import ExtractionError, ProcessingLimits
from backplane_documents.processing.pdf import page_count


def count_pages(data: bytes, media_type: str, limits: ProcessingLimits) -> int:
    """PDF pages, image frames, or 1 for a DOCX (its explicit page breaks are known only once
    it is read). ExtractionError (415) for a type that cannot be processed."""
    if media_type == PDF:
        return page_count(data, limits)
    if media_type in OCR_IMAGE_TYPES:
        return image_frames(data, limits)
    if media_type == DOCX:
        return 1
    from backplane_documents.processing.extract import SUPPORTED_TYPES

    raise ExtractionError(
        f"documents of type {media_type} cannot be processed; supported: "
        + ", ".join(sorted(SUPPORTED_TYPES)),
        status_code=415,
    )
