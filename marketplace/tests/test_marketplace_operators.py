"""Platform operators (the kernel's deployment-level role) decide publishers' applications:
granted and revoked by ``backplane operators``, held only in a user's own session, checked by
the ``platform.marketplace.review`` permission code, every decision audited."""

from __future__ import annotations

import time
from typing import Any

from marketplace_helpers import PUBLISHER, REVIEW, apply, bearer

from backplane.testing import audit_trail, invoke_cli, seed_tenant

REVIEW_CODE = "platform.marketplace.review"


def test_operator_grant_review_and_revoke(
    backplane_app: Any,
    backplane_client: Any,
    backplane_tenant: Any,
    backplane_environ: dict[str, str],
) -> None:
    client = backplane_client
    ops = seed_tenant(backplane_app, "ops", "ops@deployment.example.org")
    applied = apply(client, {}, "Acme Models")

    # Before the grant, the ops owner is only a tenant owner: no platform permission.
    ops_session = bearer(client, ops)
    assert REVIEW_CODE not in client.get("/api/me", headers=ops_session).json()["permissions"]
    refused = client.get(f"{REVIEW}/publishers", headers=ops_session)
    assert refused.status_code == 403
    assert REVIEW_CODE in refused.json()["detail"]

    granted = invoke_cli(
        "operators", "grant", "OPS@deployment.example.org", environ=backplane_environ
    )
    assert granted.exit_code == 0, granted.output
    listed = invoke_cli("operators", "list", "--json", environ=backplane_environ)
    assert '"ops@deployment.example.org"' in listed.output
    time.sleep(2.2)  # running servers re-read memberships (and the operator flag) within 2 s

    me = client.get("/api/me", headers=ops_session).json()
    assert REVIEW_CODE in me["permissions"]
    # An API key acts for its tenant, never for the deployment, even the operator's own.
    assert client.get(f"{REVIEW}/publishers", headers=ops.headers).status_code == 403
    # The publisher tenant's owner is not an operator.
    assert client.get(f"{REVIEW}/publishers").status_code == 403

    pending = client.get(f"{REVIEW}/publishers", headers=ops_session)
    assert pending.status_code == 200, pending.text
    assert [p["id"] for p in pending.json()] == [applied["id"]]

    no_reason = client.post(
        f"{REVIEW}/publishers/{applied['id']}/reject", json={}, headers=ops_session
    )
    assert no_reason.status_code == 422
    assert "reason" in no_reason.json()["detail"]
    rejected = client.post(
        f"{REVIEW}/publishers/{applied['id']}/reject",
        json={"reason": "add a website"},
        headers=ops_session,
    )
    assert rejected.status_code == 200, rejected.text
    mine = client.get(PUBLISHER).json()
    assert (mine["state"], mine["decision_reason"]) == ("rejected", "add a website")

    again = client.post(
        PUBLISHER, json={"display_name": "Acme Models", "website": "https://acme.example.org"}
    )
    assert again.status_code == 201, again.text
    approved = client.post(
        f"{REVIEW}/publishers/{applied['id']}/approve", json={}, headers=ops_session
    )
    assert approved.status_code == 200, approved.text
    assert client.get(PUBLISHER).json()["state"] == "approved"
    assert client.post(PUBLISHER, json={"display_name": "Renamed"}).status_code == 409
    twice = client.post(
        f"{REVIEW}/publishers/{applied['id']}/approve", json={}, headers=ops_session
    )
    assert twice.status_code == 409

    actions = [
        e.action for e in audit_trail(backplane_app, ops) if e.action.startswith("marketplace")
    ]
    assert actions == ["marketplace.publisher_rejected", "marketplace.publisher_approved"]
    applied_rows = audit_trail(backplane_app, backplane_tenant, "marketplace.publisher_applied")
    assert len(applied_rows) == 2

    revoked = invoke_cli(
        "operators", "revoke", "ops@deployment.example.org", environ=backplane_environ
    )
    assert revoked.exit_code == 0, revoked.output
    time.sleep(2.2)
    assert client.get(f"{REVIEW}/publishers", headers=ops_session).status_code == 403


def test_operator_commands_refuse_unknown_users(
    backplane_environ: dict[str, str], backplane_tenant: Any
) -> None:
    unknown = invoke_cli("operators", "grant", "nobody@example.org", environ=backplane_environ)
    assert unknown.exit_code != 0
    assert "no user with email 'nobody@example.org'" in unknown.output
    not_one = invoke_cli("operators", "revoke", backplane_tenant.email, environ=backplane_environ)
    assert not_one.exit_code != 0
    assert "is not a platform operator" in not_one.output
    malformed = invoke_cli("operators", "grant", "not-an-address", environ=backplane_environ)
    assert malformed.exit_code != 0
