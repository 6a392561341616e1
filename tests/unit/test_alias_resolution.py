"""How a version-or-alias in a V2 path resolves (``version_for``): a version wins over an alias of
the same name, an unversioned request follows ``production`` when there is one and the latest
otherwise, and an alias whose version is gone never sends traffic to it."""

from __future__ import annotations

import uuid

from backplane._contract import ModelRef
from backplane.inference.resolution import RegistryView, version_for
from backplane.inference.rollout import AliasTarget

TENANT = uuid.UUID("0b5e7a4c-27d4-4c59-8a0e-2f6f1d2a9c11")


def view(versions: list[str], aliases: dict[str, AliasTarget]) -> RegistryView:
    refs = [ModelRef(name="m", version=v, source="upload", key=f"k{v}") for v in versions]
    return RegistryView(refs, aliases)


def resolved(
    v: RegistryView, requested: str | None, key: str | None = None, *, split: bool = True
) -> str | None:
    return version_for(v, TENANT, "m", requested, key, split=split)


def test_without_aliases_nothing_changes() -> None:
    plain = view(["1", "2"], {})
    assert resolved(plain, None) is None  # the latest, as before aliases
    assert resolved(plain, "1") == "1"
    assert resolved(plain, "production") == "production"  # unknown: pick_version's 404


def test_production_is_the_default_and_a_version_beats_an_alias_of_its_name() -> None:
    aliased = view(["1", "2", "stable"], {
        "production": AliasTarget(version="1"), "stable": AliasTarget(version="2"),
    })  # fmt: skip
    assert resolved(aliased, None) == "1"
    assert resolved(aliased, "production") == "1"
    assert resolved(aliased, "stable") == "stable"


def test_metadata_takes_the_main_version_and_inference_the_split() -> None:
    split = view(
        ["1", "2"], {"production": AliasTarget(version="1", split_version="2", split_percent=50)}
    )
    assert resolved(split, "production", split=False) == "1"
    routed = {resolved(split, "production", f"user-{i}") for i in range(200)}
    assert routed == {"1", "2"}


def test_a_gone_version_is_never_served_through_an_alias() -> None:
    gone_split = view(
        ["1"], {"production": AliasTarget(version="1", split_version="2", split_percent=99)}
    )
    assert {resolved(gone_split, None, f"user-{i}") for i in range(50)} == {"1"}
    gone_main = view(["2"], {"production": AliasTarget(version="1")})
    assert resolved(gone_main, None) is None  # the latest, as without the alias
    assert resolved(gone_main, "production") == "production"  # named: unknown (404)
