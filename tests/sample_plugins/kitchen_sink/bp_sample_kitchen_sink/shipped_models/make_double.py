"""Build ``double.onnx`` (y = 2x, float32[N, 1]) with onnx.helper; run by hand, output shipped."""

from pathlib import Path

import onnx
from onnx import TensorProto, helper

x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])
two = helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0])
graph = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["y"])], "double", [x], [y], [two])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx.checker.check_model(model, full_check=True)
onnx.save(model, Path(__file__).with_name("double.onnx"))
