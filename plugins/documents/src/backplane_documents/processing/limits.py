"""The limits an extraction runs under, and the refusal it raises when one is hit.

One struct, embedded in the plugin's settings as ``processing`` so that every limit is an
explicit, configurable setting (``BACKPLANE_DOCUMENTS__PROCESSING__...``). The defaults fit a
2-CPU machine serving ordinary office documents: an A4 scan at 200 dpi is ~4 MP, far from the
pixel cap, and OCR of one such page takes 1-3 s.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

_MIB: Final = 1 << 20

Positive = Annotated[int, msgspec.Meta(gt=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]


class ProcessingLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What one document may cost to extract; every breach is a clear 4xx (or a per-file
    error in a bulk job), never a stuck worker."""

    max_bytes: Positive = 50 * _MIB
    """Largest accepted upload (it is also passed to the files service as its own cap)."""
    max_pages: Positive = 10_000
    """Most pages (PDF pages, image frames) one document may have."""
    max_ocr_pages: Positive = 50
    """Most pages of one document that may need OCR (scans are slow: ~2 s a page)."""
    max_image_pixels: Positive = 40_000_000
    """Largest image (width x height) decoded: Pillow's decompression-bomb guard is set to
    this, so a tiny PNG that claims 100,000 x 100,000 pixels is refused before decoding."""
    render_dpi: Annotated[int, msgspec.Meta(ge=72, le=600)] = 200
    """Resolution at which a PDF page without a text layer is rasterised for OCR."""
    ocr_time_limit_s: PositiveFloat = 120.0
    """Wall-clock limit for the OCR process of one document; it is killed after that."""
    ocr_memory_bytes: Positive = 2048 * _MIB
    """Address-space limit (``RLIMIT_AS``) of the OCR process: onnxruntime and OpenCV map
    several hundred MiB before the first page."""
    max_text_chars: Positive = 5_000_000
    """Most characters of text kept from one document (a guard on stored results)."""


class ExtractionError(ValueError):
    """A document that cannot be extracted within the rules; ``message`` says why and
    ``status_code`` is the HTTP status it becomes."""

    def __init__(self, message: str, *, status_code: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code

    def __str__(self) -> str:
        return self.message
