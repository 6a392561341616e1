"""An auth backend of the plugin's own: ``X-Kitchen-Sink-Token: <token>``.

Inactive unless configured: it accepts the header only when ``auth_token`` and ``auth_tenant``
are set (``BACKPLANE_PLUGIN__KITCHEN_SINK__AUTH_TOKEN`` ...), and then acts for that tenant with
``auth_role``. The kernel's tests use it to see that a plugin's backend is asked, before the
kernel's bearer tokens, and that its principal meets the same guards.
"""

from __future__ import annotations

import hmac
from typing import Any

HEADER = "x-kitchen-sink-token"


async def authenticate(connection: Any, kernel: Any) -> Any:
    from litestar.exceptions import NotAuthorizedException

    presented = connection.headers.get(HEADER)
    settings = kernel.plugin_settings
    if presented is None or settings.auth_token is None or settings.auth_tenant is None:
        return None  # not ours (or not configured): the next backend is asked
    if not hmac.compare_digest(presented.encode(), settings.auth_token.encode()):
        raise NotAuthorizedException("invalid X-Kitchen-Sink-Token")
    return await kernel.principal_for(
        settings.auth_tenant, settings.auth_role, subject="kitchen-sink-token"
    )
