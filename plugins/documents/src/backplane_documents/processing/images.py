"""Checking an uploaded image before anything decodes its pixels.

Pillow reads only the header on ``open``: the size and frame count are known without decoding,
so an image claiming more than ``max_image_pixels`` (a decompression bomb: a few KiB of PNG that
inflate to gigabytes) is refused here, and the OCR process enforces the same cap again through
``Image.MAX_IMAGE_PIXELS`` when it decodes.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from backplane_documents.processing.limits import ExtractionError, ProcessingLimits

OCR_IMAGE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/tiff", "image/webp", "image/bmp", "image/x-ms-bmp"}
)
"""Image types read by OCR (as the files service sniffs them from the bytes)."""


def image_frames(data: bytes, limits: ProcessingLimits) -> int:
    """How many frames (pages) the image has; :class:`ExtractionError` if it is unreadable,
    too large in pixels or has too many frames."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ExtractionError(
            f"the image is too large: {exc}; documents.processing.max_image_pixels is "
            f"{limits.max_image_pixels}",
            status_code=413,
        ) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ExtractionError(f"the file is not a readable image ({exc})") from None
    with image:
        width, height = image.size
        frames = int(getattr(image, "n_frames", 1))
    if width * height > limits.max_image_pixels:
        raise ExtractionError(
            f"the image is {width} x {height} pixels ({width * height}); "
            f"documents.processing.max_image_pixels is {limits.max_image_pixels}",
            status_code=413,
        )
    if frames > limits.max_ocr_pages:
        raise ExtractionError(
            f"the image has {frames} frames; documents.processing.max_ocr_pages is "
            f"{limits.max_ocr_pages}",
            status_code=413,
        )
    return frames
