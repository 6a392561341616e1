"""HTML documents from Jinja2 templates, autoescaped in a sandbox; output streamed and cut at
the size limit, so a template that loops to produce gigabytes stops early."""

from __future__ import annotations

import functools
from typing import Any

from backplane_documents.engines.jinja import context_of, sandboxed_environment, template_failure
from backplane_documents.errors import RenderError


@functools.lru_cache(maxsize=64)
def _compiled(source: bytes) -> Any:
    """The template compiled once per worker process and source (a bulk job renders one
    template thousands of times; compiling took most of each render). Rendering never changes
    a compiled template: every render gets its own context."""
    return sandboxed_environment().from_string(source.decode("utf-8"))


def render_html(source: bytes, data: dict[str, Any], max_output_bytes: int) -> tuple[bytes, int]:
    """The rendered page's UTF-8 bytes and its page count (1: HTML is not paginated)."""
    parts: list[bytes] = []
    size = 0
    try:
        template = _compiled(source)
        for chunk in template.generate(context_of(data)):
            encoded = chunk.encode("utf-8")
            size += len(encoded)
            if size > max_output_bytes:
                raise RenderError(
                    f"output larger than {max_output_bytes} bytes (documents.max_output_bytes)",
                    kind="limit",
                )
            parts.append(encoded)
    except RenderError:
        raise
    except Exception as error:  # noqa: BLE001 - any template failure becomes a clear error
        raise template_failure(error) from None
    return b"".join(parts), 1
