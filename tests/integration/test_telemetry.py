"""A request traced end to end: the HTTP span, hook calls and database queries beneath it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from backplane.app import create_app
from backplane.loading import load_plugins
from tests.conftest import make_settings
from tests.db_helpers import migrate

_EXPORTER = InMemorySpanExporter()


def install_memory_exporter() -> InMemorySpanExporter:
    """Install (once per process) an SDK tracer provider exporting to memory."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    return _EXPORTER


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield install_memory_exporter()
    _EXPORTER.clear()


def descendants(root: ReadableSpan, spans: list[ReadableSpan]) -> list[ReadableSpan]:
    found, frontier = [], [root.context.span_id]
    while frontier:
        parent = frontier.pop()
        children = [s for s in spans if s.parent is not None and s.parent.span_id == parent]
        found.extend(children)
        frontier.extend(c.context.span_id for c in children)
    return found


def test_request_span_has_hook_and_database_children(
    spans: InMemorySpanExporter, data_dir: Path
) -> None:
    settings = make_settings(data_dir, {"BACKPLANE_PLUGINS": "kitchen_sink"})
    plugins = load_plugins(settings)
    migrate(plugins)
    with TestClient(create_app(settings, plugins=plugins)) as client:
        spans.clear()
        assert client.get("/health/ready").status_code == 200
    finished = list(spans.get_finished_spans())
    servers = [s for s in finished if s.kind is SpanKind.SERVER]
    assert len(servers) == 1
    request = servers[0]
    assert "/health/ready" in request.name
    below = descendants(request, finished)
    hooks = [s for s in below if s.name == "hook check_health"]
    assert [s.attributes["backplane.plugin"] for s in hooks] == ["kitchen_sink"]
    queries = [s for s in below if s.attributes and "db.system" in s.attributes]
    assert queries, [s.name for s in below]
    assert any("SELECT" in str(s.attributes.get("db.statement", "")) for s in queries)


def test_registration_hooks_are_traced(spans: InMemorySpanExporter, data_dir: Path) -> None:
    settings = make_settings(data_dir, {"BACKPLANE_PLUGINS": "kitchen_sink"})
    create_app(settings)
    names = {
        (s.name, s.attributes["backplane.plugin"])
        for s in spans.get_finished_spans()
        if s.name.startswith("hook ")
    }
    assert ("hook register_routes", "kitchen_sink") in names
