"""``Kernel.rate_limit``: a plugin's own rate limit by a key of its choosing (a client address
on a public route), per plugin, action, tenant and key; 429 with ``Retry-After`` past it."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from backplane import Kernel
from backplane.kernel import Rails
from backplane.plugins import PluginSet
from backplane.ratelimit import TooManyRequestsError


def test_rate_limit_counts_per_plugin_action_tenant_and_key(plugins: PluginSet) -> None:
    async def go() -> None:
        rails = Rails.build(plugins.settings, plugins)
        try:
            tenant_a, tenant_b = uuid.uuid4(), uuid.uuid4()
            a = Kernel(rails, "kitchen_sink", tenant_id=tenant_a)
            for _ in range(3):
                await a.rate_limit("submit", "10.0.0.1", limit=3, window_s=60)
            with pytest.raises(TooManyRequestsError) as refused:
                await a.rate_limit("submit", "10.0.0.1", limit=3, window_s=60)
            assert refused.value.status_code == 429
            assert "at most 3 per minute" in refused.value.detail
            assert refused.value.headers is not None
            assert 1 <= int(refused.value.headers["Retry-After"]) <= 60
            # another key, action, tenant or plugin counts apart
            await a.rate_limit("submit", "10.0.0.2", limit=3, window_s=60)
            await a.rate_limit("confirm", "10.0.0.1", limit=3, window_s=60)
            await Kernel(rails, "kitchen_sink", tenant_id=tenant_b).rate_limit(
                "submit", "10.0.0.1", limit=3, window_s=60
            )
            await Kernel(rails, "core", tenant_id=tenant_a).rate_limit(
                "submit", "10.0.0.1", limit=3, window_s=60
            )
            with pytest.raises(ValueError, match="limit >= 1"):
                await a.rate_limit("submit", "x", limit=0, window_s=60)
            with pytest.raises(ValueError, match="window_s <= 86400"):
                await a.rate_limit("submit", "x", limit=1, window_s=86_401)
        finally:
            await rails.close()

    asyncio.run(go())
