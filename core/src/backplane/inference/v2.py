"""The Open Inference Protocol (KServe V2 / Triton HTTP/REST) request and response codec.

Pure functions over bytes and numpy arrays, independent of Litestar; every protocol error is a
:class:`V2Error`, whose :meth:`V2Error.body` is the protocol's ``{"error": "..."}``. Supported,
as Triton and KServe speak them:

- JSON tensors: ``data`` flattened or nested, row-major, checked against ``shape``;
- the binary tensor data extension (``Inference-Header-Content-Length``): inputs with
  ``binary_data_size`` take their bytes from the tail, in order; numbers are little-endian,
  ``BOOL`` one byte each, ``BYTES`` elements each a 4-byte little-endian length and the bytes;
- binary outputs per output ``binary_data``, else the request's ``binary_data_output``;
- every tensor type onnxruntime exposes to numpy (``BF16`` is not, and is refused).

``BYTES`` tensors decode to object arrays of :class:`bytes`; onnxruntime wants :class:`str`
(it would feed ``str(b"...")``), hence :func:`bytes_to_str`. JSON cannot carry NaN or
infinity: such floats are written as ``null`` (``binary_data`` keeps them exact). Not
supported: the shared-memory and classification extensions.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final, TypeAlias

import msgspec
import numpy as np
import numpy.typing as npt

from backplane.inference._trial import ORT_TYPES

Tensor: TypeAlias = npt.NDArray[Any]
"""A tensor as the codec hands it over: any numpy array (``BYTES`` ones have ``dtype=object``)."""

ParamValue: TypeAlias = bool | int | float | str
"""A protocol ``$parameter`` value."""

HEADER_LENGTH_HEADER: Final = "Inference-Header-Content-Length"
"""The HTTP header of the binary tensor data extension (request and response)."""

DEFAULT_MAX_ELEMENTS: Final = 1 << 24
"""Default cap on the elements of all inputs of one request together (16 Mi)."""

DEFAULT_MAX_BYTES: Final = 1 << 28
"""Default cap on the decoded bytes of all inputs of one request together (256 MiB)."""

MAX_RANK: Final = 32
"""Most dimensions a tensor may declare."""

_DTYPES: Final[dict[str, np.dtype[Any]]] = {
    datatype: np.dtype(dtype).newbyteorder("<") for dtype, datatype in ORT_TYPES.values()
}
"""V2 datatype -> numpy dtype, little-endian as the binary extension carries numbers."""

DATATYPES: Final = frozenset(_DTYPES)
"""Every V2 datatype this codec reads and writes."""

_BY_KIND_SIZE: Final[dict[tuple[str, int], str]] = {
    (dt.kind, dt.itemsize): name for name, dt in _DTYPES.items() if name != "BYTES"
}

_U32: Final = struct.Struct("<I")


class V2Error(ValueError):
    """A request the protocol refuses; ``message`` is meant for the client (a 400 by default)."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code

    def body(self) -> bytes:
        """The protocol's error document, ``{"error": message}``."""
        return msgspec.json.encode(ErrorResponse(error=self.message))


class RequestInput(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``$request_input``: one input tensor. ``data`` is ``None`` once decoded (see below)."""

    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, ParamValue] | None = None
    data: list[Any] | None = None


class RequestOutput(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``$request_output``: an output the client wants, e.g. ``{"binary_data": true}``."""

    name: str
    parameters: dict[str, ParamValue] | None = None


class InferRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``$inference_request``. ``outputs`` absent means every output of the model."""

    id: str | None = None
    parameters: dict[str, ParamValue] | None = None
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


class ResponseOutput(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``$response_output``: ``data`` (flattened, row-major) or ``binary_data_size``."""

    name: str
    datatype: str
    shape: list[int]
    parameters: dict[str, ParamValue] | None = None
    data: list[Any] | None = None


class InferResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``$inference_response``."""

    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, ParamValue] | None = None
    outputs: list[ResponseOutput]


class MetadataTensor(msgspec.Struct, kw_only=True):
    """``$metadata_tensor``: a model input or output; ``-1`` marks a dynamic dimension."""

    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(msgspec.Struct, kw_only=True):
    """``$metadata_model_response`` of ``GET /v2/models/{name}[/versions/{v}]``."""

    name: str
    versions: list[str] = msgspec.field(default_factory=list)
    platform: str
    """The model's runtime (:attr:`backplane.InferenceRuntime.platform`)."""
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class ServerMetadata(msgspec.Struct, kw_only=True):
    """``$metadata_server_response`` of ``GET /v2``."""

    name: str
    version: str
    extensions: list[str] = msgspec.field(default_factory=list)


class ErrorResponse(msgspec.Struct, kw_only=True):
    """``$*_error_response``: every failure's body."""

    error: str


def numpy_dtype(datatype: str) -> np.dtype[Any]:
    """The numpy dtype of a V2 datatype (``object`` for ``BYTES``); :class:`V2Error` if unknown."""
    try:
        return _DTYPES[datatype]
    except KeyError:
        raise V2Error(f"unsupported datatype {datatype!r}") from None


def datatype_of(dtype: npt.DTypeLike) -> str:
    """The V2 datatype of a numpy dtype (``O``, ``S``, ``U``: ``BYTES``); :class:`TypeError`,
    the server's mistake and not the client's, for one with none (complex, datetime, ...)."""
    dt = np.dtype(dtype)
    if dt.kind in "OSU":
        return "BYTES"
    try:
        return _BY_KIND_SIZE[dt.kind, dt.itemsize]
    except KeyError:
        raise TypeError(f"numpy dtype {dt} has no V2 datatype") from None


def datatype_from_onnx(onnx_type: str) -> str:
    """The V2 datatype of an onnxruntime type such as ``"tensor(float)"``, else ValueError."""
    try:
        return ORT_TYPES[onnx_type][1]
    except KeyError:
        raise ValueError(f"ONNX type {onnx_type!r} has no V2 datatype") from None


def parse_header_length(value: str | None) -> int | None:
    """Parse an ``Inference-Header-Content-Length`` header value (``None`` when absent)."""
    if value is None:
        return None
    text = value.strip()
    if not text.isdecimal() or not text.isascii() or len(text) > 18:
        raise V2Error(f"invalid {HEADER_LENGTH_HEADER} header {value!r}")
    return int(text)


def decode_request(
    body: bytes,
    header_length: int | None = None,
    *,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[InferRequest, dict[str, Tensor]]:
    """The request document and its input tensors (by name, in request order); :class:`V2Error`
    for anything malformed.

    ``header_length`` (:func:`parse_header_length`) splits the JSON header from the binary
    tensor data; ``None``: all JSON. Binary numeric tensors may be read-only views into ``body``;
    each input's ``data`` is cleared (the tensors hold it). ``max_elements`` and ``max_bytes``
    cap all inputs together, checked on the declared sizes before anything is allocated.
    """
    view = memoryview(body)
    if header_length is None:
        header, tail = view, view[:0]
    else:
        if header_length < 0 or header_length > len(body):
            raise V2Error(
                f"{HEADER_LENGTH_HEADER} {header_length} is outside the body of {len(body)} bytes"
            )
        header, tail = view[:header_length], view[header_length:]
    try:
        request = msgspec.json.decode(header, type=InferRequest)
    except msgspec.ValidationError as exc:
        raise V2Error(f"invalid inference request: {exc}") from None
    except msgspec.DecodeError as exc:
        raise V2Error(f"malformed inference request JSON: {exc}") from None

    tensors: dict[str, Tensor] = {}
    reader = _Reader(tail, header_length is not None, max_elements, max_bytes)
    for tensor_input in request.inputs:
        if tensor_input.name in tensors:
            raise V2Error(f"duplicate input {tensor_input.name!r}")
        tensors[tensor_input.name] = reader.decode(tensor_input)
        tensor_input.data = None
    if reader.offset != len(tail):
        raise V2Error(
            f"{len(tail) - reader.offset} bytes of binary data are left over after the inputs "
            "(binary_data_size does not add up)"
        )
    return request, tensors


class _Reader:
    """Decodes inputs one by one: from the binary tail, consumed in order, or their JSON data,
    within what is left of the request's element and byte allowances."""

    def __init__(self, tail: memoryview, has_header: bool, elements: int, nbytes: int) -> None:
        self.tail, self.has_header, self.offset = tail, has_header, 0
        self.max_elements, self.max_bytes = elements, nbytes
        self.elements, self.bytes = elements, nbytes

    def take_bytes(self, amount: int, name: str) -> None:
        if amount > self.bytes:
            raise V2Error(f"input {name!r} is larger than the {self.max_bytes} bytes allowed")
        self.bytes -= amount

    def take_shape(self, shape: list[int], name: str) -> int:
        if len(shape) > MAX_RANK:
            raise V2Error(f"input {name!r} has {len(shape)} dimensions, more than {MAX_RANK}")
        if any(dim < 0 for dim in shape):
            raise V2Error(f"input {name!r} has a negative dimension in shape {shape}")
        too_many = V2Error(
            f"input {name!r} shape {shape} exceeds the limit of {self.max_elements} elements"
        )
        if any(dim > self.max_elements for dim in shape):
            raise too_many
        count = 1
        for dim in shape:
            count *= dim
            if count > self.elements:
                raise too_many
        self.elements -= count
        return count

    def take_binary(self, size: int, name: str) -> memoryview:
        left = len(self.tail) - self.offset
        if size > left:
            hint = "" if self.has_header else f" (no {HEADER_LENGTH_HEADER} header)"
            raise V2Error(
                f"input {name!r}: binary_data_size is {size} but only {left} bytes of binary "
                f"data remain{hint}"
            )
        self.offset += size
        return self.tail[self.offset - size : self.offset]

    def decode(self, tensor_input: RequestInput) -> Tensor:
        name = tensor_input.name
        dtype = _DTYPES.get(tensor_input.datatype)
        if dtype is None:
            raise V2Error(f"unsupported datatype {tensor_input.datatype!r} for input {name!r}")
        shape = tensor_input.shape
        count = self.take_shape(shape, name)
        if dtype.kind != "O" and count * dtype.itemsize > self.bytes:
            raise V2Error(f"input {name!r} is larger than the {self.max_bytes} bytes allowed")
        params = tensor_input.parameters or {}
        if "shared_memory_region" in params:
            raise V2Error(f"input {name!r}: the shared-memory extension is not supported")
        size = params.get("binary_data_size")
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise V2Error(f"input {name!r}: binary_data_size must be a non-negative integer")
            if tensor_input.data is not None:
                raise V2Error(f"input {name!r} has both JSON data and binary_data_size")
            self.take_bytes(size, name)
            return _from_binary(self.take_binary(size, name), dtype, shape, count, name)
        if tensor_input.data is None:
            raise V2Error(f"input {name!r} has neither data nor binary_data_size")
        array = _from_json(tensor_input.data, tensor_input, dtype, count)
        self.take_bytes(_payload_bytes(array), name)
        return array


def _payload_bytes(array: Tensor) -> int:
    if array.dtype.kind == "O":
        return sum(len(item) for item in array.flat) + 4 * array.size
    return int(array.nbytes)


def _from_binary(
    chunk: memoryview, dtype: np.dtype[Any], shape: list[int], count: int, name: str
) -> Tensor:
    if dtype.kind == "O":
        return _parse_bytes_elements(chunk, count, name).reshape(shape)
    expected = count * dtype.itemsize
    if len(chunk) != expected:
        raise V2Error(
            f"input {name!r}: binary_data_size is {len(chunk)} but shape {shape} of "
            f"{_datatype_name(dtype)} needs {expected} bytes"
        )
    if dtype.kind == "b":  # any non-zero byte is true; never reinterpret other bytes as bool
        flags: Tensor = np.frombuffer(chunk, dtype=np.uint8) != 0
        return flags.reshape(shape)
    array = np.frombuffer(chunk, dtype=dtype)
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    elif not array.flags.aligned:
        array = array.copy()
    return array.reshape(shape)


def _parse_bytes_elements(chunk: memoryview, count: int, name: str) -> Tensor:
    out: Tensor = np.empty(count, dtype=object)
    end, pos, index = len(chunk), 0, 0
    while pos < end:
        if index >= count:
            raise V2Error(f"input {name!r}: binary BYTES data holds more than {count} elements")
        if pos + 4 > end:
            raise V2Error(f"input {name!r}: binary BYTES data ends inside a length prefix")
        (length,) = _U32.unpack_from(chunk, pos)
        pos += 4
        if pos + length > end:
            raise V2Error(f"input {name!r}: binary BYTES element {index} runs past its data")
        out[index] = bytes(chunk[pos : pos + length])
        pos += length
        index += 1
    if index != count:
        raise V2Error(
            f"input {name!r}: binary BYTES data holds {index} elements, shape needs {count}"
        )
    return out


def _flatten(data: list[Any]) -> Iterator[Any]:
    stack: list[Iterator[Any]] = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            yield item
        else:
            stack.pop()


def _bytes_from_json(data: list[Any], shape: list[int], count: int, name: str) -> Tensor:
    out: Tensor = np.empty(count, dtype=object)
    index = 0
    for item in _flatten(data):
        if not isinstance(item, str):
            raise V2Error(f"input {name!r}: BYTES data must be strings")
        if index >= count:
            raise V2Error(f"input {name!r}: data has more than the {count} elements of {shape}")
        out[index] = item.encode()
        index += 1
    if index != count:
        raise V2Error(f"input {name!r}: data has {index} elements, shape {shape} needs {count}")
    return out.reshape(shape)


def _from_json(data: list[Any], tensor: RequestInput, dtype: np.dtype[Any], count: int) -> Tensor:
    shape, name, datatype = tensor.shape, tensor.name, tensor.datatype
    if dtype.kind == "O":
        return _bytes_from_json(data, shape, count, name)
    try:
        raw = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        raise V2Error(f"input {name!r}: data is not a regular array of numbers") from None
    if raw.size != count:
        raise V2Error(f"input {name!r}: data has {raw.size} elements, shape {shape} needs {count}")
    if count == 0:
        return np.zeros(shape, dtype=dtype)
    if dtype.kind in "iu":
        raw = _as_integers(raw, data, dtype, datatype, name)
    elif raw.dtype.kind not in ("b" if dtype.kind == "b" else "iuf"):
        expected = "booleans" if dtype.kind == "b" else "numbers"
        raise V2Error(f"input {name!r}: {datatype} data must be {expected}")
    return raw.astype(dtype, copy=False).reshape(shape)


def _as_integers(
    raw: Tensor, data: list[Any], dtype: np.dtype[Any], datatype: str, name: str
) -> Tensor:
    out_of_range = V2Error(f"input {name!r}: a value is out of range for {datatype}")
    if raw.dtype.kind in "iu":
        if raw.dtype != dtype:
            info = np.iinfo(dtype)
            if raw.min() < info.min or raw.max() > info.max:
                raise out_of_range
        return raw
    # numpy infers float64 (or object) for ints that fit no one integer type: 0 and 2**64 - 1.
    if raw.dtype.kind not in "fO" or not all(type(item) is int for item in _flatten(data)):
        raise V2Error(f"input {name!r}: {datatype} data must be integers")
    try:
        return np.asarray(data, dtype=dtype)
    except OverflowError:
        raise out_of_range from None


def _datatype_name(dtype: np.dtype[Any]) -> str:
    return "BYTES" if dtype.kind == "O" else _BY_KIND_SIZE[dtype.kind, dtype.itemsize]


def bytes_to_str(array: Tensor, name: str = "input") -> Tensor:
    """A decoded ``BYTES`` tensor with UTF-8 :class:`str` elements, as onnxruntime takes them."""
    out: Tensor = np.empty(array.shape, dtype=object)
    flat = out.reshape(-1)
    for index, item in enumerate(array.flat):
        if isinstance(item, bytes):
            try:
                flat[index] = item.decode()
            except UnicodeDecodeError:
                raise V2Error(f"input {name!r}: BYTES element {index} is not UTF-8") from None
        else:
            flat[index] = str(item)
    return out


def _bool_param(params: Mapping[str, ParamValue] | None, key: str, where: str) -> bool | None:
    if params is None or key not in params:
        return None
    value = params[key]
    if not isinstance(value, bool):
        raise V2Error(f"{where}: parameter {key!r} must be a boolean")
    return value


def binary_output_default(request: InferRequest) -> bool:
    """The request-level ``binary_data_output`` parameter (``False`` when absent)."""
    return bool(_bool_param(request.parameters, "binary_data_output", "request"))


def requested_output_names(request: InferRequest) -> list[str] | None:
    """The outputs the request names, in order (for ``session.run``); ``None`` means all."""
    return None if request.outputs is None else [output.name for output in request.outputs]


def encode_response(
    model_name: str,
    model_version: str | None,
    outputs: Mapping[str, Tensor],
    requested: Sequence[RequestOutput] | None = None,
    binary_default: bool = False,
    *,
    request_id: str | None = None,
    parameters: dict[str, ParamValue] | None = None,
) -> tuple[bytes, int | None]:
    """The response body and, when an output is binary, its JSON header's length (``None``:
    plain JSON).

    ``requested`` (the request's ``outputs``) picks and orders the outputs, each binary as its
    ``binary_data`` parameter says, else as ``binary_default`` (:func:`binary_output_default`);
    ``None`` returns every output. :class:`V2Error` for what the client asked wrongly;
    :class:`TypeError` for an array with no V2 datatype (the server's mistake).
    """
    chosen: list[tuple[str, Tensor, bool]] = []
    if requested is None:
        chosen = [(name, array, binary_default) for name, array in outputs.items()]
    else:
        seen: set[str] = set()
        for item in requested:
            where = f"output {item.name!r}"
            if item.name in seen:
                raise V2Error(f"{where} is requested twice")
            seen.add(item.name)
            if item.name not in outputs:
                raise V2Error(f"unexpected inference output {item.name!r} for model {model_name!r}")
            if item.parameters is not None and "classification" in item.parameters:
                raise V2Error(f"{where}: the classification extension is not supported")
            binary = _bool_param(item.parameters, "binary_data", where)
            chosen.append(
                (item.name, outputs[item.name], binary_default if binary is None else binary)
            )

    documents: list[ResponseOutput] = []
    buffers: list[bytes] = []
    for name, value, binary in chosen:
        array = np.asarray(value)
        datatype = datatype_of(array.dtype)
        output = ResponseOutput(name=name, datatype=datatype, shape=list(array.shape))
        if binary:
            buffers.append(_to_binary(array, datatype, name))
            output.parameters = {"binary_data_size": len(buffers[-1])}
        else:
            output.data = _to_json(array, datatype, name)
        documents.append(output)
    header = msgspec.json.encode(
        InferResponse(
            model_name=model_name,
            model_version=model_version,
            id=request_id,
            parameters=parameters,
            outputs=documents,
        )
    )
    if not buffers:
        return header, None
    return b"".join([header, *buffers]), len(header)


def encode_infer_response(
    request: InferRequest,
    model_name: str,
    model_version: str | None,
    outputs: Mapping[str, Tensor],
) -> tuple[bytes, int | None]:
    """:func:`encode_response` for ``request``: its outputs, binary choices and id."""
    return encode_response(
        model_name,
        model_version,
        outputs,
        request.outputs,
        binary_output_default(request),
        request_id=request.id,
    )


def _bytes_elements(array: Tensor, name: str) -> Iterator[bytes | str]:
    for item in array.flat:
        if not isinstance(item, bytes | str):
            raise TypeError(f"output {name!r}: BYTES element of type {type(item).__name__}")
        yield item


def _to_binary(array: Tensor, datatype: str, name: str) -> bytes:
    if datatype == "BYTES":
        items = [i if isinstance(i, bytes) else i.encode() for i in _bytes_elements(array, name)]
        return b"".join(part for item in items for part in (_U32.pack(len(item)), item))
    little = array.dtype.newbyteorder("<") if array.dtype.kind != "b" else array.dtype
    return np.ascontiguousarray(array, dtype=little).tobytes()


def _to_json(array: Tensor, datatype: str, name: str) -> list[Any]:
    if datatype != "BYTES":
        flat: list[Any] = array.ravel().tolist()
        return flat
    try:  # str(): plain str, not numpy.str_
        return [
            i.decode() if isinstance(i, bytes) else str(i) for i in _bytes_elements(array, name)
        ]
    except UnicodeDecodeError:
        raise V2Error(
            f"output {name!r} holds bytes that are not UTF-8; request it with binary_data"
        ) from None
