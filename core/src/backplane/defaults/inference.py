"""Inference: the V2 (Open Inference Protocol) API, the tenant's model registry API, the
in-process onnxruntime runtime, the example models, and inference meters and permissions."""

from __future__ import annotations

from typing import Any

from backplane._contract import (
    ONNXRUNTIME,
    EventType,
    InferenceRuntime,
    Meter,
    ModelRef,
    Permission,
)
from backplane.defaults.identity import EVERYONE
from backplane.hookspecs import hookimpl


@hookimpl
def register_routes(register: Any, settings: Any) -> None:
    from backplane.inference.alias_routes import AliasController
    from backplane.inference.api import models_controller
    from backplane.inference.monitoring_api import MonitoringController
    from backplane.inference.routes import V2Controller

    register(models_controller(settings))
    register(AliasController)
    register(MonitoringController)
    register(V2Controller, prefix="/")


@hookimpl
def register_meters(register: Any) -> None:
    register(
        Meter(
            code="inference.requests",
            unit="request",
            aggregation="count",
            group_by=("model",),
            description="V2 inference requests",
        ),
        Meter(
            code="inference.rows",
            unit="row",
            aggregation="sum",
            group_by=("model",),
            description="Rows (batch entries) sent to models",
        ),
    )


@hookimpl
def register_event_types(register: Any) -> None:
    register(
        EventType(
            name="model.drift_detected",
            description="The inputs a trained model version receives drifted from its training "
            "data: a feature's population stability index over the sampled window passed "
            "`inference.drift_psi_threshold`; `data` names the model, version, threshold, "
            "window rows and the drifted features' PSI",
            live=True,
        )
    )


class _OnnxRuntime:
    """Sessions from onnxruntime in this process, all sharing one CPU arena capped at
    ``inference.arena_max_bytes`` (:func:`backplane.inference.sessions.create_session`)."""

    def __init__(self, arena_max_bytes: int) -> None:
        self.arena_max_bytes = arena_max_bytes

    def load(self, data: bytes, model: ModelRef) -> Any:
        from backplane.inference.sessions import create_session

        return create_session(data, self.arena_max_bytes)


@hookimpl
def register_inference_runtimes(register: Any, settings: Any) -> None:
    """``onnxruntime``: the runtime of the example models, and of uploads by default."""
    register(
        InferenceRuntime(
            name=ONNXRUNTIME,
            load=_OnnxRuntime(settings.inference.arena_max_bytes).load,
            platform="onnxruntime_onnx",
        )
    )


@hookimpl
def register_inference_models(register: Any) -> None:
    """The example models built from scikit-learn (``scripts/build_example_models.py``)."""
    from backplane._contract import InferenceModel
    from backplane.models import example_models, resource

    register(
        *[
            InferenceModel(
                name=m.name,
                version=m.version,
                path=resource(m.file),
                description=m.description,
                # every example takes a batch of rows (dynamic first dimension)
                max_batch_size=32,
            )
            for m in example_models()
        ]
    )


@hookimpl
def register_permissions(register: Any) -> None:
    register(
        Permission(
            code="models.read",
            roles=EVERYONE,
            description="See the models the tenant can call, their metadata and statistics",
        ),
        Permission(
            code="models.infer",
            roles=("owner", "admin", "member"),
            description="Run inference on the tenant's models (metered)",
        ),
        Permission(
            code="models.manage",
            roles=("owner", "admin"),
            description="Upload and delete the tenant's own models",
        ),
    )
