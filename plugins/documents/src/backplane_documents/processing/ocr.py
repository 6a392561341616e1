"""OCR of scanned pages and images, in a child process under a memory and a time limit.

Why a process: OCR decodes untrusted images (a decompression bomb, a PDF page of absurd size)
and runs two neural networks; doing that in the server would let one upload take the server's
memory or a worker's time. The child (:mod:`._ocr`) sets ``RLIMIT_AS`` before importing
anything heavy, and is killed once ``ocr_time_limit_s`` has passed, like the kernel's model trial
and training fit. rapidocr_onnxruntime ships its ONNX models (PP-OCRv4 detection and
recognition) inside its wheel, so nothing is fetched at run time.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import msgspec

from backplane_documents.processing.limits import ExtractionError, ProcessingLimits


class RecognisedPage(msgspec.Struct, frozen=True):
    text: str
    confidence: float


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MALLOC_ARENA_MAX="2")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def recognise(
    data: bytes,
    kind: Literal["pdf", "image"],
    pages: list[int],
    limits: ProcessingLimits,
    progress: Callable[[int], None] | None = None,
) -> dict[int, RecognisedPage]:
    """The text of ``pages`` (0-based indices) of a PDF or a (multi-frame) image.

    ``progress(done)`` is called as each page finishes. :class:`ExtractionError` when the
    process runs out of time or memory, or the page has too many pixels."""
    if not pages:
        return {}
    config = {
        "kind": kind,
        "pages": pages,
        "dpi": limits.render_dpi,
        "max_pixels": limits.max_image_pixels,
    }
    command = [
        sys.executable,
        "-m",
        "backplane_documents.processing._ocr",
        str(limits.ocr_memory_bytes),
        json.dumps(config),
    ]
    found: dict[int, RecognisedPage] = {}
    verdict: dict[str, object] = {}
    timed_out = threading.Event()
    with (
        tempfile.TemporaryDirectory(prefix="backplane-ocr-") as workdir,
        (Path(workdir) / "stderr").open("w+b") as errors,
    ):
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            cwd=workdir,
            env=_child_env(),
            start_new_session=True,
        )

        def kill() -> None:
            timed_out.set()
            process.kill()

        timer = threading.Timer(limits.ocr_time_limit_s, kill)
        timer.start()
        writer = threading.Thread(target=_feed, args=(process, data), daemon=True)
        writer.start()
        try:
            assert process.stdout is not None
            for line in process.stdout:
                if not line.startswith(b"{"):
                    continue
                message = json.loads(line)
                if "page" in message:
                    found[int(message["page"])] = RecognisedPage(
                        str(message["text"]), float(message["confidence"])
                    )
                    if progress is not None:
                        progress(len(found))
                else:
                    verdict = message
            process.wait()
        finally:
            timer.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
            writer.join(timeout=5)
            if process.stdout is not None:
                process.stdout.close()
        errors.seek(max(errors.seek(0, 2) - 4000, 0))
        tail = " ".join(errors.read().decode("utf-8", "replace").split())[-500:]
    _judge(verdict, timed_out.is_set(), process.returncode, tail, limits)
    missing = sorted(set(pages) - set(found))
    if missing:
        raise ExtractionError(f"OCR returned no text for page {missing[0] + 1}")
    return found


def _feed(process: subprocess.Popen[bytes], data: bytes) -> None:
    assert process.stdin is not None
    with contextlib.suppress(BrokenPipeError, ConnectionResetError, OSError):
        process.stdin.write(data)
    with contextlib.suppress(OSError):
        process.stdin.close()


def _judge(
    verdict: dict[str, object], timed_out: bool, code: int, tail: str, limits: ProcessingLimits
) -> None:
    if timed_out:
        raise ExtractionError(
            f"OCR took longer than documents.processing.ocr_time_limit_s "
            f"({limits.ocr_time_limit_s:g} s) and was stopped",
            status_code=422,
        )
    if verdict.get("ok") is True:
        return
    kind, error = verdict.get("kind"), str(verdict.get("error", ""))
    if not verdict and ("MemoryError" in tail or "bad_alloc" in tail):
        kind, error = "memory", tail
    if kind == "memory":
        raise ExtractionError(
            f"OCR needed more than documents.processing.ocr_memory_bytes "
            f"({limits.ocr_memory_bytes}) of memory: {error}",
            status_code=413,
        )
    if kind == "pixels":
        raise ExtractionError(
            f"the image has more pixels than documents.processing.max_image_pixels "
            f"({limits.max_image_pixels}): {error}",
            status_code=413,
        )
    if not verdict:
        how = f"signal {-code}" if code < 0 else f"status {code}"
        raise ExtractionError(f"the OCR process ended with {how} without a verdict: {tail}")
    raise ExtractionError(f"OCR failed: {error}")
