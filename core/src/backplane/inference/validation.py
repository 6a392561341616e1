"""Validation of untrusted ONNX uploads, before anything stores or serves them.

:func:`validate_onnx` (blocking: call it in a worker thread) runs the rules in the order of
:data:`RULES`; the first one broken raises :class:`ModelRejected`, whose ``rule`` is a stable
code. The static rules (:func:`check_static`) work on the bytes alone and never open a path
named in the model; the trial (:func:`run_trial`) loads and runs the model once in a separate
process (``python -m backplane.inference._trial``) under an address-space limit and a
wall-clock timeout, and reads the model's input/output signature from it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import selectors
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

import msgspec

from backplane.inference._validation_static import check_static
from backplane.inference.limits import ModelRejected, StaticReport, ValidationLimits, reject
from backplane.models import TensorSpec

__all__ = [
    "RULES",
    "ModelRejected",
    "ModelSignature",
    "StaticReport",
    "TensorSpec",
    "ValidatedModel",
    "ValidationLimits",
    "check_static",
    "run_trial",
    "run_trial_measured",
    "validate_onnx",
]

#: Every rule, in the order the checks run: stable code -> what breaking it means.
RULES: Final[dict[str, str]] = {
    "file-too-large": "the file is larger than the upload size cap",
    "unparseable": "the bytes are not a serialized ONNX model",
    "external-data": "a tensor refers to data outside the file (anywhere in the model)",
    "custom-op-domain": "an operator set or node domain is not on the allowlist",
    "too-many-nodes": "the graph, subgraphs and functions hold more nodes than allowed",
    "too-deep": "subgraphs (If/Loop/Scan bodies) nest deeper than allowed",
    "initializer-too-large": "embedded tensor data is larger than allowed",
    "shape-bomb": "a constant or declared shape has more elements than allowed",
    "checker": "onnx.checker's full check failed",
    "trial-timeout": "loading and running the model once took too long",
    "trial-memory": "loading and running the model once needed too much memory",
    "trial-failed": "onnxruntime could not load or run the model",
    "unsupported-io": "an input or output is not a tensor of a V2 datatype",
}


class ModelSignature(msgspec.Struct, frozen=True):
    """The inputs and outputs onnxruntime reports for the model."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def dynamic_batch(self) -> bool:
        """Whether every input has a dynamic first dimension, so requests can be batched."""
        return bool(self.inputs) and all(s.shape and s.shape[0] == -1 for s in self.inputs)


class ValidatedModel(msgspec.Struct, frozen=True, kw_only=True):
    """A model that passed every rule, with what the registry needs to know about it."""

    sha256: str
    size: int
    ir_version: int
    opset_imports: dict[str, int]
    node_count: int
    signature: ModelSignature
    dynamic_batch: bool
    resident_bytes: int | None = None
    """Resident memory the trial's onnxruntime session added once loaded (and run once on a
    one-row input when the trial runs it): what the model costs a server to keep loaded, as
    measured in the trial process; None where the platform does not tell."""


class TrialResult(msgspec.Struct, frozen=True, kw_only=True):
    """What the trial process found: the signature and the resident memory the session added."""

    signature: ModelSignature
    resident_bytes: int | None = None


def validate_onnx(data: bytes, limits: ValidationLimits | None = None) -> ValidatedModel:
    """Check `data` against every rule; blocking (it waits for the trial process)."""
    limits = limits or ValidationLimits()
    report = check_static(data, limits)
    trial = run_trial_measured(data, limits)
    signature = trial.signature
    return ValidatedModel(
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        ir_version=report.ir_version,
        opset_imports=report.opset_imports,
        node_count=report.node_count,
        signature=signature,
        dynamic_batch=signature.dynamic_batch,
        resident_bytes=trial.resident_bytes,
    )


class _TrialTensor(msgspec.Struct):
    name: str
    type: str
    shape: list[int | str | None]


class _TrialVerdict(msgspec.Struct):
    ok: bool
    kind: str = ""
    error: str = ""
    inputs: list[_TrialTensor] = []
    outputs: list[_TrialTensor] = []
    resident_bytes: int | None = None


_OUTPUT_CAP: Final = 16 << 20


def _trial_env() -> dict[str, str]:
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])  # the directory holding `backplane`
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env.update(OMP_NUM_THREADS="1", MALLOC_ARENA_MAX="2", PYTHONDONTWRITEBYTECODE="1")
    return env


def _communicate(
    process: subprocess.Popen[bytes], data: bytes, limits: ValidationLimits
) -> tuple[bytes, bytes, str | None]:
    """Feed stdin, collect stdout/stderr; return them and which deadline passed, if any."""
    assert process.stdin is not None  # the three pipes were requested
    assert process.stdout is not None
    assert process.stderr is not None
    stdin, stdout, stderr = (p.fileno() for p in (process.stdin, process.stdout, process.stderr))
    chunks: dict[int, list[bytes]] = {stdout: [], stderr: []}
    view, offset = memoryview(data), 0
    deadline, phase = time.monotonic() + limits.trial_startup_seconds, "startup"
    with selectors.DefaultSelector() as selector:
        os.set_blocking(stdin, False)
        selector.register(stdin, selectors.EVENT_WRITE)
        selector.register(stdout, selectors.EVENT_READ)
        selector.register(stderr, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return b"".join(chunks[stdout]), b"".join(chunks[stderr]), phase
            for key, _events in selector.select(remaining):
                fd = int(key.fd)
                if fd == stdin:
                    try:
                        offset += os.write(fd, view[offset : offset + 65536])
                    except BrokenPipeError:
                        offset = len(data)
                    if offset >= len(data):
                        selector.unregister(fd)
                        process.stdin.close()
                    continue
                block = os.read(fd, 65536)
                if not block or sum(map(len, chunks[fd])) > _OUTPUT_CAP:
                    selector.unregister(fd)
                    continue
                chunks[fd].append(block)
                if phase == "startup" and fd == stdout and b"ready\n" in b"".join(chunks[fd]):
                    deadline, phase = time.monotonic() + limits.trial_timeout_seconds, "trial"
    return b"".join(chunks[stdout]), b"".join(chunks[stderr]), None


def _spec(tensor: _TrialTensor) -> TensorSpec:
    from backplane.inference._trial import ORT_TYPES

    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in tensor.shape)
    return TensorSpec(tensor.name, ORT_TYPES[tensor.type][1], shape)


def run_trial(data: bytes, limits: ValidationLimits) -> ModelSignature:
    """Load (and run once) the model in a resource-limited subprocess, started in an empty
    temporary directory and killed when a deadline passes; return its signature."""
    return run_trial_measured(data, limits).signature


def run_trial_measured(data: bytes, limits: ValidationLimits) -> TrialResult:
    """:func:`run_trial`, with the resident memory the trial's session added."""
    args = [str(limits.trial_memory_bytes), "1" if limits.trial_run else "0"]
    command = [sys.executable, "-m", "backplane.inference._trial", *args]
    with tempfile.TemporaryDirectory(prefix="backplane-trial-") as workdir:
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=workdir,
            env=_trial_env(),
            start_new_session=True,
        )
        try:
            out, err, expired = _communicate(process, data, limits)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            for pipe in (process.stdin, process.stdout, process.stderr):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
    if expired == "trial":
        raise reject(
            "trial-timeout",
            f"loading and running the model once took longer than "
            f"{limits.trial_timeout_seconds:g} s; the trial was killed",
        )
    if expired == "startup":
        raise reject(
            "trial-timeout",
            f"the trial process did not start within {limits.trial_startup_seconds:g} s",
        )
    return _verdict(out, err, process.returncode, limits)


def _verdict(out: bytes, err: bytes, returncode: int, limits: ValidationLimits) -> TrialResult:
    lines = [line for line in out.splitlines() if line.startswith(b"{")]
    if not lines:
        tail = " ".join(err.decode("utf-8", "replace").split())[-500:]
        how = f"signal {-returncode}" if returncode < 0 else f"status {returncode}"
        rule = "trial-memory" if "bad_alloc" in tail or "MemoryError" in tail else "trial-failed"
        raise reject(rule, f"the trial process ended with {how} without a verdict: {tail}")
    try:
        verdict = msgspec.json.decode(lines[-1], type=_TrialVerdict)
    except msgspec.DecodeError as exc:
        raise reject("trial-failed", f"unreadable trial verdict ({exc})") from None
    if verdict.ok:
        signature = ModelSignature(
            inputs=tuple(_spec(t) for t in verdict.inputs),
            outputs=tuple(_spec(t) for t in verdict.outputs),
        )
        return TrialResult(signature=signature, resident_bytes=verdict.resident_bytes)
    if verdict.kind == "memory":
        raise reject(
            "trial-memory",
            f"the model needed more than {limits.trial_memory_bytes} bytes of address space "
            f"to load and run once: {verdict.error}",
        )
    if verdict.kind == "unsupported-io":
        raise reject(
            "unsupported-io", f"{verdict.error}; only tensors of V2 datatypes can be served"
        )
    raise reject("trial-failed", f"onnxruntime could not load or run the model: {verdict.error}")
