"""Routes mounted beyond ``/api/kitchen_sink``: a path of the plugin's own (``/ks-records``,
as a standard may demand), a public page rendered from a shipped template, and a public route
that a tracking link would call."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Template


class RecordsController(Controller):
    """Authenticated like every route, at the plugin's own prefix."""

    path = "/statements"

    @get("/")
    async def statements(self, kernel: NamedDependency[Any]) -> dict[str, str]:
        return {"tenant": str(kernel.tenant_id), "plugin": kernel.plugin}


@get("/signup", media_type="text/html")
async def signup_page(
    plugin_settings: NamedDependency[Any], visitor: FromQuery[str] = ""
) -> Template:
    """Public (registered with ``public=True``): a page for visitors without an account."""
    return Template(
        "kitchen_sink/signup.html",
        context={"greeting": plugin_settings.greeting, "visitor": visitor},
    )


@get("/track/{token:str}")
async def track(token: FromPath[str], kernel: NamedDependency[Any]) -> dict[str, Any]:
    """Public: what a tracking link calls; it knows no caller and no tenant."""
    return {"token": token, "tenant": kernel.tenant_id}
