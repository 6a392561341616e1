"""Model execution: registry, onnxruntime sessions, dynamic batching, upload validation, V2 API.

``backplane.inference.validation`` checks untrusted ONNX uploads before anything serves them.
"""
