"""The trial process: load and run one untrusted ONNX model under a memory limit.

Started by :func:`backplane.inference.validation.run_trial` as
``python -m backplane.inference._trial MEMORY_BYTES RUN``; never imported by the server for
anything but the datatype table below. The protocol, on purpose tiny:

* stdin: the model bytes, then EOF;
* stdout: ``ready`` once onnxruntime is imported and the bytes are read (the parent starts the
  trial clock then), followed by one JSON line: ``{"ok": true, "inputs": [...], "outputs":
  [...], "resident_bytes": N}`` with each tensor as ``{"name", "type", "shape"}`` in
  onnxruntime's own terms and ``resident_bytes`` the resident memory (``VmRSS``) the session
  added by the time it was loaded and run (null where ``/proc`` does not tell), or
  ``{"ok": false, "kind": "memory" | "failed" | "unsupported-io", "error": "..."}``.

The address-space limit is set before onnxruntime (or numpy) is imported, so every allocation
the model causes, including the copies onnxruntime makes while loading, counts against it.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Final

# onnxruntime's type string -> (numpy dtype used for the trial input, V2 datatype)
ORT_TYPES: Final[dict[str, tuple[str, str]]] = {
    "tensor(float)": ("float32", "FP32"),
    "tensor(double)": ("float64", "FP64"),
    "tensor(float16)": ("float16", "FP16"),
    "tensor(int8)": ("int8", "INT8"),
    "tensor(int16)": ("int16", "INT16"),
    "tensor(int32)": ("int32", "INT32"),
    "tensor(int64)": ("int64", "INT64"),
    "tensor(uint8)": ("uint8", "UINT8"),
    "tensor(uint16)": ("uint16", "UINT16"),
    "tensor(uint32)": ("uint32", "UINT32"),
    "tensor(uint64)": ("uint64", "UINT64"),
    "tensor(bool)": ("bool", "BOOL"),
    "tensor(string)": ("object", "BYTES"),
}

_OOM_MARKERS: Final = ("bad_alloc", "failed to allocate", "out of memory", "memoryerror")


def _emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def _failure(exc: BaseException) -> dict[str, Any]:
    text = f"{type(exc).__name__}: {exc}"
    memory = isinstance(exc, MemoryError) or any(m in text.lower() for m in _OOM_MARKERS)
    return {"ok": False, "kind": "memory" if memory else "failed", "error": text[:2000]}


def _limit_resources(memory_bytes: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        memory_bytes = min(memory_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def _describe(args: Any) -> list[dict[str, Any]]:
    return [{"name": a.name, "type": a.type, "shape": list(a.shape or [])} for a in args]


def _load_and_run(data: bytes, run: bool) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort

    from backplane.inference.sessions import single_threaded

    before = _resident_bytes()

    options = single_threaded(ort)
    options.log_severity_level = 3  # errors only: warnings would just fill the stderr pipe
    options.add_session_config_entry("session.load_model_format", "ONNX")
    session = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    inputs, outputs = _describe(session.get_inputs()), _describe(session.get_outputs())
    for kind, tensors in (("input", inputs), ("output", outputs)):
        for tensor in tensors:
            if tensor["type"] not in ORT_TYPES:
                return {
                    "ok": False,
                    "kind": "unsupported-io",
                    "error": f"{kind} {tensor['name']!r} has type {tensor['type']}",
                }
    if run:
        feeds = {}
        for tensor in inputs:
            shape = tuple(d if isinstance(d, int) and d >= 0 else 1 for d in tensor["shape"])
            dtype = ORT_TYPES[tensor["type"]][0]
            fill: Any = "" if dtype == "object" else 0
            feeds[tensor["name"]] = np.full(shape, fill, dtype=dtype)
        session.run(None, feeds)
    # Measured while the session is alive: what loading (and running) it added.
    after = _resident_bytes()
    added = None if after is None or before is None else max(0, after - before)
    return {"ok": True, "inputs": inputs, "outputs": outputs, "resident_bytes": added}


def _resident_bytes() -> int | None:
    """This process's resident memory (``VmRSS``), None where ``/proc`` does not tell."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def main(argv: list[str]) -> int:
    """Run the trial; the exit status is 0 whenever a verdict was written to stdout."""
    memory_bytes, run = int(argv[0]), argv[1] == "1"
    _limit_resources(memory_bytes)
    try:
        import numpy  # noqa: F401  (imported under the limit, before the clock starts)
        import onnxruntime  # noqa: F401

        data = sys.stdin.buffer.read()
    except BaseException as exc:  # noqa: BLE001  (anything here is reported, not raised)
        _emit(_failure(exc))
        return 0
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    try:
        result = _load_and_run(data, run)
    except BaseException as exc:  # noqa: BLE001  (onnxruntime raises its own exception types)
        result = _failure(exc)
    _emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
