"""The automatic checks of a submitted version, in the order they cost: the detached
signature over the artifact's SHA-256 by one of the publisher's active keys, the kernel's
upload validation (``kernel.models.check_artifact``), then every example run on the artifact
and compared with its declared outputs, and the latency measured over ``latency_runs`` runs.
The first failure refuses the upload with a reason naming it; nothing is registered."""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane import ArtifactReport, Kernel, ModelRejected
from backplane_marketplace import signing
from backplane_marketplace.errors import MarketplaceError
from backplane_marketplace.models import SigningKey
from backplane_marketplace.schemas import ExampleIn


def decode_artifact(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise MarketplaceError("the artifact is not base64", 422) from None


async def signing_key_for(
    db: AsyncSession, publisher_id: Any, data: bytes, signature: str
) -> SigningKey:
    """The active key of the publisher whose signature over ``data``'s digest verifies, else
    422 saying why (no active key, or no key verifies: changed after signing, or signed by a
    retired or revoked key)."""
    message = signing.artifact_message(hashlib.sha256(data).hexdigest())
    keys = list(
        await db.scalars(
            select(SigningKey).where(
                SigningKey.publisher_id == publisher_id,
                SigningKey.revoked_at.is_(None),
                SigningKey.retired_at.is_(None),
            )
        )
    )
    if not keys:
        raise MarketplaceError("the publisher has no active signing key: register one", 422)
    for key in keys:
        try:
            signing.verify(key.public_key, signature, message)
        except signing.SignatureError as exc:
            if "bytes" in str(exc) or "base64" in str(exc):
                raise MarketplaceError(f"signature refused: {exc}", 422) from None
            continue
        return key
    raise MarketplaceError(
        "signature refused: no active key of the publisher verifies it over this artifact's "
        "SHA-256 (the artifact changed after signing, or a retired or revoked key signed it)",
        422,
    )


async def validate(kernel: Kernel, data: bytes) -> ArtifactReport:
    try:
        return await kernel.models.check_artifact(data)
    except ModelRejected as exc:
        raise MarketplaceError(f"the artifact failed validation: {exc}", exc.status_code) from None


def _compare(index: int, name: str, actual: Any, expected: Any, tolerance: float) -> None:
    where = f"example {index}, output {name!r}"
    try:
        want = np.asarray(expected, dtype=actual.dtype if actual.dtype != object else None)
    except (TypeError, ValueError):
        raise MarketplaceError(
            f"{where}: the declared value does not fit the output", 422
        ) from None
    if want.shape != actual.shape:
        raise MarketplaceError(
            f"{where}: declared shape {list(want.shape)}, the model gives {list(actual.shape)}", 422
        )
    if actual.dtype.kind in "fc":
        same = bool(np.allclose(actual, want, rtol=0, atol=tolerance, equal_nan=True))
    else:
        same = bool(np.array_equal(actual, want))
    if not same:
        raise MarketplaceError(
            f"{where}: the model's output disagrees with the declared one (tolerance {tolerance})",
            422,
        )


async def run_examples(
    kernel: Kernel, sha256: str, examples: list[ExampleIn], runs: int
) -> dict[str, Any]:
    """Each example run and compared (422 naming the first that disagrees), then ``runs`` runs
    (round robin over the examples) timed: the report kept on the version."""
    timings: list[int] = []
    for index, example in enumerate(examples):
        try:
            run = await kernel.models.try_artifact(sha256, example.inputs)
        except ValueError as exc:
            raise MarketplaceError(f"example {index}: {exc}", 422) from None
        unknown = set(example.outputs) - set(run.outputs)
        if unknown:
            raise MarketplaceError(
                f"example {index}: the model has no output {sorted(unknown)} "
                f"(it has {sorted(run.outputs)})",
                422,
            )
        for name, expected in example.outputs.items():
            _compare(index, name, run.outputs[name], expected, example.tolerance)
        timings.append(run.elapsed_ns)
    for turn in range(max(0, runs - len(examples))):
        example = examples[turn % len(examples)]
        timings.append((await kernel.models.try_artifact(sha256, example.inputs)).elapsed_ns)
    millis = np.asarray(timings, dtype=np.float64) / 1e6
    return {
        "examples_passed": len(examples),
        "latency_runs": len(timings),
        "p50_ms": round(float(np.percentile(millis, 50)), 4),
        "p99_ms": round(float(np.percentile(millis, 99)), 4),
    }
