"""Issue 15, item 13: the V2 statistics are kept in memory per server process (a restart
resets them; each of N processes counts its own share), by decision: the hot path stays free of
writes. The route's OpenAPI description says so and names the durable alternatives."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import TestClient


def test_the_stats_route_documents_what_its_counters_cover(client: TestClient[Litestar]) -> None:
    paths = client.get("/schema/openapi.json").json()["paths"]
    for path in ("/v2/models/{name}/stats", "/v2/models/{name}/versions/{version}/stats"):
        description = paths[path]["get"]["description"]
        for said in (
            "tenant's requests",
            "server process",
            "since that process started",
            "reset by a restart",
            "`inference.requests`",
            "`inference.rows`",
            "OpenTelemetry",
        ):
            assert said in description, (path, said)
