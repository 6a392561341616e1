"""An inference runtime that runs no model: its "model file" is a JSON signature, and ``run``
echoes inputs back as outputs. The kernel's tests serve ``kitchen_sink_echo`` with it, to see
that V2 requests reach the runtime a plugin registered (onnxruntime could not even parse the
file)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from backplane import ModelRef


class Tensor(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An input or output as a session describes it: ``type`` is a V2 datatype."""

    name: str
    type: str
    shape: list[int]


class Output(Tensor, frozen=True, forbid_unknown_fields=True):
    echoes: str
    """The input this output returns."""


class Signature(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The model file: ``shipped_models/echo.json``."""

    inputs: list[Tensor]
    outputs: list[Output]


LOADED: list[tuple[str, str]] = []
"""``(name, version)`` of every model this runtime loaded, for tests to inspect."""

RUNS: list[int] = []
"""Rows in every run, for tests to see requests batched together."""


class EchoSession:
    """What :func:`load` builds: onnxruntime's session protocol over a :class:`Signature`."""

    def __init__(self, signature: Signature) -> None:
        self.signature = signature
        self._sources = {output.name: output.echoes for output in signature.outputs}

    def get_inputs(self) -> list[Tensor]:
        return self.signature.inputs

    def get_outputs(self) -> list[Output]:
        return self.signature.outputs

    def run(self, output_names: list[str], feed: dict[str, Any]) -> list[Any]:
        RUNS.append(max(len(array) for array in feed.values()))
        return [feed[self._sources[name]] for name in output_names]


def load(data: bytes, model: ModelRef) -> EchoSession:
    """The runtime's ``load``: the file is a JSON :class:`Signature`."""
    session = EchoSession(msgspec.json.decode(data, type=Signature))
    LOADED.append((model.name, model.version))
    return session
