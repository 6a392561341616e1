"""The publisher tables under the data-rights hooks: a person's export holds the application
they made and the keys they registered; erasing them keeps the tenant's publisher and keys but
forgets who applied and registered."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from marketplace_helpers import PUBLISHER, REVIEW, apply, bearer, key_body

from backplane.testing import invoke_cli, seed_tenant


def _entries(content: bytes) -> dict[str, list[Any]]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {
            name: [json.loads(line) for line in archive.read(name).splitlines()]
            for name in archive.namelist()
            if name.startswith("marketplace/")
        }


def test_a_person_is_exported_and_forgotten(
    backplane_app: Any,
    backplane_client: Any,
    backplane_tenant: Any,
    backplane_environ: dict[str, str],
) -> None:
    client = backplane_client
    applied = apply(client, {}, "Acme Models")
    ops = seed_tenant(backplane_app, "ops", "ops@deployment.example.org")
    assert invoke_cli("operators", "grant", ops.email, environ=backplane_environ).exit_code == 0
    approve = f"{REVIEW}/publishers/{applied['id']}/approve"
    assert client.post(approve, json={}, headers=bearer(client, ops)).status_code == 200
    key = client.post(
        f"{PUBLISHER}/keys", json=key_body(Ed25519PrivateKey.generate(), applied["id"])
    )
    assert key.status_code == 201, key.text

    person = {"user_id": str(backplane_tenant.user_id)}
    exported = client.post("/api/privacy/export", json=person)
    assert exported.status_code == 200, exported.text
    entries = _entries(exported.content)
    assert [p["id"] for p in entries["marketplace/marketplace_publishers.jsonl"]] == [applied["id"]]
    assert [k["id"] for k in entries["marketplace/marketplace_signing_keys.jsonl"]] == [
        key.json()["id"]
    ]
    # Another tenant's export of its own person holds nothing of this publisher.
    other = seed_tenant(backplane_app, "other")
    theirs = client.post(
        "/api/privacy/export", json={"user_id": str(other.user_id)}, headers=other.headers
    )
    assert all(rows == [] for rows in _entries(theirs.content).values())

    # A second owner, so that the first may be erased (the kernel keeps a tenant's last owner).
    second = seed_tenant(backplane_app, "second", "second@acme.example.org")
    made = invoke_cli(
        "tenants", "member", backplane_tenant.slug, second.email, "owner", environ=backplane_environ
    )
    assert made.exit_code == 0, made.output
    erased = client.post("/api/privacy/erase", json=person)
    assert erased.status_code == 200, erased.text
    assert erased.json()["plugins"]["marketplace"] == {
        "marketplace_federated_installs": 0,
        "marketplace_installs": 0,
        "marketplace_reviews": 0,
        "marketplace_publishers": 1,
        "marketplace_signing_keys": 1,
        "marketplace_versions": 0,
    }
    # The publisher and its key stay the tenant's, as the remaining owner sees.
    second.slug = backplane_tenant.slug
    kept = client.get(PUBLISHER, headers=bearer(client, second)).json()
    assert (kept["id"], [k["id"] for k in kept["keys"]]) == (applied["id"], [key.json()["id"]])
