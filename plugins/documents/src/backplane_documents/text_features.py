"""The features a document-type classifier sees: a fixed-size hashed bag of words.

Public and pure (numpy only) so that anyone training a classifier for extractions, with the
plugin's own trainer or elsewhere, computes exactly what the plugin feeds the model:

1. the text is lowercased (``str.lower``);
2. its tokens are the maximal runs of Unicode letters and digits (the regular expression
   ``[^\\W_]+``: underscores and punctuation separate tokens);
3. each token counts once at index ``zlib.crc32(token.encode("utf-8")) % n_features``;
4. the count vector is divided by its Euclidean (L2) norm (an empty text stays all zeros),
   as float32.

``n_features`` is :data:`N_FEATURES` (1024) unless the request names another; a model's input
must be a float tensor ``[batch, n_features]``. CRC-32 is stable across processes and Python
versions (unlike ``hash``), so the same text always gives the same vector.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from typing import Any

import numpy as np

N_FEATURES = 1024
"""The default vector length (the plugin's trainer uses it)."""
MAX_FEATURES = 1 << 16
"""The largest ``n_features`` a request may name (a vector per document is kept in memory)."""
_TOKEN = re.compile(r"[^\W_]+")


def tokens(text: str) -> list[str]:
    """The text's word tokens, lowercased, in order."""
    return _TOKEN.findall(text.lower())


def hashed_bag_of_words(text: str, n_features: int = N_FEATURES) -> np.ndarray[Any, Any]:
    """The feature vector of one text (shape ``[n_features]``, float32, L2 norm 1 or 0)."""
    if not 1 <= n_features <= MAX_FEATURES:
        raise ValueError(f"n_features must be between 1 and {MAX_FEATURES}, not {n_features}")
    counts = np.zeros(n_features, dtype=np.float64)
    for token in tokens(text):
        counts[zlib.crc32(token.encode("utf-8")) % n_features] += 1.0
    norm = float(np.linalg.norm(counts))
    if norm > 0:
        counts /= norm
    return counts.astype(np.float32)


def feature_matrix(texts: Iterable[str], n_features: int = N_FEATURES) -> np.ndarray[Any, Any]:
    """One row of :func:`hashed_bag_of_words` per text (shape ``[len(texts), n_features]``)."""
    rows = [hashed_bag_of_words(text, n_features) for text in texts]
    if not rows:
        return np.zeros((0, n_features), dtype=np.float32)
    return np.stack(rows)


__all__ = ["MAX_FEATURES", "N_FEATURES", "feature_matrix", "hashed_bag_of_words", "tokens"]
