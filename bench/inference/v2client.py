"""The benchmark's side of the V2 inference protocol: request bodies and response decoding.

Only what the benchmark sends and reads: one FP32 input, outputs as JSON tensors or with the
binary tensor data extension (``Inference-Header-Content-Length``, ``binary_data_size``).
Dependency-free apart from numpy, so that ``run.py`` can check every server's answer against an
in-process ``session.run`` before it loads it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

HEADER_LENGTH = "Inference-Header-Content-Length"

_DTYPES = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}


class V2ResponseError(ValueError):
    """The answer is not a V2 inference response the benchmark can read."""


@dataclass(frozen=True)
class Body:
    """A request body and the headers it needs (besides authentication)."""

    content: bytes
    headers: dict[str, str]


def json_request(name: str, array: np.ndarray[Any, Any], outputs: list[str] | None = None) -> Body:
    """JSON tensors in and out."""
    request: dict[str, Any] = {
        "inputs": [
            {
                "name": name,
                "shape": list(array.shape),
                "datatype": "FP32",
                # float32 values as the doubles they are exactly: they parse back unchanged
                "data": np.asarray(array, np.float32).ravel().tolist(),
            }
        ]
    }
    if outputs:
        request["outputs"] = [{"name": o} for o in outputs]
    return Body(
        json.dumps(request, separators=(",", ":")).encode(),
        {"Content-Type": "application/json"},
    )


def binary_request(name: str, array: np.ndarray[Any, Any], outputs: list[str]) -> Body:
    """The binary tensor data extension in and out."""
    raw = np.ascontiguousarray(array, np.float32).tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": name,
                    "shape": list(array.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [{"name": o, "parameters": {"binary_data": True}} for o in outputs],
        },
        separators=(",", ":"),
    ).encode()
    return Body(
        header + raw,
        {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(header))},
    )


def decode_response(content: bytes, header_length: str | None) -> dict[str, np.ndarray[Any, Any]]:
    """Output tensors by name, from a JSON or binary-extension V2 inference response."""
    if header_length is not None:
        try:
            length = int(header_length)
        except ValueError:
            raise V2ResponseError(f"bad {HEADER_LENGTH}: {header_length!r}") from None
        if not 0 < length <= len(content):
            raise V2ResponseError(f"{HEADER_LENGTH} {length} outside a {len(content)}-byte body")
        head, binary = content[:length], content[length:]
    else:
        head, binary = content, b""
    try:
        document = json.loads(head)
    except ValueError as exc:
        raise V2ResponseError(f"not JSON: {head[:200]!r}") from exc
    if not isinstance(document, dict) or "outputs" not in document:
        raise V2ResponseError(f"no outputs in {str(document)[:300]}")
    tensors: dict[str, np.ndarray[Any, Any]] = {}
    offset = 0
    for output in document["outputs"]:
        name, datatype, shape = output["name"], output["datatype"], output["shape"]
        if datatype not in _DTYPES:
            raise V2ResponseError(f"output {name}: datatype {datatype} not supported here")
        dtype = np.dtype(_DTYPES[datatype])
        size = (output.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            chunk = binary[offset : offset + size]
            if len(chunk) != size:
                raise V2ResponseError(f"output {name}: {size} bytes announced, {len(chunk)} sent")
            offset += size
            array = np.frombuffer(chunk, dtype=dtype)
        else:
            array = np.asarray(_flatten(output["data"]), dtype=dtype)
        count = int(np.prod(shape)) if shape else 1
        if array.size != count:
            raise V2ResponseError(f"output {name}: {array.size} values for shape {shape}")
        tensors[name] = array.reshape(shape)
    if offset != len(binary):
        raise V2ResponseError(f"{len(binary) - offset} binary bytes left unread")
    return tensors


def _flatten(data: Any) -> list[Any]:
    """V2 JSON tensors may be flat or nested row-major lists."""
    if not isinstance(data, list):
        return [data]
    if all(not isinstance(d, list) for d in data):
        return data
    flat: list[Any] = []
    for item in data:
        flat.extend(_flatten(item))
    return flat
