"""The plugin loads, migrates, and renders one document of each engine end to end."""

from __future__ import annotations

import io
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient
from pypdf import PdfReader

TEMPLATES = "/api/documents/templates"


def test_the_plugin_loads(backplane_plugins: Any) -> None:
    assert "documents" in backplane_plugins.loaded


def test_a_typst_template_renders_to_a_stored_pdf(backplane_client: TestClient[Litestar]) -> None:
    created = backplane_client.post(
        TEMPLATES,
        json={
            "name": "hello",
            "source": "#let d = json(bytes(sys.inputs.data))\nHello #d.name",
            "fields": [{"name": "name"}],
        },
    )
    assert created.status_code == 201, created.text
    template = created.json()
    rendered = backplane_client.post(
        f"{TEMPLATES}/{template['id']}/render", json={"fields": {"name": "Ada"}}
    )
    assert rendered.status_code == 201, rendered.text
    document = rendered.json()
    assert document["pages"] == 1
    content = backplane_client.get(document["download_url"])
    assert content.status_code == 200
    assert content.headers["content-type"] == "application/pdf"
    reader = PdfReader(io.BytesIO(content.content))
    assert len(reader.pages) == 1
    assert "Hello Ada" in reader.pages[0].extract_text()
