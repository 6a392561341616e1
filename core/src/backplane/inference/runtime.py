"""Serving shipped models: the kernel's examples and plugins' ``register_inference_models``.

Sessions are created on first use with small, explicit thread counts and spinning off (a busy
spin per session would eat the cores other requests need), and run in a thread pool sized to
the cores (``session.run`` releases the GIL). Tenant-uploaded and marketplace models, dynamic
batching and statistics arrive with the rest of issue 6.
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
import numpy as np

from backplane._contract import InferenceModel
from backplane.inference import v2
from backplane.plugins import PluginSet


class ModelNotFoundError(LookupError):
    """No model (or version) of that name is visible to the caller."""


class Tensor(msgspec.Struct, frozen=True):
    name: str
    datatype: str
    shape: list[int]


class LoadedModel:
    """An onnxruntime session and its V2 signature."""

    def __init__(self, spec: InferenceModel, session: Any) -> None:
        self.spec = spec
        self.session = session
        self.inputs = [_tensor(i) for i in session.get_inputs()]
        self.outputs = [_tensor(o) for o in session.get_outputs()]

    def metadata(self) -> v2.ModelMetadata:
        return v2.ModelMetadata(
            name=self.spec.name,
            versions=[self.spec.version],
            inputs=[
                v2.MetadataTensor(name=t.name, datatype=t.datatype, shape=t.shape)
                for t in self.inputs
            ],
            outputs=[
                v2.MetadataTensor(name=t.name, datatype=t.datatype, shape=t.shape)
                for t in self.outputs
            ],
        )

    def check_inputs(self, tensors: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
        """The session feed, or :class:`v2.V2Error` naming what does not match the signature."""
        expected = {t.name: t for t in self.inputs}
        if set(tensors) != set(expected):
            raise v2.V2Error(
                f"model {self.spec.name} takes inputs {sorted(expected)}, got {sorted(tensors)}"
            )
        feed: dict[str, Any] = {}
        for name, array in tensors.items():
            spec = expected[name]
            if v2.datatype_of(array.dtype) != spec.datatype:
                raise v2.V2Error(
                    f"input {name}: datatype {v2.datatype_of(array.dtype)}, "
                    f"expected {spec.datatype}"
                )
            if array.ndim != len(spec.shape) or any(
                want not in (-1, got) for want, got in zip(spec.shape, array.shape, strict=True)
            ):
                raise v2.V2Error(f"input {name}: shape {list(array.shape)}, expected {spec.shape}")
            feed[name] = v2.bytes_to_str(array, name) if spec.datatype == "BYTES" else array
        return feed


def _tensor(node: Any) -> Tensor:
    shape = [d if isinstance(d, int) and d >= 0 else -1 for d in (node.shape or [])]
    return Tensor(name=node.name, datatype=v2.datatype_from_onnx(node.type), shape=shape)


def _models(plugin: str, *models: Any) -> list[InferenceModel]:
    for model in models:
        if not isinstance(model, InferenceModel):
            raise TypeError(
                f"register_inference_models expects InferenceModel values, got {model!r}"
            )
    return list(models)


class ModelCatalog:
    """Shipped models by name and version, loaded lazily, run off the event loop."""

    def __init__(self, plugins: PluginSet) -> None:
        self.settings = plugins.settings
        self.specs: dict[str, dict[str, InferenceModel]] = {}
        for _plugin, spec in plugins.collect("register_inference_models", _models):
            self.specs.setdefault(spec.name, {})[spec.version] = spec
        self._loaded: dict[tuple[str, str], LoadedModel] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(
            max_workers=os.cpu_count() or 1, thread_name_prefix="backplane-inference"
        )

    def resolve(self, name: str, version: str | None) -> InferenceModel:
        versions = self.specs.get(name)
        if not versions:
            raise ModelNotFoundError(f"unknown model {name!r}")
        if version is None:
            return versions[max(versions, key=_version_key)]
        if version not in versions:
            raise ModelNotFoundError(f"model {name!r} has no version {version!r}")
        return versions[version]

    def load(self, spec: InferenceModel) -> LoadedModel:
        key = (spec.name, spec.version)
        with self._lock:
            loaded = self._loaded.get(key)
            if loaded is None:
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = 1
                options.inter_op_num_threads = 1
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                options.add_session_config_entry("session.inter_op.allow_spinning", "0")
                session = ort.InferenceSession(
                    spec.path.read_bytes(), options, providers=["CPUExecutionProvider"]
                )
                loaded = self._loaded[key] = LoadedModel(spec, session)
            return loaded

    async def infer(
        self, model: LoadedModel, feed: dict[str, Any], outputs: list[str] | None, timeout_s: float
    ) -> dict[str, np.ndarray[Any, Any]]:
        names = outputs or [t.name for t in model.outputs]
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout_s):
            results = await loop.run_in_executor(self._pool, model.session.run, names, feed)
        return dict(zip(names, results, strict=True))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), version) if version.isdigit() else (-1, version)
