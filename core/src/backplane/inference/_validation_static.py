"""The static rules of upload validation: everything decided from the parsed protobuf alone.

Nothing here opens a file, resolves a path or runs the model: external-data locations are read
as strings and reported, never followed. The rules run in the order of
:data:`backplane.inference.validation.RULES`; the first one broken raises.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from backplane.inference.limits import StaticReport, ValidationLimits, reject

if TYPE_CHECKING:
    import onnx

_STANDARD = "ai.onnx"
_MAX_SHAPE_TENSOR = 64  # shape tensors are one value per dimension; anything longer is data
# op type -> indices of the inputs that are shapes (or sizes), for memory-bomb detection
_SHAPE_INPUTS: dict[str, tuple[int, ...]] = {
    "ConstantOfShape": (0,),
    "Expand": (1,),
    "Tile": (1,),
    "Reshape": (1,),
    "Resize": (3,),
    "OneHot": (1,),
}
_SHAPE_ATTRIBUTES = {"RandomNormal", "RandomUniform"}  # `shape` attribute


def _domain(name: str) -> str:
    return _STANDARD if name == "" else name


def _node_label(node: onnx.NodeProto, index: int) -> str:
    op = f"{node.domain}::{node.op_type}" if node.domain else node.op_type
    return f"node {node.name!r} ({op})" if node.name else f"node #{index} ({op})"


@dataclass
class _Body:
    """One list of nodes: the main graph, a subgraph held by an attribute, or a function."""

    where: str
    depth: int
    nodes: Sequence[onnx.NodeProto]
    graph: onnx.GraphProto | None
    parent: _Body | None
    constants: dict[str, list[int]] = field(default_factory=dict)

    def constant(self, name: str) -> list[int] | None:
        body: _Body | None = self
        while body is not None:
            if name in body.constants:
                return body.constants[name]
            body = body.parent
        return None


def _bodies(model: onnx.ModelProto) -> list[_Body]:
    found: list[_Body] = []

    def visit(
        where: str,
        depth: int,
        nodes: Sequence[onnx.NodeProto],
        graph: onnx.GraphProto | None,
        parent: _Body | None,
    ) -> None:
        body = _Body(where, depth, nodes, graph, parent)
        found.append(body)
        for index, node in enumerate(nodes):
            for attribute in node.attribute:
                label = f"{where} > {_node_label(node, index)}.{attribute.name}"
                subgraphs = [attribute.g] if attribute.HasField("g") else []
                for position, sub in enumerate([*subgraphs, *attribute.graphs]):
                    sub_label = label if not attribute.graphs else f"{label}[{position}]"
                    visit(sub_label, depth + 1, sub.node, sub, body)

    visit(f"graph {model.graph.name!r}", 0, model.graph.node, model.graph, None)
    for function in model.functions:
        where = f"function {function.domain}::{function.name}"
        visit(where, 0, function.node, None, None)
        for attribute in function.attribute_proto:
            if attribute.HasField("g"):
                visit(f"{where}.{attribute.name}", 1, attribute.g.node, attribute.g, None)
    for index, info in enumerate(model.training_info):
        for name in ("initialization", "algorithm"):
            if info.HasField(name):
                sub = getattr(info, name)
                visit(f"training_info[{index}].{name}", 0, sub.node, sub, None)
    return found


def _messages(message: Any, where: str) -> Iterator[tuple[str, Any]]:
    """Every tensor and sparse tensor anywhere in `message`, found by walking all its fields.

    Walking every message field (rather than the fields known today) keeps tensors in places
    this code never heard of from slipping through the external-data and size rules.
    """
    import onnx

    for descriptor, value in message.ListFields():
        if descriptor.type != descriptor.TYPE_MESSAGE:
            continue
        repeated = not hasattr(value, "ListFields")  # a repeated field is a container
        items = list(value) if repeated else [value]
        for index, item in enumerate(items):
            label = _field_label(descriptor.name, index if repeated else None, item)
            path = f"{where} > {label}" if where else label
            if isinstance(item, onnx.TensorProto | onnx.SparseTensorProto):
                yield path, item
            if not isinstance(item, onnx.TensorProto):
                yield from _messages(item, path)


def _field_label(name: str, index: int | None, item: Any) -> str:
    kind = type(item).__name__
    if kind == "NodeProto":
        return _node_label(item, index or 0)
    if kind == "AttributeProto":
        return f"attribute {item.name!r}"
    if kind == "GraphProto":
        return f"graph {item.name!r}"
    if kind == "FunctionProto":
        return f"function {item.domain}::{item.name}"
    if kind == "TensorProto" and item.name:
        return f"{name} {item.name!r}" if name == "initializer" else f"tensor {item.name!r}"
    return name if index is None else f"{name}[{index}]"


def _check_external_data(dense: list[tuple[str, Any]]) -> None:
    import onnx

    for where, tensor in dense:
        entries = {entry.key: entry.value for entry in tensor.external_data}
        if tensor.data_location == onnx.TensorProto.EXTERNAL or entries:
            location = entries.get("location", "")
            raise reject(
                "external-data",
                f"{where} stores its data outside the model file (location {location!r}); "
                "external data is not allowed, embed the tensors in the upload",
            )


def _check_domains(model: onnx.ModelProto, bodies: list[_Body], limits: ValidationLimits) -> None:
    allowed = {_domain(d) for d in limits.allowed_domains}
    functions: set[tuple[str, str, str]] = set()
    if limits.allow_model_local_functions:
        functions = {(_domain(f.domain), f.name, f.overload) for f in model.functions}
    function_domains = {domain for domain, _name, _overload in functions}
    permitted = allowed | function_domains
    shown = ", ".join(repr(d) for d in sorted(allowed))
    imports = [("model", op) for op in model.opset_import]
    imports += [
        (f"function {f.domain}::{f.name}", op) for f in model.functions for op in f.opset_import
    ]
    for owner, opset in imports:
        if _domain(opset.domain) not in permitted:
            raise reject(
                "custom-op-domain",
                f"{owner} imports operator set domain {opset.domain!r} (version {opset.version}); "
                f"allowed domains: {shown}",
            )
    for body in bodies:
        for index, node in enumerate(body.nodes):
            domain = _domain(node.domain)
            if domain in allowed or (domain, node.op_type, node.overload) in functions:
                continue
            raise reject(
                "custom-op-domain",
                f"{body.where} > {_node_label(node, index)} is in domain {node.domain!r}, "
                f"which is not allowed (allowed domains: {shown}; no custom operators)",
            )


def _check_size_of_graph(bodies: list[_Body], limits: ValidationLimits) -> int:
    count = sum(len(body.nodes) for body in bodies)
    if count > limits.max_nodes:
        raise reject(
            "too-many-nodes",
            f"the model has {count} nodes (subgraphs and functions included), "
            f"above the limit of {limits.max_nodes}",
        )
    deepest = max(bodies, key=lambda body: body.depth)
    if deepest.depth > limits.max_nesting_depth:
        raise reject(
            "too-deep",
            f"{deepest.where} is nested {deepest.depth} subgraphs deep, "
            f"above the limit of {limits.max_nesting_depth}",
        )
    return count


def _tensor_bytes(tensor: Any) -> int:
    size = len(tensor.raw_data) + sum(len(s) for s in tensor.string_data)
    size += 4 * (len(tensor.float_data) + len(tensor.int32_data))
    size += 8 * (len(tensor.int64_data) + len(tensor.double_data) + len(tensor.uint64_data))
    return size


def _check_initializer_bytes(dense: list[tuple[str, Any]], limits: ValidationLimits) -> None:
    total, largest, largest_where = 0, 0, ""
    for where, tensor in dense:
        size = _tensor_bytes(tensor)
        total += size
        if size > largest:
            largest, largest_where = size, where
    if total > limits.max_initializer_bytes:
        raise reject(
            "initializer-too-large",
            f"embedded tensor data (initializers and constants) totals {total} bytes, above the "
            f"limit of {limits.max_initializer_bytes}; the largest is {largest_where} "
            f"({largest} bytes)",
        )


def _elements(values: Sequence[int]) -> int:
    return math.prod(max(int(v), 1) for v in values)


def _shape_bomb(where: str, what: str, values: Sequence[int], limits: ValidationLimits) -> None:
    count = _elements(values)
    if count > limits.max_shape_elements:
        raise reject(
            "shape-bomb",
            f"{where}: {what} {list(values)} has {count} elements, above the limit of "
            f"{limits.max_shape_elements}",
        )


def _int_values(tensor: Any) -> list[int] | None:
    """The values of a small integer tensor (a plausible shape), else None."""
    import onnx
    from onnx import numpy_helper

    integer = {onnx.TensorProto.INT64, onnx.TensorProto.INT32}
    if tensor.data_type not in integer or len(tensor.dims) > 1:
        return None
    if _elements(tensor.dims) > _MAX_SHAPE_TENSOR:  # data, not a shape
        return None
    try:
        return [int(v) for v in numpy_helper.to_array(tensor).reshape(-1)]
    except (ValueError, TypeError):  # malformed data; the checker reports it
        return None


def _type_shapes(type_proto: Any) -> Iterator[list[int]]:
    which = type_proto.WhichOneof("value")
    if which in {"tensor_type", "sparse_tensor_type"}:
        holder = getattr(type_proto, which)
        if holder.HasField("shape"):
            yield [d.dim_value for d in holder.shape.dim if d.HasField("dim_value")]
    elif which in {"sequence_type", "optional_type"}:
        yield from _type_shapes(getattr(type_proto, which).elem_type)
    elif which == "map_type":
        yield from _type_shapes(type_proto.map_type.value_type)


def _check_declared_shapes(
    bodies: list[_Body], tensors: list[tuple[str, Any]], limits: ValidationLimits
) -> None:
    for where, tensor in tensors:
        _shape_bomb(where, "declared shape", list(tensor.dims), limits)
    for body in bodies:
        if body.graph is None:
            continue
        for info in [*body.graph.input, *body.graph.output, *body.graph.value_info]:
            for shape in _type_shapes(info.type):
                _shape_bomb(f"{body.where} > value {info.name!r}", "declared shape", shape, limits)


def _check_constant_shapes(bodies: list[_Body], limits: ValidationLimits) -> None:
    for body in bodies:  # parents come before their subgraphs, so outer constants are known
        if body.graph is not None:
            for initializer in body.graph.initializer:
                values = _int_values(initializer)
                if values is not None:
                    body.constants[initializer.name] = values
        for index, node in enumerate(body.nodes):
            _track_constant(body, node)
            if node.domain in {"", _STANDARD}:
                _check_node_shapes(body, node, f"{body.where} > {_node_label(node, index)}", limits)


def _check_node_shapes(body: _Body, node: Any, where: str, limits: ValidationLimits) -> None:
    for position in _SHAPE_INPUTS.get(node.op_type, ()):
        if position < len(node.input) and node.input[position]:
            values = body.constant(node.input[position])
            if values is not None:
                what = f"constant shape input {node.input[position]!r} ="
                _shape_bomb(where, what, values, limits)
    if node.op_type in _SHAPE_ATTRIBUTES:
        for attribute in node.attribute:
            if attribute.name == "shape":
                _shape_bomb(where, "shape attribute", list(attribute.ints), limits)
    if node.op_type == "Range" and len(node.input) == 3:
        _check_range(body, node, where, limits)


def _check_range(body: _Body, node: Any, where: str, limits: ValidationLimits) -> None:
    start, limit, delta = (body.constant(name) for name in node.input)
    if start and limit and delta and len(start) == len(limit) == len(delta) == 1 and delta[0]:
        count = max(math.ceil((limit[0] - start[0]) / delta[0]), 0)
        _shape_bomb(where, "constant Range length", [count], limits)


def _track_constant(body: _Body, node: Any) -> None:
    """Follow constants through the few ops exporters put between a constant and a shape."""
    if node.domain not in {"", _STANDARD} or not node.output:
        return
    values: list[int] | None = None
    if node.op_type == "Constant":
        for attribute in node.attribute:
            if attribute.name == "value":
                values = _int_values(attribute.t)
            elif attribute.name == "value_ints":
                values = [int(v) for v in attribute.ints]
            elif attribute.name == "value_int":
                values = [int(attribute.i)]
    elif node.op_type in {"Identity", "Cast"} and node.input:
        values = body.constant(node.input[0])
    elif node.op_type == "Concat" and node.input:
        parts = [body.constant(name) for name in node.input]
        if all(part is not None for part in parts):
            values = [v for part in parts for v in (part or [])]
    if values is not None and len(values) <= _MAX_SHAPE_TENSOR:
        body.constants[node.output[0]] = values


def _check_with_onnx_checker(data: bytes) -> None:
    import onnx

    try:
        onnx.checker.check_model(data, full_check=True)
    except Exception as exc:  # noqa: BLE001  (ValidationError, InferenceError, C++ errors alike)
        text = " ".join(str(exc).split())
        raise reject("checker", f"onnx.checker full check failed: {text[:1000]}") from None


def parse(data: bytes, limits: ValidationLimits) -> onnx.ModelProto:
    """Apply the size cap, then decode the bytes (never from a path)."""
    if len(data) > limits.max_file_bytes:
        raise reject(
            "file-too-large",
            f"the file is {len(data)} bytes, above the limit of {limits.max_file_bytes}",
        )
    import onnx

    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # noqa: BLE001  (any failure to decode untrusted bytes is a rejection)
        raise reject("unparseable", f"not a serialized ONNX model ({exc})") from None
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise reject("unparseable", "not an ONNX model: no IR version or no graph")
    return model


def check_static(data: bytes, limits: ValidationLimits) -> StaticReport:
    """Every rule short of the trial run, in order; raises :class:`ModelRejected`."""
    import onnx

    model = parse(data, limits)
    tensors = list(_messages(model, ""))
    dense = [(where, t) for where, t in tensors if isinstance(t, onnx.TensorProto)]
    _check_external_data(dense)
    bodies = _bodies(model)
    _check_domains(model, bodies, limits)
    node_count = _check_size_of_graph(bodies, limits)
    _check_initializer_bytes(dense, limits)
    _check_declared_shapes(bodies, tensors, limits)
    _check_constant_shapes(bodies, limits)
    _check_with_onnx_checker(data)
    opsets = {opset.domain or _STANDARD: int(opset.version) for opset in model.opset_import}
    return StaticReport(
        ir_version=int(model.ir_version), opset_imports=opsets, node_count=node_count
    )
