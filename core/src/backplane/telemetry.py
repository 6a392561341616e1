"""OpenTelemetry traces and metrics, configured by the standard ``OTEL_*`` variables.

Off unless configured: with no ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER`` (or with
``OTEL_SDK_DISABLED=true``) the API's no-op providers stay in place and nothing is instrumented.
An application or test that installs its own SDK ``TracerProvider`` before ``create_app`` turns
instrumentation on as well. Exporters: ``console`` ships with the kernel; ``otlp`` needs the
``opentelemetry-exporter-otlp`` distribution.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
from collections.abc import Iterator
from typing import Any

from opentelemetry import metrics, trace

TRACER_NAME = "backplane"


class TelemetryError(RuntimeError):
    """An ``OTEL_*`` variable asks for something that is not installed or not understood."""


def _exporter_names(variable: str) -> list[str]:
    value = os.environ.get(variable, "")
    return [n.strip() for n in value.split(",") if n.strip() and n.strip() != "none"]


@functools.cache
def configure_from_environment() -> None:
    """Install SDK providers and exporters named by ``OTEL_*`` variables, once per process."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return
    trace_exporters = _exporter_names("OTEL_TRACES_EXPORTER")
    metric_exporters = _exporter_names("OTEL_METRICS_EXPORTER")
    if not trace_exporters and not metric_exporters:
        return
    from opentelemetry.sdk.resources import Resource

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "backplane")})
    if trace_exporters:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=resource)
        for name in trace_exporters:
            provider.add_span_processor(BatchSpanProcessor(_exporter("OTEL_TRACES_EXPORTER", name)))
        trace.set_tracer_provider(provider)
    if metric_exporters:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        readers = [
            PeriodicExportingMetricReader(_exporter("OTEL_METRICS_EXPORTER", n))
            for n in metric_exporters
        ]
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))


_EXPORTERS = {
    "OTEL_TRACES_EXPORTER": {
        "console": "sdk.trace.export:ConsoleSpanExporter",
        "otlp": "exporter.otlp.proto.http.trace_exporter:OTLPSpanExporter",
    },
    "OTEL_METRICS_EXPORTER": {
        "console": "sdk.metrics.export:ConsoleMetricExporter",
        "otlp": "exporter.otlp.proto.http.metric_exporter:OTLPMetricExporter",
    },
}


def _exporter(variable: str, name: str) -> Any:
    """A new exporter ``name`` of the kind ``variable`` names (imported only when asked for)."""
    target = _EXPORTERS[variable].get(name)
    if target is None:
        raise TelemetryError(f"{variable}: unknown exporter {name!r} (console, otlp, none)")
    module, _, cls = target.partition(":")
    try:
        return getattr(importlib.import_module(f"opentelemetry.{module}"), cls)()
    except ImportError:
        raise TelemetryError(
            f"{variable}={name} needs the opentelemetry-exporter-otlp distribution"
        ) from None


def tracing_enabled() -> bool:
    """True when an SDK tracer provider is installed (by the environment or by the embedder)."""
    from opentelemetry.sdk.trace import TracerProvider

    return isinstance(trace.get_tracer_provider(), TracerProvider)


@contextlib.contextmanager
def hook_span(hook: str, plugin: str) -> Iterator[None]:
    """A span around one plugin's implementation of one hook."""
    with trace.get_tracer(TRACER_NAME).start_as_current_span(
        f"hook {hook}", attributes={"backplane.hook": hook, "backplane.plugin": plugin}
    ):
        yield


def instrument_database() -> None:
    """Emit a span per database statement for engines created from now on (when tracing is on).

    The instrumentor wraps ``sqlalchemy.ext.asyncio.create_async_engine`` once per process,
    which is why :mod:`backplane.db.engine` calls it through the module attribute.
    """
    if not tracing_enabled():
        return
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    instrumentor = SQLAlchemyInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(enable_commenter=False)
