"""Issue 15, item 9: the webhook endpoint cap is atomic. Creations used to count the tenant's
endpoints, then insert: 30 concurrent creations against a cap of 16 left 26 endpoints. The
tenant's row is now locked before counting, so exactly the cap is created, on SQLite and on
PostgreSQL (as the non-owner application role, row-level security on)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from litestar.testing import TestClient

from backplane.app import create_app
from backplane.loading import load_plugins
from tests.conftest import make_settings
from tests.db_helpers import migrate
from tests.identity_helpers import seed_tenant
from tests.integration.test_webhooks import BASE

CAP = 16
CALLS = 30


def test_concurrent_creations_stop_exactly_at_the_cap(
    data_dir: Path, db_env: dict[str, str]
) -> None:
    settings = make_settings(
        data_dir,
        {
            **db_env,
            "BACKPLANE_WEBHOOKS__MAX_ENDPOINTS": str(CAP),
            # every creation checks its URL: keep that rate limit out of this test's way
            "BACKPLANE_LIMITS__WEBHOOK_URL_CHECKS_PER_MINUTE": str(CALLS),
        },
    )
    plugins = load_plugins(settings)
    migrate(plugins)
    tenant, other = seed_tenant(plugins, "acme"), seed_tenant(plugins, "globex")
    with TestClient(create_app(settings, plugins=plugins), timeout=60) as client:
        # One thread per request: the test client runs each on the app's event loop, where
        # they interleave (an AsyncTestClient would run them one after another).
        with ThreadPoolExecutor(max_workers=CALLS) as pool:
            answers = list(
                pool.map(
                    lambda i: client.post(
                        BASE,
                        # a literal public address: checked without DNS, never contacted
                        json={"url": f"https://93.184.216.34/hook/{i}"},
                        headers=tenant.headers,
                    ),
                    range(CALLS),
                )
            )
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [201] * CAP + [409] * (CALLS - CAP), [a.text for a in answers]
        refused = next(a for a in answers if a.status_code == 409)
        assert f"at most {CAP} webhook endpoints" in refused.json()["detail"]
        listed = client.get(BASE, headers=tenant.headers)
        assert len(listed.json()) == CAP
        # The cap is per tenant: another tenant still creates.
        theirs = client.post(
            BASE, json={"url": "https://93.184.216.34/theirs"}, headers=other.headers
        )
        assert theirs.status_code == 201, theirs.text
