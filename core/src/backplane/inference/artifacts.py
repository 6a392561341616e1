"""Checking and trying ONNX artifacts that are not (yet) a tenant's registered model, for
plugins that review models before anyone calls them (``kernel.models.check_artifact`` and
``kernel.models.try_artifact``; the marketplace's automatic checks).

An artifact passes the same rules as an upload (:func:`validate_onnx`, with the configured
``BACKPLANE_INFERENCE__*`` limits) and is kept in the kernel's content-addressed artifact store
under its SHA-256; trying it loads it like an upload's session and runs it once, outside any
tenant's statistics, metering and batching, and reports how long the run took.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import msgspec
import numpy as np

from backplane._contract import ModelRef
from backplane.inference.limits import reject
from backplane.inference.registry import limits_from
from backplane.inference.runtime import ModelCatalog
from backplane.inference.v2 import numpy_dtype
from backplane.inference.validation import validate_onnx


class ArtifactReport(msgspec.Struct, frozen=True, kw_only=True):
    """What the kernel's upload validation found out about an artifact it now stores."""

    sha256: str
    size: int
    inputs: list[dict[str, Any]]
    """``{"name", "datatype", "shape"}`` per input (V2 datatypes, -1 for a dynamic dimension)."""
    outputs: list[dict[str, Any]]
    dynamic_batch: bool
    resident_bytes: int | None = None
    """Resident memory the model's onnxruntime session added in the upload trial, once loaded
    and run on a one-row input (a separate process, so nothing else moves the figure); None
    where the platform does not tell."""


class ArtifactRun(msgspec.Struct, frozen=True, kw_only=True):
    """One run of an artifact: its outputs by name and the wall time of the session's run."""

    outputs: dict[str, Any]
    """numpy arrays by output name."""
    elapsed_ns: int


async def check_artifact(catalog: ModelCatalog, data: bytes) -> ArtifactReport:
    """Validate ``data`` as an upload would be and store it; ``ModelRejected`` naming the rule
    it breaks (``status_code`` 413 for the size cap, else 422)."""
    settings = catalog.settings.inference
    if len(data) > settings.max_upload_bytes:  # before a thread or a subprocess is spent on it
        raise reject(
            "file-too-large", f"{len(data)} bytes, the limit is {settings.max_upload_bytes}"
        )
    validated = await asyncio.to_thread(validate_onnx, data, limits_from(settings))
    await asyncio.to_thread(catalog.store.put, data)
    signature = msgspec.json.decode(msgspec.json.encode(validated.signature))  # JSON-shaped
    return ArtifactReport(
        sha256=validated.sha256,
        size=validated.size,
        inputs=list(signature["inputs"]),
        outputs=list(signature["outputs"]),
        dynamic_batch=validated.dynamic_batch,
        resident_bytes=validated.resident_bytes,
    )


async def try_artifact(
    catalog: ModelCatalog, sha256: str, inputs: Mapping[str, Any]
) -> ArtifactRun:
    """Run the stored artifact ``sha256`` once on ``inputs`` (converted to the signature's
    datatypes); ``ValueError`` naming what does not match the signature,
    ``ArtifactMissingError`` when nothing is stored under ``sha256``."""
    ref = ModelRef(name=f"artifact-{sha256[:12]}", version="1", source="upload", key=sha256)
    model = await catalog.aload(ref)
    dtypes = {t.name: numpy_dtype(t.datatype) for t in model.inputs if t.datatype != "BYTES"}
    feed = model.check_inputs(
        {
            key: value if isinstance(value, np.ndarray) else np.asarray(value, dtypes.get(key))
            for key, value in inputs.items()
        }
    )
    started = time.perf_counter_ns()
    results = await asyncio.to_thread(model.session.run, model.output_names, feed)
    elapsed = time.perf_counter_ns() - started
    return ArtifactRun(
        outputs=dict(zip(model.output_names, results, strict=True)), elapsed_ns=elapsed
    )
