"""The documents trainer: a tenant's document-type classifier, learnt from its own labelled
extractions (``PUT /api/documents/extractions/{id}/label``).

``POST /api/models/document_type/train`` runs it (the kernel's training rails: a seeded
holdout, the fit in a resource-limited process, ONNX conversion and checks, a new version of
the tenant's ``document_type`` model). Each labelled, finished extraction is one row: its text
(pages joined by newlines) as :func:`~backplane_documents.text_features.hashed_bag_of_words`
with :data:`~backplane_documents.text_features.N_FEATURES` features, exactly what
``{"classify": {"model": "document_type"}}`` on an extraction feeds the model. The estimator
is a multinomial logistic regression (its ONNX form answers ``label`` and ``probabilities``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select

from backplane_documents.text_features import N_FEATURES, feature_matrix

MODEL = "document_type"
"""The tenant model the trainer makes versions of."""
TRAINER = "documents.document_type"
MIN_ROWS_PER_LABEL = 2
"""A label with fewer labelled documents cannot be learnt (nor held out): it is refused."""


async def labelled_texts(kernel: Any) -> tuple[list[str], list[str]]:
    """The tenant's labelled, finished extractions: their texts and labels, oldest first."""
    from backplane_documents.processing.models import DocumentExtraction, ExtractedPage

    rows = (
        await kernel.db.execute(
            select(DocumentExtraction.id, DocumentExtraction.label)
            .where(DocumentExtraction.label.is_not(None), DocumentExtraction.status == "done")
            .order_by(DocumentExtraction.created_at, DocumentExtraction.id)
        )
    ).all()
    texts: dict[Any, list[str]] = {row.id: [] for row in rows}
    if texts:
        pages = await kernel.db.execute(
            select(ExtractedPage.extraction_id, ExtractedPage.text)
            .where(ExtractedPage.extraction_id.in_(list(texts)))
            .order_by(ExtractedPage.extraction_id, ExtractedPage.number)
        )
        for extraction_id, text in pages:
            texts[extraction_id].append(text)
    return ["\n".join(texts[row.id]) for row in rows], [str(row.label) for row in rows]


async def document_type_data(kernel: Any) -> tuple[Any, Any, Any]:
    """``fit(kernel)`` of the trainer: features, labels and an unfitted estimator.
    ValueError (the run fails with it) when there is nothing to learn."""
    from sklearn.linear_model import LogisticRegression

    texts, labels = await labelled_texts(kernel)
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    if len(counts) < 2:
        raise ValueError(
            f"the documents trainer needs labelled extractions of at least two labels, "
            f"found {sorted(counts) or 'none'} (PUT /api/documents/extractions/{{id}}/label)"
        )
    scarce = sorted(label for label, n in counts.items() if n < MIN_ROWS_PER_LABEL)
    if scarce:
        raise ValueError(
            f"labels with fewer than {MIN_ROWS_PER_LABEL} labelled extractions: {scarce}"
        )
    features = feature_matrix(texts, N_FEATURES)
    # strong regularisation off: hashed word counts of a few dozen documents separate easily
    estimator = LogisticRegression(C=10.0, max_iter=1000, random_state=0)
    return features, np.asarray(labels), estimator


def documents_trainers() -> list[Any]:
    from backplane import Trainer

    return [
        Trainer(
            name=TRAINER,
            model=MODEL,
            fit=document_type_data,
            metric="accuracy",
            description="Document type from the text of the tenant's labelled extractions "
            "(hashed bag of words, logistic regression)",
        )
    ]


__all__ = ["MODEL", "TRAINER", "document_type_data", "documents_trainers", "labelled_texts"]
