"""Charges: calls of installed marketplace models are metered through the kernel's billing
(source meters), priced by the version's tariff on the consumer's invoice, and summed into
the publisher's statement (gross, platform share, net) to the minor unit; consumers and
publishers see only their own figures (publishers: aggregates per listing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from marketplace_helpers import environ_for, iris_examples, priced_market

from backplane.testing import close_invoice, invoke_cli, seed_tenant, usage_of

INSTALLS = "/api/marketplace/installs"
STATEMENTS = "/api/marketplace/statements"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backplane_environ(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Every answer after its usage is committed (by default a tenant without limits may be
    answered up to ``metering_flush_ms`` before): these tests close invoices right after."""
    return environ_for(request, tmp_path) | {"BACKPLANE_INFERENCE__METERING_OVERLAP_S": "0"}


def v2_body(rows: int) -> dict[str, Any]:
    features = iris_examples(1)[0]["inputs"]["float_input"][0]
    return {
        "inputs": [
            {"name": "float_input", "datatype": "FP32", "shape": [rows, 4], "data": features * rows}
        ]
    }


def install(client: Any, headers: dict[str, str], listing_id: str, name: str) -> None:
    made = client.post(INSTALLS, json={"listing_id": listing_id, "name": name}, headers=headers)
    assert made.status_code == 201, made.text


def test_calls_are_charged_on_the_invoice_and_summed_into_the_statement(
    backplane_app: Any, backplane_client: Any, backplane_environ: dict[str, str]
) -> None:
    client = backplane_client
    market = priced_market(backplane_app, client, backplane_environ)
    first, second = seed_tenant(backplane_app, "first"), seed_tenant(backplane_app, "second")
    for tenant in (first, second):
        install(client, tenant.headers, market["per_request"], "species")
        install(client, tenant.headers, market["per_row"], "rows")
    calls = [(first, "species", 1)] * 3 + [(first, "rows", 2)] * 2 + [(second, "species", 5)]
    for tenant, model, rows in calls:
        answer = client.post(
            f"/v2/models/{model}/infer", json=v2_body(rows), headers=tenant.headers
        )
        assert answer.status_code == 200, answer.text
    # A refused call (wrong shape) is not charged.
    bad = {
        "inputs": [{"name": "float_input", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]
    }
    assert (
        client.post("/v2/models/species/infer", json=bad, headers=first.headers).status_code == 400
    )
    assert usage_of(backplane_app, first, "marketplace.requests") == 5
    assert usage_of(backplane_app, first, "marketplace.rows") == 7
    assert usage_of(backplane_app, second, "marketplace.requests") == 1

    # per_request 7 x 3 requests = 21; per_row 3 x 4 rows = 12; the second: 7 x 1.
    invoice = close_invoice(backplane_app, first)
    items = [(li.kind, li.quantity, li.amount) for li in invoice.lines if li.kind == "item"]
    assert sorted(items) == [("item", "3", 21), ("item", "4", 12)]
    assert invoice.total == 33 + sum(li.amount for li in invoice.lines if li.kind != "item")
    seen = close_invoice(backplane_app, second)
    assert [(li.quantity, li.amount) for li in seen.lines if li.kind == "item"] == [("1", 7)]
    # The consumer's own invoice route shows the lines; nobody else's.
    shown = client.get(f"/api/billing/invoices/{invoice.id}", headers=first.headers).json()
    assert sorted(li["amount"] for li in shown["lines"] if li["kind"] == "item") == [12, 21]
    theirs = client.get(f"/api/billing/invoices/{seen.id}", headers=first.headers)
    assert theirs.status_code == 404

    closed = invoke_cli(
        "marketplace",
        "close-period",
        "--period",
        f"{invoice.period_start:%Y-%m}",
        "--include-running",
        environ=backplane_environ,
    )
    assert closed.exit_code == 0, closed.output
    assert "gross 40, platform share 8, net 32" in closed.output
    again = invoke_cli(
        "marketplace",
        "close-period",
        "--period",
        f"{invoice.period_start:%Y-%m}",
        "--include-running",
        environ=backplane_environ,
    )
    assert again.exit_code == 0
    assert "gross 40, platform share 8, net 32" in again.output

    statements = client.get(STATEMENTS).json()  # the publisher's tenant
    assert len(statements) == 1
    statement = statements[0]
    assert (statement["gross"], statement["platform_share"], statement["net"]) == (40, 8, 32)
    assert statement["gross"] == 21 + 12 + 7  # == the consumers' invoice lines
    per_listing = {s["slug"]: s for s in statement["listings"]}
    assert per_listing["iris-per-request"] | {"listing_id": None} == {
        "listing_id": None,
        "slug": "iris-per-request",
        "requests": 4,
        "rows": 8,
        "consumers": 2,
        "gross": 28,
    }
    assert (per_listing["iris-per-row"]["rows"], per_listing["iris-per-row"]["gross"]) == (4, 12)
    assert statement["payout_provider"] == "ledger"
    assert statement["payout_reference"]
    text = str(statements)
    assert str(first.tenant_id) not in text
    assert str(second.tenant_id) not in text
    # Consumers publish nothing: no statements; the statement is the publisher's only.
    assert client.get(STATEMENTS, headers=first.headers).json() == []


def test_two_closes_of_one_invoice_at_once_bill_the_calls_once(
    backplane_app: Any, backplane_client: Any, backplane_environ: dict[str, str]
) -> None:
    """Only the closer that claims the invoice asks the plugins for their items (and the
    marketplace writes its charge rows); the other finds the invoice and adds nothing."""
    from concurrent.futures import ThreadPoolExecutor

    client = backplane_client
    market = priced_market(backplane_app, client, backplane_environ)
    consumer = seed_tenant(backplane_app, "consumer")
    install(client, consumer.headers, market["per_request"], "species")
    for _ in range(3):
        answer = client.post("/v2/models/species/infer", json=v2_body(1), headers=consumer.headers)
        assert answer.status_code == 200, answer.text
    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(lambda _: close_invoice(backplane_app, consumer), range(2)))
    assert both[0].id == both[1].id
    for invoice in both:
        assert [li.amount for li in invoice.lines if li.kind == "item"] == [21]
    closed = invoke_cli(
        "marketplace",
        "close-period",
        "--period",
        f"{both[0].period_start:%Y-%m}",
        "--include-running",
        environ=backplane_environ,
    )
    assert closed.exit_code == 0, closed.output
    assert "gross 21, platform share 4, net 17" in closed.output
