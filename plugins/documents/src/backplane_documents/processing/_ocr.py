"""The OCR process: rasterise and recognise pages of one document under resource limits.

Started by :func:`backplane_documents.processing.ocr.recognise` as ``python -m
backplane_documents.processing._ocr MEMORY_BYTES CONFIG_JSON``, the way the kernel runs an
uploaded model's trial and a training fit: ``RLIMIT_AS`` is set before Pillow, pypdfium2,
OpenCV or onnxruntime is imported, so a page that decodes into gigabytes fails alone, and the
parent kills the process when its time is up. The protocol:

* stdin: the document's bytes (a PDF or an image), then EOF;
* stdout: one JSON line per page, ``{"page": INDEX, "text": "...", "confidence": 0.97}``, as
  pages are done (the parent relays progress), then one verdict, ``{"ok": true}`` or
  ``{"ok": false, "kind": "memory" | "pixels" | "failed", "error": "..."}``.

The models are rapidocr_onnxruntime's own, inside its package: nothing is downloaded.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from typing import Any

_OOM_MARKERS = (
    "bad_alloc",
    "failed to allocate",
    "out of memory",
    "memoryerror",
    "failed to map segment",
    "cannot allocate memory",
)


def _emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def _limit_resources(memory_bytes: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        memory_bytes = min(memory_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def _failure(exc: BaseException) -> dict[str, Any]:
    from PIL import Image

    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return {"ok": False, "kind": "pixels", "error": text[:2000]}
    memory = isinstance(exc, MemoryError) or any(m in text.lower() for m in _OOM_MARKERS)
    return {"ok": False, "kind": "memory" if memory else "failed", "error": text[:2000]}


def _pdf_pages(data: bytes, pages: list[int], dpi: int, max_pixels: int) -> Iterator[Any]:
    import pypdfium2

    document = pypdfium2.PdfDocument(data)
    try:
        for index in pages:
            page = document[index]
            width, height = page.get_size()  # points
            scale = dpi / 72
            if width * height * scale * scale > max_pixels:  # an outsized page: fewer dpi
                scale = (max_pixels / (width * height)) ** 0.5
            yield page.render(scale=scale, grayscale=True).to_pil()
            page.close()
    finally:
        document.close()


def _image_pages(data: bytes, pages: list[int]) -> Iterator[Any]:
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as image:
        for index in pages:
            image.seek(index)
            frame = ImageOps.exif_transpose(image.convert("RGB"))
            yield frame


def _reading_order(boxes: list[tuple[float, float, float, str, float]]) -> tuple[str, float]:
    """Lines of text from recognised boxes ``(top, bottom, left, text, score)``: boxes whose
    vertical middles fall inside one another's extent form a line, read left to right."""
    lines: list[list[tuple[float, float, float, str, float]]] = []
    for box in sorted(boxes, key=lambda b: (b[0] + b[1]) / 2):
        middle = (box[0] + box[1]) / 2
        if lines and lines[-1][0][0] <= middle <= lines[-1][0][1]:
            lines[-1].append(box)
        else:
            lines.append([box])
    text = "\n".join(" ".join(b[3] for b in sorted(line, key=lambda b: b[2])) for line in lines)
    scores = [b[4] for b in boxes]
    return text, (sum(scores) / len(scores) if scores else 1.0)


def _recognise(data: bytes, config: dict[str, Any]) -> None:
    import numpy as np
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = int(config["max_pixels"])
    import warnings

    warnings.simplefilter("error", Image.DecompressionBombWarning)
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR()
    pages: list[int] = config["pages"]
    if config["kind"] == "pdf":
        images = _pdf_pages(data, pages, int(config["dpi"]), int(config["max_pixels"]))
    else:
        images = _image_pages(data, pages)
    for index, image in zip(pages, images, strict=False):
        result, _elapsed = engine(np.asarray(image.convert("RGB")))
        boxes = []
        for points, text, score in result or []:
            ys = [p[1] for p in points]
            boxes.append((min(ys), max(ys), min(p[0] for p in points), str(text), float(score)))
        text, confidence = _reading_order(boxes)
        _emit({"page": index, "text": text, "confidence": round(confidence, 4)})


def main(argv: list[str]) -> int:
    """Run the OCR; the exit status is 0 whenever a verdict was written to stdout."""
    memory_bytes, config = int(argv[0]), json.loads(argv[1])
    _limit_resources(memory_bytes)
    try:
        _recognise(sys.stdin.buffer.read(), config)
        result: dict[str, Any] = {"ok": True}
    except BaseException as exc:  # noqa: BLE001  (anything here is reported, not raised)
        result = _failure(exc)
    _emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
