"""Issue 20, acceptance 2, the routing and promotion functions on their own: a 90/10 split over
10,000 requests lands within 2 points of 90/10 (with keys and at random), a key's version never
changes (within a process, across processes with different hash seeds), and a worse candidate
is never promoted."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import uuid

import pytest

from backplane.inference import v2
from backplane.inference.rollout import (
    BUCKETS,
    AliasTarget,
    bucket,
    route,
    routing_key,
    should_promote,
)

TENANT = uuid.UUID("6f1c1a52-0c0e-4d6f-9a43-6cb2a1f3e0d1")
SPLIT = AliasTarget(version="1", split_version="2", split_percent=10)


def shares(versions: list[str]) -> float:
    return versions.count("2") / len(versions) * 100


def routed(key: str | None, rng: random.Random | None = None) -> str:
    return route(
        SPLIT, tenant_id=TENANT, name="scorer", alias="production", routing_key=key, rng=rng
    )


def test_a_90_10_split_over_10000_keyed_requests_lands_within_2_points() -> None:
    versions = [routed(f"user-{i}") for i in range(10_000)]
    assert set(versions) == {"1", "2"}
    assert abs(shares(versions) - 10) <= 2, shares(versions)


def test_a_90_10_split_over_10000_unkeyed_requests_lands_within_2_points() -> None:
    rng = random.Random(20)
    versions = [routed(None, rng) for _ in range(10_000)]
    assert abs(shares(versions) - 10) <= 2, shares(versions)


def test_a_key_always_gets_the_same_version_and_raising_the_share_only_moves_more_over() -> None:
    first = {f"user-{i}": routed(f"user-{i}") for i in range(2_000)}
    for _ in range(3):
        assert {key: routed(key) for key in first} == first
    wider = AliasTarget(version="1", split_version="2", split_percent=30)
    for key, version in first.items():
        again = route(wider, tenant_id=TENANT, name="scorer", alias="production", routing_key=key)
        if version == "2":
            assert again == "2", key  # a caller on the new version is never moved back


def test_buckets_are_the_same_in_another_process_with_another_hash_seed() -> None:
    keys = [f"user-{i}" for i in range(500)]
    here = [bucket(TENANT, "scorer", "production", k) for k in keys]
    assert all(0 <= b < BUCKETS for b in here)
    script = (
        "import json, sys, uuid\n"
        "from backplane.inference.rollout import bucket\n"
        "keys = json.loads(sys.argv[1])\n"
        f"print(json.dumps([bucket(uuid.UUID('{TENANT}'), 'scorer', 'production', k) "
        "for k in keys]))\n"
    )
    for seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", script, json.dumps(keys)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(out.stdout) == here


def test_tenants_and_models_are_bucketed_independently() -> None:
    keys = [f"user-{i}" for i in range(1_000)]
    a = [bucket(TENANT, "scorer", "production", k) for k in keys]
    b = [bucket(uuid.uuid4(), "scorer", "production", k) for k in keys]
    assert a != b


def test_no_split_always_answers_the_main_version() -> None:
    plain = AliasTarget(version="3")
    assert {
        route(plain, tenant_id=TENANT, name="m", alias="a", routing_key=k) for k in (None, "x", "y")
    } == {"3"}


@pytest.mark.parametrize(
    ("candidate", "production", "higher", "margin", "promote"),
    [
        ({"auc": 0.80}, {"auc": 0.85}, True, 0.0, False),  # worse
        ({"auc": 0.85}, {"auc": 0.85}, True, 0.0, False),  # equal is not better
        ({"auc": 0.86}, {"auc": 0.85}, True, 0.02, False),  # better, but within the margin
        ({"auc": 0.90}, {"auc": 0.85}, True, 0.02, True),
        ({"rmse": 1.5}, {"rmse": 1.2}, False, 0.0, False),  # lower is better: worse
        ({"rmse": 1.0}, {"rmse": 1.2}, False, 0.1, True),
        ({"rmse": 1.0}, None, False, 0.1, True),  # nothing in production yet
        ({}, {"auc": 0.5}, True, 0.0, False),  # the candidate lacks the metric
        ({"auc": math.nan}, {"auc": 0.5}, True, 0.0, False),
        ({"auc": 0.9}, {"auc": math.nan}, True, 0.0, False),
        ({"auc": 0.9}, {"logloss": 0.3}, True, 0.0, False),
    ],
)
def test_should_promote(
    candidate: dict[str, float],
    production: dict[str, float] | None,
    higher: bool,
    margin: float,
    promote: bool,
) -> None:
    metric = next(iter(candidate), "auc")
    decision = should_promote(candidate, production, metric, higher, margin)
    assert decision.promote is promote, decision.reason
    assert decision.reason


def test_a_negative_margin_is_refused() -> None:
    with pytest.raises(ValueError, match="margin"):
        should_promote({"auc": 0.9}, {"auc": 0.8}, "auc", True, -0.1)


def request(parameters: dict[str, v2.ParamValue] | None) -> v2.InferRequest:
    return v2.InferRequest(parameters=parameters, inputs=[])


def test_routing_key_from_parameters_or_header() -> None:
    assert routing_key(request({"routing_key": "u-1"}), {"x-routing-key": "u-2"}, 10) == "u-1"
    assert routing_key(request(None), {"x-routing-key": "u-2"}, 10) == "u-2"
    assert routing_key(request(None), {}, 10) is None
    for bad in ({"routing_key": 42}, {"routing_key": ""}, {"routing_key": "x" * 11}):
        with pytest.raises(v2.V2Error, match="routing_key must be text of 1 to 10"):
            routing_key(request(bad), {}, 10)
