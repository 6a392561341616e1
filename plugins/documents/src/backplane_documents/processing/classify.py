"""Classification of an extraction (its document type, say) by a tenant's model.

The extracted text becomes a hashed bag of words (:mod:`backplane_documents.text_features`),
one float32 row ``[1, n_features]``, fed to the model named by the request through the
kernel's model runtime (``kernel.models.infer``): the tenant's own models only, metered as any
inference (``inference.requests`` / ``inference.rows``) and held to its quotas. The defaults
fit a scikit-learn classifier converted by skl2onnx (the kernel's trainers do that): input
``X``, outputs ``label`` and ``probabilities``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import msgspec
import numpy as np

from backplane_documents.text_features import MAX_FEATURES, N_FEATURES, hashed_bag_of_words

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class ClassifierSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which model classifies the document (the ``classify`` member of a request)."""

    model: Name
    version: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    """A version or an alias (``production``); None: the model's default."""
    n_features: Annotated[int, msgspec.Meta(ge=1, le=MAX_FEATURES)] = N_FEATURES
    input: Name = "X"
    label_output: Name = "label"
    probabilities_output: Name | None = "probabilities"
    """None for a model without probabilities (then ``score`` is null)."""


class Classification(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What the model said about the document (stored on the extraction)."""

    model: str
    version: str | None
    label: str | None = None
    score: float | None = None
    """The highest class probability."""
    probabilities: list[float] | None = None
    """In the model's class order (sorted labels for scikit-learn classifiers)."""
    error: str | None = None
    """Why a bulk job's document has no label (a single request answers 4xx instead)."""


def parse_spec(value: Any) -> ClassifierSpec | None:
    """The spec of a request (a dict, or None); ValueError naming the problem."""
    if value is None:
        return None
    try:
        return msgspec.convert(value, ClassifierSpec)
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid classify: {exc}") from None


def _label(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)


def full_text(pages: Sequence[Any]) -> str:
    """The text a classifier reads: the pages' text joined by newlines, in page order."""
    return "\n".join(page.text for page in pages)


async def classify(kernel: Any, spec: ClassifierSpec, text: str) -> Classification:
    """Run the tenant's model on the text's features. Errors of the kernel's runtime (an
    unknown model: LookupError, 404 in a route; inputs that do not fit: ValueError, 400; a
    spent quota: QuotaExceeded, 429) propagate; an output the model lacks is ValueError."""
    features = hashed_bag_of_words(text, spec.n_features).reshape(1, -1)
    wanted = [spec.label_output]
    if spec.probabilities_output is not None:
        wanted.append(spec.probabilities_output)
    outputs = await kernel.models.infer(spec.model, {spec.input: features}, version=spec.version)
    for name in wanted:
        if name not in outputs:
            raise ValueError(f"model {spec.model!r} has no output {name!r}")
    labels = np.asarray(outputs[spec.label_output]).ravel()
    if labels.size != 1:
        raise ValueError(f"model {spec.model!r} answered {labels.size} labels for one document")
    result = Classification(model=spec.model, version=spec.version, label=_label(labels[0]))
    if spec.probabilities_output is not None:
        probabilities = np.asarray(outputs[spec.probabilities_output], dtype=np.float64).ravel()
        result.probabilities = [round(float(p), 6) for p in probabilities]
        result.score = round(float(probabilities.max()), 6) if probabilities.size else None
    return result


async def classify_quietly(kernel: Any, spec: ClassifierSpec, text: str) -> Classification:
    """:func:`classify` for a bulk job's document: a refusal of the model runtime (a model
    gone since the job was created, inputs that do not fit it, a spent inference quota, a
    timeout) becomes the classification's ``error``, never the job's. Anything else (the
    database failing) propagates: the chunk's task is retried."""
    from backplane import QuotaExceeded

    try:
        return await classify(kernel, spec, text)
    except (LookupError, ValueError, QuotaExceeded, TimeoutError) as exc:
        reason = str(exc) or type(exc).__name__
        return Classification(model=spec.model, version=spec.version, error=reason[:500])


__all__ = ["Classification", "ClassifierSpec", "classify", "classify_quietly", "parse_spec"]
