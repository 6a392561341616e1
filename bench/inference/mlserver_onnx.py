"""An MLServer custom runtime serving one ONNX model with onnxruntime, as Backplane does.

Copied by ``run.py`` into the MLServer model repository it generates and imported by MLServer
(``implementation: mlserver_onnx.OnnxRuntimeModel``) inside the peer's own virtual
environment; never imported by Backplane. The session gets the options Backplane's sessions get
(intra- and inter-op threads 1, sequential execution, spinning off) and ``session.run`` is called
in a thread pool sized to the cores, off the event loop, as Backplane calls it; the server runs
with ``parallel_workers: 0`` (inference in the server process), so both servers have the same
shape: one process, one event loop, ``os.cpu_count()`` threads running the model.

MLServer's adaptive batching (``max_batch_size``, ``max_batch_time`` in model-settings.json)
merges queued requests into one ``InferenceRequest`` before ``predict`` sees it and splits the
response back, so ``predict`` is the same with batching on or off.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxRuntimeModel(MLModel):
    async def load(self) -> bool:
        uri = self.settings.parameters.uri if self.settings.parameters else None
        if not uri:
            raise ValueError("model-settings.json: parameters.uri must name the .onnx file")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        with open(uri, "rb") as model_file:
            data = model_file.read()
        self._session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._outputs = [o.name for o in self._session.get_outputs()]
        self._pool = ThreadPoolExecutor(
            max_workers=os.cpu_count() or 1, thread_name_prefix="mlserver-onnx"
        )
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feed = {i.name: NumpyCodec.decode_input(i) for i in payload.inputs}
        if set(feed) != self._inputs:
            raise ValueError(f"expected inputs {sorted(self._inputs)}, got {sorted(feed)}")
        names = [o.name for o in payload.outputs] if payload.outputs else self._outputs
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(self._pool, self._session.run, names, feed)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[
                NumpyCodec.encode_output(name, array)
                for name, array in zip(names, results, strict=True)
            ],
        )
