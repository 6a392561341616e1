"""The vocabulary of upload validation: the limits a model must fit, the rejection, and what
the static rules report. Its own module so that the rules (:mod:`._validation_static`) and the
entry point (:mod:`.validation`, which re-exports these) need not import each other."""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

_MIB: Final = 1 << 20


class ModelRejected(Exception):  # noqa: N818  (a rejection is the expected outcome, not an error)
    """An upload broke a validation rule; `message` names the rule and the offending part."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(rule, message)
        self.rule = rule
        self.message = message

    def __str__(self) -> str:
        return self.message

    @property
    def status_code(self) -> int:
        """The HTTP status to answer with: 413 for the size cap, 422 for every other rule."""
        return 413 if self.rule == "file-too-large" else 422


def reject(rule: str, detail: str) -> ModelRejected:
    """A rejection whose message starts with the rule code."""
    return ModelRejected(rule, f"{rule}: {detail}")


Positive = Annotated[int, msgspec.Meta(gt=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]


class ValidationLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The explicit limits an upload must fit; every field may be configured."""

    max_file_bytes: Positive = 200 * _MIB
    #: nodes in the main graph, every subgraph and every model-local function together
    max_nodes: Positive = 100_000
    #: subgraph nesting: the main graph is depth 0, an If branch in it depth 1, and so on
    #: (protobuf's own decoder refuses files nested beyond ~30 levels: "unparseable")
    max_nesting_depth: Annotated[int, msgspec.Meta(ge=0)] = 8
    #: bytes of tensor data embedded in the file: initializers, sparse ones, Constant values
    max_initializer_bytes: Positive = 256 * _MIB
    #: elements in any declared tensor shape or any constant shape feeding a shape input
    #: (ConstantOfShape, Expand, Tile, Reshape, Resize sizes, OneHot depth, Range, Random*)
    max_shape_elements: Positive = 1 << 28
    #: operator set domains nodes may use ("" and "ai.onnx" are the same standard domain)
    allowed_domains: tuple[str, ...] = ("", "ai.onnx", "ai.onnx.ml")
    #: whether nodes may call the model's own functions (whose bodies are checked like graphs)
    allow_model_local_functions: bool = True
    #: wall-clock seconds the trial gets to load and run the model (then it is killed)
    trial_timeout_seconds: PositiveFloat = 20.0
    #: seconds the trial process gets to start, import onnxruntime and read the model; not
    #: the model's fault when exceeded, but still a rejection (the host is overloaded)
    trial_startup_seconds: PositiveFloat = 30.0
    #: address-space limit (RLIMIT_AS) of the trial process, interpreter included (~250 MiB)
    trial_memory_bytes: Positive = 2048 * _MIB
    #: run the model once on zero-filled inputs (dynamic dims = 1), not only load it
    trial_run: bool = True


class StaticReport(msgspec.Struct, frozen=True, kw_only=True):
    """What the static rules learnt about a model that passed them."""

    ir_version: int
    opset_imports: dict[str, int]  # domain ("ai.onnx" for the standard one) -> version
    node_count: int
