"""Example ONNX models shipped with the kernel as package data.

Small, real scikit-learn models (``iris_classifier``, ``diabetes_regressor`` and ``wide_mlp``,
large enough that dynamic batching pays off) converted with skl2onnx by
``scripts/build_example_models.py`` (run by hand; its outputs are committed here).
``manifest.json`` describes each; ``expected.npz`` holds test inputs and scikit-learn's own
predictions. Read through :mod:`importlib.resources`, so it works from an installed wheel.
"""

from __future__ import annotations

import functools
import hashlib
from importlib.resources import files
from importlib.resources.abc import Traversable

import msgspec


class TensorSpec(msgspec.Struct, frozen=True):
    """One input or output of a model: V2 datatype and shape (-1 marks a dynamic dimension)."""

    name: str
    datatype: str
    shape: tuple[int, ...]


class ExampleModel(msgspec.Struct, frozen=True):
    """A shipped model as ``manifest.json`` describes it."""

    name: str
    version: str
    description: str
    file: str
    bytes: int
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


class Manifest(msgspec.Struct, frozen=True):
    """``manifest.json``: the models plus how they were built."""

    generated_by: str
    versions: dict[str, str]
    opset: int
    test_rows: int
    expected: str
    models: tuple[ExampleModel, ...]


def resource(name: str) -> Traversable:
    """A file of this package (``"manifest.json"``, ``"wide_mlp.onnx"``, ``"expected.npz"``)."""
    return files(__name__).joinpath(name)


@functools.cache
def manifest() -> Manifest:
    """The parsed ``manifest.json`` (read once)."""
    return msgspec.json.decode(resource("manifest.json").read_bytes(), type=Manifest)


def example_models() -> tuple[ExampleModel, ...]:
    """Every shipped example model, in manifest order."""
    return manifest().models


def example_model(name: str) -> ExampleModel:
    """The shipped model called ``name``; :class:`KeyError` if there is none."""
    for model in manifest().models:
        if model.name == name:
            return model
    raise KeyError(name)


def read_model(name: str, *, verify: bool = True) -> bytes:
    """The ONNX bytes of the shipped model ``name``, checked against its sha256 by default."""
    model = example_model(name)
    data = resource(model.file).read_bytes()
    if verify and hashlib.sha256(data).hexdigest() != model.sha256:
        msg = f"example model {name!r}: {model.file} does not match its sha256 in manifest.json"
        raise ValueError(msg)
    return data
