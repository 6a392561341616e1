"""Source meters: a model a plugin exposed (source ``S``) also counts on ``S.requests`` and
``S.rows`` when registered, with the model, version and artifact; shipped models and uploads,
and sources whose meters nobody registered, count on the kernel's meters only."""

from __future__ import annotations

import numpy as np

from backplane import ModelRef, UsageItem
from backplane.inference.runtime import usage_items

FEED = {"float_input": np.zeros((3, 4), np.float32)}


def ref(source: str) -> ModelRef:
    return ModelRef(name="species", version="1.0.0", source=source, key="ab" * 32)


def test_an_exposed_models_calls_count_on_its_sources_meters() -> None:
    items = usage_items(
        "species", FEED, ref("marketplace"), frozenset({"marketplace.requests", "marketplace.rows"})
    )
    exposed = {"model": "species", "version": "1.0.0", "artifact": "ab" * 32}
    assert items == [
        UsageItem("inference.requests", 1, {"model": "species"}),
        UsageItem("inference.rows", 3, {"model": "species"}),
        UsageItem("marketplace.requests", 1, exposed),
        UsageItem("marketplace.rows", 3, exposed),
    ]


def test_only_registered_source_meters_and_never_for_uploads_or_shipped_models() -> None:
    registered = frozenset({"marketplace.requests", "upload.requests", "kernel.requests"})
    only_requests = usage_items("species", FEED, ref("marketplace"), registered)
    assert [i.code for i in only_requests][2:] == ["marketplace.requests"]
    for source in ("upload", "kernel", "plugin"):
        codes = [i.code for i in usage_items("species", FEED, ref(source), registered)]
        assert codes == ["inference.requests", "inference.rows"]
    assert len(usage_items("species", FEED, ref("other"), registered)) == 2
    assert len(usage_items("species", FEED)) == 2
