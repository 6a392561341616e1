"""The Open Inference Protocol codec (``backplane.inference.v2``) against the real client.

``tritonclient.http`` builds the request bodies (JSON and binary tensors) and parses the
responses, so compatibility with the real client is proven without a server.
"""

from __future__ import annotations

import io
import json
import struct

import msgspec
import numpy as np
import pytest

from backplane.inference import v2
from backplane.inference.v2 import V2Error

th = pytest.importorskip("tritonclient.http")

NUMERIC = {
    "BOOL": np.array([[True, False, True], [False, False, True]]),
    "UINT8": np.array([0, 1, 255], dtype=np.uint8),
    "UINT16": np.array([0, 1, 65535], dtype=np.uint16),
    "UINT32": np.array([0, 7, 2**32 - 1], dtype=np.uint32),
    "UINT64": np.array([0, 2**53 + 1, 2**64 - 1], dtype=np.uint64),
    "INT8": np.array([-128, 0, 127], dtype=np.int8),
    "INT16": np.array([-(2**15), 3, 2**15 - 1], dtype=np.int16),
    "INT32": np.array([[-(2**31), 3], [-4, 2**31 - 1]], dtype=np.int32),
    "INT64": np.array([-(2**63), 2**53 + 1, 2**63 - 1], dtype=np.int64),
    "FP16": np.array([[0.5, -1.25], [65504.0, 6e-8]], dtype=np.float16),
    "FP32": np.array([[0.1, -2.5e-30, 3.4e38]], dtype=np.float32),
    "FP64": np.array([0.1, -1e-300, 1.7976931348623157e308, 2.0**-1074], dtype=np.float64),
}
TENSORS = {
    **NUMERIC,
    "BYTES": np.array([[b"ab", b""], ["hé".encode(), b"\x00 tail\x00"]], dtype=object),
}


def client_request(tensors, binary, outputs=None, **kwargs):
    """A request body and header length exactly as tritonclient.http would send them."""
    inputs = []
    for name, array in tensors.items():
        infer_input = th.InferInput(name, list(array.shape), v2.datatype_of(array.dtype))
        inputs.append(infer_input.set_data_from_numpy(array, binary_data=binary))
    requested = None
    if outputs is not None:
        requested = [th.InferRequestedOutput(n, binary_data=b) for n, b in outputs.items()]
    return th.InferenceServerClient.generate_request_body(inputs, outputs=requested, **kwargs)


def client_result(body, header_length):
    return th.InferResult.from_response_body(body, header_length=header_length)


def client_bytes(result, name):
    """A BYTES output as bytes elements (the client gives str for JSON, bytes for binary)."""
    array = result.as_numpy(name)
    return [item.encode() if isinstance(item, str) else item for item in array.flat]


def assert_same(got, want):
    assert got.shape == want.shape
    if want.dtype == object:
        assert got.dtype == object
        assert got.tolist() == want.tolist()
    else:
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------------------------- datatypes


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("datatype", sorted(TENSORS))
def test_every_datatype_round_trips_through_the_real_client(datatype, binary):
    tensor = TENSORS[datatype]
    body, header_length = client_request(
        {"x": tensor}, binary, outputs={"y": binary}, request_id="req-7"
    )
    assert (header_length is not None) == binary
    request, inputs = v2.decode_request(body, header_length)
    assert request.id == "req-7"
    assert list(inputs) == ["x"]
    assert_same(inputs["x"], tensor)
    assert request.inputs[0].data is None  # handed over as the tensor

    out, out_header_length = v2.encode_infer_response(request, "m", "3", {"y": inputs["x"]})
    assert (out_header_length is not None) == binary
    result = client_result(out, out_header_length)
    if datatype == "BYTES" and not binary:
        assert client_bytes(result, "y") == list(tensor.flat)
        assert result.as_numpy("y").shape == tensor.shape
    else:
        assert_same(result.as_numpy("y"), tensor)
    response = result.get_response()
    assert response["model_name"] == "m"
    assert response["model_version"] == "3"
    assert response["id"] == "req-7"
    assert response["outputs"][0]["datatype"] == datatype


@pytest.mark.parametrize("datatype", ["FP16", "FP32", "FP64"])
def test_binary_floats_keep_nan_and_infinity(datatype):
    tensor = np.array([np.nan, np.inf, -np.inf, -0.0], dtype=v2.numpy_dtype(datatype))
    body, header_length = client_request({"x": tensor}, binary=True)
    _, inputs = v2.decode_request(body, header_length)
    np.testing.assert_array_equal(inputs["x"], tensor)
    out, out_header_length = v2.encode_response("m", "1", inputs, None, True)
    np.testing.assert_array_equal(client_result(out, out_header_length).as_numpy("x"), tensor)


def test_several_inputs_mixing_json_and_binary_in_one_request():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = np.array([b"x", b"yz"], dtype=object)
    c = np.array([5, 6], dtype=np.int64)
    inputs = [
        th.InferInput("a", [3, 4], "FP32").set_data_from_numpy(a, binary_data=True),
        th.InferInput("b", [2], "BYTES").set_data_from_numpy(b, binary_data=True),
        th.InferInput("c", [2], "INT64").set_data_from_numpy(c, binary_data=False),
    ]
    body, header_length = th.InferenceServerClient.generate_request_body(inputs)
    request, tensors = v2.decode_request(body, header_length)
    assert list(tensors) == ["a", "b", "c"]
    assert_same(tensors["a"], a)
    assert_same(tensors["b"], b)
    assert_same(tensors["c"], c)
    # no outputs named: the client asks for everything in binary
    assert request.outputs is None
    assert v2.binary_output_default(request) is True


def test_empty_and_scalar_tensors():
    for binary in (False, True):
        empty = np.zeros((0, 4), dtype=np.float32)
        body, header_length = client_request({"e": empty}, binary)
        _, tensors = v2.decode_request(body, header_length)
        assert_same(tensors["e"], empty)
    body = b'{"inputs":[{"name":"s","shape":[],"datatype":"INT32","data":[7]}]}'
    _, tensors = v2.decode_request(body)
    assert tensors["s"].shape == ()
    assert tensors["s"].dtype == np.int32
    assert int(tensors["s"]) == 7


def test_nested_json_data_is_row_major():
    body = json.dumps(
        {
            "inputs": [
                {"name": "n", "shape": [2, 3], "datatype": "FP32", "data": [[1, 2, 3], [4, 5, 6]]},
                {"name": "f", "shape": [2, 3], "datatype": "INT8", "data": [1, 2, 3, 4, 5, 6]},
                {
                    "name": "s",
                    "shape": [2, 2],
                    "datatype": "BYTES",
                    "data": [["a", "b"], ["c", "d"]],
                },
                {"name": "t", "shape": [1, 2], "datatype": "BOOL", "data": [[True, False]]},
            ]
        }
    ).encode()
    _, tensors = v2.decode_request(body)
    assert_same(tensors["n"], np.arange(1, 7, dtype=np.float32).reshape(2, 3))
    assert_same(tensors["f"], np.arange(1, 7, dtype=np.int8).reshape(2, 3))
    assert tensors["s"].tolist() == [[b"a", b"b"], [b"c", b"d"]]
    assert tensors["t"].tolist() == [[True, False]]


def test_binary_bool_treats_any_non_zero_byte_as_true():
    header = _json(_in(name="b", shape=(3,), datatype="BOOL", data=None, binary_data_size=3))
    _, tensors = v2.decode_request(header + b"\x00\x01\x07", len(header))
    assert tensors["b"].tolist() == [False, True, True]


def test_unaligned_binary_tensors_are_usable():
    header = (
        b'{"inputs":[{"name":"a","shape":[1],"datatype":"UINT8","parameters":{"binary_data_size":1}},'
        b'{"name":"b","shape":[2],"datatype":"FP64","parameters":{"binary_data_size":16}}]}'
    )
    body = header + b"\x09" + np.array([1.5, -2.0]).tobytes()
    _, tensors = v2.decode_request(body, len(header))
    assert tensors["b"].flags.aligned
    assert tensors["b"].tolist() == [1.5, -2.0]


def test_datatype_mappings():
    assert set(TENSORS) == v2.DATATYPES
    for datatype, tensor in NUMERIC.items():
        assert v2.datatype_of(tensor.dtype) == datatype
        assert v2.numpy_dtype(datatype) == tensor.dtype
    assert v2.datatype_of(np.dtype("U3")) == "BYTES"
    assert v2.datatype_of(np.dtype("S3")) == "BYTES"
    assert v2.datatype_of(object) == "BYTES"
    assert v2.datatype_of(np.dtype(">f4")) == "FP32"
    with pytest.raises(TypeError):
        v2.datatype_of(np.complex64)
    with pytest.raises(V2Error, match="BF16"):
        v2.numpy_dtype("BF16")
    assert v2.datatype_from_onnx("tensor(float)") == "FP32"
    assert v2.datatype_from_onnx("tensor(string)") == "BYTES"
    assert v2.datatype_from_onnx("tensor(float16)") == "FP16"
    with pytest.raises(ValueError, match="bfloat16"):
        v2.datatype_from_onnx("tensor(bfloat16)")


def test_bytes_to_str_for_onnxruntime():
    array = np.array([[b"ab", "hé".encode()]], dtype=object)
    converted = v2.bytes_to_str(array)
    assert converted.shape == (1, 2)
    assert converted.tolist() == [["ab", "hé"]]
    with pytest.raises(V2Error, match=r"'words'.*not UTF-8"):
        v2.bytes_to_str(np.array([b"\xff"], dtype=object), "words")


# ----------------------------------------------------------------------------------- responses


def test_binary_response_byte_layout():
    y = np.array([[1.0, 2.0]], dtype=np.float32)
    label = np.array([3, -1], dtype=np.int64)
    words = np.array(["ab", "é"], dtype=object)
    body, header_length = v2.encode_response(
        "clf",
        "2",
        {"y": y, "label": label, "words": words},
        [
            v2.RequestOutput(name="label", parameters={"binary_data": True}),
            v2.RequestOutput(name="y"),
            v2.RequestOutput(name="words", parameters={"binary_data": True}),
        ],
        binary_default=False,
        request_id="abc",
    )
    header = (
        b'{"model_name":"clf","model_version":"2","id":"abc","outputs":['
        b'{"name":"label","datatype":"INT64","shape":[2],"parameters":{"binary_data_size":16}},'
        b'{"name":"y","datatype":"FP32","shape":[1,2],"data":[1.0,2.0]},'
        b'{"name":"words","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":12}}]}'
    )
    tail = (
        struct.pack("<qq", 3, -1)
        + struct.pack("<I", 2)
        + b"ab"
        + struct.pack("<I", 2)
        + "é".encode()
    )
    assert header_length == len(header)
    assert body == header + tail
    result = client_result(body, header_length)
    assert_same(result.as_numpy("label"), label)
    assert_same(result.as_numpy("y"), y)
    assert result.as_numpy("words").tolist() == [b"ab", "é".encode()]
    assert [o["name"] for o in result.get_response()["outputs"]] == ["label", "y", "words"]


def test_json_only_response_has_no_header_length():
    body, header_length = v2.encode_response("m", None, {"y": np.array([1, 2], np.int32)})
    assert header_length is None
    assert json.loads(body) == {
        "model_name": "m",
        "outputs": [{"name": "y", "datatype": "INT32", "shape": [2], "data": [1, 2]}],
    }


def test_request_level_binary_default_and_per_output_override():
    outputs = {"a": np.ones(2, np.float32), "b": np.zeros(2, np.float32)}
    body, header_length = client_request({"x": np.ones(1, np.float32)}, binary=False)
    request, _ = v2.decode_request(body, header_length)
    assert v2.binary_output_default(request) is True  # set by the client: no outputs named
    assert v2.requested_output_names(request) is None
    out, out_header_length = v2.encode_infer_response(request, "m", "1", outputs)
    response = client_result(out, out_header_length).get_response()
    assert all("binary_data_size" in o["parameters"] for o in response["outputs"])

    body, header_length = client_request(
        {"x": np.ones(1, np.float32)}, binary=False, outputs={"b": False, "a": True}
    )
    request, _ = v2.decode_request(body, header_length)
    assert v2.requested_output_names(request) == ["b", "a"]
    out, out_header_length = v2.encode_infer_response(request, "m", "1", outputs)
    response = client_result(out, out_header_length).get_response()
    assert [o["name"] for o in response["outputs"]] == ["b", "a"]
    assert "data" in response["outputs"][0]
    assert response["outputs"][1]["parameters"] == {"binary_data_size": 8}

    # request-level default applies to requested outputs that do not say
    request = v2.InferRequest(
        inputs=[],
        parameters={"binary_data_output": True},
        outputs=[
            v2.RequestOutput(name="a"),
            v2.RequestOutput(name="b", parameters={"binary_data": False}),
        ],
    )
    out, out_header_length = v2.encode_infer_response(request, "m", None, outputs)
    response = client_result(out, out_header_length).get_response()
    assert "parameters" in response["outputs"][0]
    assert "data" in response["outputs"][1]


def test_json_response_writes_non_finite_floats_as_null():
    body, _ = v2.encode_response("m", "1", {"y": np.array([np.nan, 1.0], np.float32)})
    assert json.loads(body)["outputs"][0]["data"] == [None, 1.0]


def test_output_from_onnxruntime_string_tensor_and_numpy_strings():
    for array in (
        np.array(["a", "bc"], dtype=object),
        np.array(["a", "bc"]),
        np.array([b"a", b"bc"]),
    ):
        for binary in (False, True):
            body, header_length = v2.encode_response("m", "1", {"s": array}, None, binary)
            assert client_bytes(client_result(body, header_length), "s") == [b"a", b"bc"]


def test_metadata_documents():
    meta = v2.ModelMetadata(
        name="wide_mlp",
        versions=["1"],
        platform="onnxruntime_onnx",
        inputs=[v2.MetadataTensor(name="float_input", datatype="FP32", shape=[-1, 256])],
        outputs=[v2.MetadataTensor(name="variable", datatype="FP32", shape=[-1, 1])],
    )
    assert json.loads(msgspec.json.encode(meta)) == {
        "name": "wide_mlp",
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "float_input", "datatype": "FP32", "shape": [-1, 256]}],
        "outputs": [{"name": "variable", "datatype": "FP32", "shape": [-1, 1]}],
    }
    server = v2.ServerMetadata(name="backplane", version="0.1.0", extensions=["binary_tensor_data"])
    assert json.loads(msgspec.json.encode(server))["extensions"] == ["binary_tensor_data"]
    assert json.loads(V2Error("nope").body()) == {"error": "nope"}


# ------------------------------------------------------------------------- the example models


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("name", ["iris_classifier", "diabetes_regressor"])
def test_example_models_through_the_codec_match_scikit_learn(name, binary):
    ort = pytest.importorskip("onnxruntime")
    from backplane import models

    with np.load(io.BytesIO(models.resource("expected.npz").read_bytes())) as npz:
        x = npz[f"{name}__input"]
        entry = models.example_model(name)
        expected = {o.name: npz[f"{name}__{o.name}"] for o in entry.outputs}
    body, header_length = client_request(
        {"float_input": x}, binary, outputs=dict.fromkeys(expected, binary)
    )
    request, inputs = v2.decode_request(body, header_length)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(models.read_model(name), options)
    names = v2.requested_output_names(request)
    outputs = dict(zip(names, session.run(names, inputs), strict=True))
    out, out_header_length = v2.encode_infer_response(request, name, "1", outputs)
    result = client_result(out, out_header_length)
    for out_name, want in expected.items():
        got = result.as_numpy(out_name)
        if want.dtype.kind == "i":
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


# -------------------------------------------------------------------------------------- errors


def _json(*inputs, **extra):
    return json.dumps({"inputs": list(inputs), **extra}).encode()


def _in(name="x", shape=(2,), datatype="FP32", data=(1, 2), **params):
    doc = {"name": name, "shape": list(shape), "datatype": datatype}
    if data is not None:
        doc["data"] = list(data)
    if params:
        doc["parameters"] = params
    return doc


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "malformed"),
        (b"[]", "invalid inference request"),
        (b'{"id":"x"}', "invalid inference request"),  # no inputs
        (_json(_in(shape=("2",))), "invalid inference request"),
        (_json(_in(datatype="FP8")), "unsupported datatype 'FP8'"),
        (_json(_in(datatype="BF16")), "unsupported datatype 'BF16'"),
        (_json(_in(shape=(3,))), "data has 2 elements, shape \\[3\\] needs 3"),
        (_json(_in(shape=(2, 2))), "data has 2 elements"),
        (_json(_in(datatype="BYTES", data=["a"])), "data has 1 elements"),
        (_json(_in(datatype="BYTES", data=["a", "b", "c"])), "more than the 2 elements"),
        (_json(_in(datatype="BYTES", data=[1, 2])), "BYTES data must be strings"),
        (_json(_in(shape=(2,), data=[[1, 2], [3]])), "not a regular array"),
        (_json(_in(data=["1.5", "2"])), "FP32 data must be numbers"),
        (_json(_in(data=[None, 1])), "FP32 data must be numbers"),
        (_json(_in(data=[True, False])), "FP32 data must be numbers"),
        (_json(_in(datatype="INT32", data=[1.5, 2])), "INT32 data must be integers"),
        (_json(_in(datatype="BOOL", data=[1, 0])), "BOOL data must be booleans"),
        (_json(_in(datatype="INT8", data=[1, 128])), "out of range for INT8"),
        (_json(_in(datatype="UINT8", data=[-1, 0])), "out of range for UINT8"),
        (_json(_in(datatype="UINT64", data=[-1, 2**64 - 1])), "out of range for UINT64"),
        (_json(_in(datatype="UINT64", data=[0.5, 2**64 - 1])), "UINT64 data must be integers"),
        (_json(_in(datatype="INT64", data=[0, 2**63])), "out of range for INT64"),
        (_json(_in(datatype="INT64", data=[0, 2**64])), "out of range for INT64"),
        (_json(_in(datatype="INT32", data=[None, 1])), "INT32 data must be integers"),
        (_json(_in(shape=(-1, 2))), "negative dimension"),
        (_json(_in(shape=[1] * 33, data=[1])), "more than 32"),
        (_json(_in(), _in()), "duplicate input 'x'"),
        (_json(_in(data=None)), "neither data nor binary_data_size"),
        (_json(_in(binary_data_size=8)), "both JSON data and binary_data_size"),
        (
            _json(_in(data=None, binary_data_size=8)),
            "only 0 bytes .*no Inference-Header-Content-Length",
        ),
        (_json(_in(data=None, binary_data_size=-8)), "non-negative integer"),
        (_json(_in(data=None, binary_data_size="8")), "non-negative integer"),
        (_json(_in(data=None, binary_data_size=True)), "non-negative integer"),
        (_json(_in(data=None, shared_memory_region="r")), "shared-memory"),
    ],
)
def test_malformed_json_requests_are_refused(body, message):
    with pytest.raises(V2Error, match=message) as info:
        v2.decode_request(body)
    assert info.value.status_code == 400
    assert json.loads(info.value.body())["error"] == info.value.message


def _binary(inputs, tail, header_length=None):
    header = _json(*inputs)
    return header + tail, len(header) if header_length is None else header_length


@pytest.mark.parametrize(
    ("inputs", "tail", "message"),
    [
        ([_in(data=None, binary_data_size=8)], b"\0" * 4, "binary_data_size is 8 but only 4"),
        (
            [_in(data=None, binary_data_size=4)],
            b"\0" * 4,
            "binary_data_size is 4 but shape \\[2\\] of FP32 needs 8",
        ),
        ([_in(data=None, binary_data_size=8)], b"\0" * 9, "1 bytes of binary data are left over"),
        ([_in()], b"\0", "1 bytes of binary data are left over"),
        (
            [_in(datatype="BYTES", data=None, binary_data_size=6)],
            struct.pack("<I", 1) + b"a\x00",
            "ends inside a length prefix",
        ),
        (
            [_in(datatype="BYTES", data=None, binary_data_size=6)],
            struct.pack("<I", 5) + b"ab",
            "element 0 runs past its data",
        ),
        (
            [_in(datatype="BYTES", data=None, binary_data_size=5)],
            struct.pack("<I", 1) + b"a",
            "holds 1 elements, shape needs 2",
        ),
        (
            [_in(shape=(1,), datatype="BYTES", data=None, binary_data_size=10)],
            (struct.pack("<I", 1) + b"a") * 2,
            "more than 1 elements",
        ),
    ],
)
def test_malformed_binary_requests_are_refused(inputs, tail, message):
    body, header_length = _binary(inputs, tail)
    with pytest.raises(V2Error, match=message):
        v2.decode_request(body, header_length)


def test_header_length_outside_the_body_is_refused():
    body, header_length = client_request({"x": np.ones(2, np.float32)}, binary=True)
    with pytest.raises(V2Error, match="outside the body"):
        v2.decode_request(body, len(body) + 1)
    with pytest.raises(V2Error, match="outside the body"):
        v2.decode_request(body, -1)
    with pytest.raises(V2Error, match="malformed"):
        v2.decode_request(body, header_length - 1)  # cuts the JSON header short
    with pytest.raises(V2Error, match="malformed"):
        v2.decode_request(body, None)  # binary tail read as JSON


def test_parse_header_length():
    assert v2.parse_header_length(None) is None
    assert v2.parse_header_length("123") == 123
    assert v2.parse_header_length(" 0 ") == 0
    for bad in ("", "-1", "1.5", "abc", "١٢", "9" * 19):
        with pytest.raises(V2Error, match="Inference-Header-Content-Length"):
            v2.parse_header_length(bad)


def test_limits_on_declared_sizes():
    huge = _json(_in(shape=(2**40, 2**40), data=[]))
    with pytest.raises(V2Error, match="exceeds the limit"):
        v2.decode_request(huge)
    with pytest.raises(V2Error, match="exceeds the limit"):
        v2.decode_request(_json(_in(shape=(0, 2**62), data=[])))
    with pytest.raises(V2Error, match="exceeds the limit of 3 elements"):
        v2.decode_request(_json(_in(), _in(name="y")), max_elements=3)
    v2.decode_request(_json(_in(), _in(name="y")), max_elements=4)
    with pytest.raises(V2Error, match="larger than the 12 bytes"):
        v2.decode_request(_json(_in(), _in(name="y")), max_bytes=12)
    body, header_length = _binary([_in(data=None, binary_data_size=2**40)], b"")
    with pytest.raises(V2Error, match="larger than the"):
        v2.decode_request(body, header_length)
    bytes_input = _in(shape=(1,), datatype="BYTES", data=["x" * 100])
    with pytest.raises(V2Error, match="larger than the 64 bytes"):
        v2.decode_request(_json(bytes_input), max_bytes=64)
    body, header_length = client_request({"s": np.array([b"y" * 100], dtype=object)}, binary=True)
    with pytest.raises(V2Error, match="larger than the 64 bytes"):
        v2.decode_request(body, header_length, max_bytes=64)


def test_response_errors():
    outputs = {"y": np.zeros(1, np.float32)}
    with pytest.raises(V2Error, match="unexpected inference output 'z' for model 'm'"):
        v2.encode_response("m", "1", outputs, [v2.RequestOutput(name="z")])
    with pytest.raises(V2Error, match="requested twice"):
        v2.encode_response("m", "1", outputs, [v2.RequestOutput(name="y")] * 2)
    with pytest.raises(V2Error, match="classification"):
        v2.encode_response(
            "m", "1", outputs, [v2.RequestOutput(name="y", parameters={"classification": 2})]
        )
    with pytest.raises(V2Error, match="'binary_data' must be a boolean"):
        v2.encode_response(
            "m", "1", outputs, [v2.RequestOutput(name="y", parameters={"binary_data": 1})]
        )
    request = v2.InferRequest(inputs=[], parameters={"binary_data_output": "yes"})
    with pytest.raises(V2Error, match="'binary_data_output' must be a boolean"):
        v2.binary_output_default(request)
    not_utf8 = {"s": np.array([b"\xff"], dtype=object)}
    with pytest.raises(V2Error, match="not UTF-8; request it with binary_data"):
        v2.encode_response("m", "1", not_utf8)
    body, header_length = v2.encode_response("m", "1", not_utf8, None, True)
    assert client_result(body, header_length).as_numpy("s").tolist() == [b"\xff"]
    with pytest.raises(TypeError):
        v2.encode_response("m", "1", {"c": np.zeros(1, np.complex64)})
    with pytest.raises(TypeError):
        v2.encode_response("m", "1", {"o": np.array([1], dtype=object)}, None, True)
