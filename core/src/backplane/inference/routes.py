"""The V2 inference API (Open Inference Protocol), as Triton, KServe and MLServer speak it."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from sqlalchemy.ext.asyncio import AsyncSession

from backplane import __version__
from backplane._contract import ModelRef
from backplane.billing.http import header_results
from backplane.identity.auth import PUBLIC_OPT, Principal, requires
from backplane.inference import explain, v2
from backplane.inference.load_checks import ModelRefused
from backplane.inference.rollout import routing_key
from backplane.inference.runtime import (
    LoadedModel,
    ModelCatalog,
    ModelNotFoundError,
    usage_items,
)
from backplane.inference.stats import ModelStatsResponse
from backplane.settings import ServerSettings
from backplane.state import rails_of
from backplane.web import (
    content_type_message,
    is_json_media_type,
    json_nesting_exceeds,
    nesting_message,
)

OCTET_STREAM = "application/octet-stream"


def _error(message: str, status: int) -> Response[Any]:
    return Response(v2.ErrorResponse(error=message), status_code=status)


def _refused(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    status = exc.status_code if isinstance(exc, v2.V2Error | ModelRefused) else 404
    return _error(str(exc), status)


STATS_SCOPE = (
    "The caller's tenant's requests to the model as handled by the server process that answers, "
    "since that process started: kept in memory, reset by a restart, and with several server "
    "processes each counts only its own. For durable, exact counts use the usage meters "
    "`inference.requests` and `inference.rows` (`GET /api/billing/usage`, grouped by model); "
    "for latency history across processes (per model, every tenant together), the "
    "OpenTelemetry metrics `backplane.inference.*`."
)


class V2Controller(Controller):
    """Every failure answers ``{"error": "..."}``, as the protocol specifies."""

    path = "/v2"
    tags = ["inference"]
    exception_handlers = {
        ModelNotFoundError: _refused,
        v2.V2Error: _refused,
        ModelRefused: _refused,
    }

    @get("/health/live", opt={PUBLIC_OPT: True}, summary="Server liveness (V2)")
    async def live(self) -> Response[bytes]:
        return Response(b"", status_code=200)

    @get("/health/ready", opt={PUBLIC_OPT: True}, summary="Server readiness (V2)")
    async def ready(self) -> Response[bytes]:
        return Response(b"", status_code=200)

    @get("/", guards=[requires("models.read")], summary="Server metadata")
    async def server(self) -> v2.ServerMetadata:
        return v2.ServerMetadata(
            name="backplane", version=__version__, extensions=["binary_tensor_data"]
        )

    @get(
        ["/models/{name:str}", "/models/{name:str}/versions/{version:str}"],
        guards=[requires("models.read")],
        summary="Model metadata",
    )
    async def metadata(
        self,
        request: Request[Principal, Any, Any],
        db: NamedDependency[AsyncSession],
        name: FromPath[str],
        version: FromPath[str | None] = None,
    ) -> Response[Any]:
        catalog = rails_of(request).models
        refs = await catalog.versions(db, request.user.tenant_id, name)
        ref = await catalog.resolve(db, request.user.tenant_id, name, version)
        model = await catalog.aload(ref, request.user.tenant_id)
        # The caller's name: a session is shared by every model of the same bytes.
        return Response(model.metadata([r.version for r in refs], ref.name))

    @get(
        ["/models/{name:str}/ready", "/models/{name:str}/versions/{version:str}/ready"],
        guards=[requires("models.read")],
        summary="Model readiness",
    )
    async def model_ready(
        self,
        request: Request[Principal, Any, Any],
        db: NamedDependency[AsyncSession],
        name: FromPath[str],
        version: FromPath[str | None] = None,
    ) -> Response[Any]:
        await _load(request, db, name, version)
        return Response(b"", status_code=200)

    @get(
        ["/models/{name:str}/stats", "/models/{name:str}/versions/{version:str}/stats"],
        guards=[requires("models.read")],
        summary="Model statistics (Triton's statistics extension): this tenant's traffic",
        description=STATS_SCOPE,
    )
    async def model_stats(
        self,
        request: Request[Principal, Any, Any],
        db: NamedDependency[AsyncSession],
        name: FromPath[str],
        version: FromPath[str | None] = None,
    ) -> ModelStatsResponse:
        catalog = rails_of(request).models
        tenant = request.user.tenant_id
        if version is None:
            versions = [r.version for r in await catalog.versions(db, tenant, name)]
        else:
            versions = [(await catalog.resolve(db, tenant, name, version)).version]
        return catalog.stats.read(tenant, name, versions)

    @post(
        ["/models/{name:str}/infer", "/models/{name:str}/versions/{version:str}/infer"],
        guards=[requires("models.infer")],
        summary="Run inference (JSON tensors or the binary tensor data extension)",
        status_code=200,
    )
    async def infer(
        self,
        request: Request[Principal, Any, Any],
        name: FromPath[str],
        version: FromPath[str | None] = None,
    ) -> Response[Any]:
        # The hot path takes no request session: the catalog reads the registry only when its
        # cache has nothing current, and metering goes through the group-committing writer.
        rails = rails_of(request)
        settings = rails.settings
        header_length = v2.parse_header_length(
            request.headers.get("inference-header-content-length")
        )
        body = await request.body()
        _screen(request.headers.get("content-type"), body, header_length, settings.server)
        infer_request, tensors = v2.decode_request(body, header_length)
        catalog = rails.models
        key = routing_key(infer_request, request.headers, settings.inference.max_routing_key_chars)
        ref = await catalog.resolve(
            None, request.user.tenant_id, name, version, routing_key=key, split=True
        )
        # shared by versions with the same bytes: use ``ref``
        model = await catalog.aload(ref, request.user.tenant_id)
        feed = model.check_inputs(tensors)
        explanation = None
        if explain.wants_explanation(infer_request):  # the occlusion batch runs, and is metered
            explanation = await explain.plan(
                rails.database,
                request.user.tenant_id,
                name,
                ref.version,
                infer_request,
                feed,
                settings.inference.explain_max_rows,
            )
            feed = explanation.feed
        # Metered (and committed, group-committed with concurrent requests) before running, so
        # a spent quota refuses the request without using the model; for a tenant with no limit
        # on these meters (as of a recent round) the run starts while the usage commits. Either
        # way the answer waits for the commit: nothing is served unmetered.
        tenant = request.user.tenant_id
        run = _run(
            rails.models,
            tenant,
            model,
            feed,
            v2.requested_output_names(infer_request),
            settings.server.inference_timeout_s,
            ref,
        )
        try:
            metered, outputs = await rails.usage_writer.record_around(
                tenant, usage_items(name, feed, ref, catalog.source_meters), run
            )
        except _RunTimeoutError:
            return _error(
                f"inference did not finish within {settings.server.inference_timeout_s} s", 504
            )
        header_results(request.scope).extend(r for r in metered if r.used is not None)
        if explanation is None:
            content, length = v2.encode_infer_response(
                infer_request, ref.name, ref.version, outputs
            )
        else:
            outputs = explanation.split(outputs)
            content, length = v2.encode_response(
                ref.name,
                ref.version,
                outputs,
                explanation.requested(infer_request.outputs, outputs),
                v2.binary_output_default(infer_request),
                request_id=infer_request.id,
                parameters=explanation.parameters,
            )
        if length is None:
            return Response(content, media_type="application/json")
        headers = {v2.HEADER_LENGTH_HEADER: str(length)}
        return Response(content, media_type=OCTET_STREAM, headers=headers)


def _screen(
    content_type: str | None, body: bytes, header_length: int | None, server: ServerSettings
) -> None:
    """What every JSON route refuses (:mod:`backplane.web`), in the protocol's error format.

    The body is JSON, or the binary tensor data extension (``application/octet-stream``)
    whose JSON is its first ``header_length`` bytes; no ``Content-Type`` at all is taken as
    either, as Triton does (``tritonclient`` sends none). Only the JSON is checked for depth;
    not for NUL characters: a ``BYTES`` tensor is data, not text to store, and may hold them.
    """
    if content_type is not None and not (
        is_json_media_type(content_type)
        or content_type.partition(";")[0].strip().lower() == OCTET_STREAM
    ):
        raise v2.V2Error(
            content_type_message(
                content_type, f"application/json or {OCTET_STREAM} (binary tensor data)"
            ),
            415,
        )
    if json_nesting_exceeds(body, server.max_json_depth, header_length):
        raise v2.V2Error(nesting_message(server.max_json_depth))


class _RunTimeoutError(Exception):
    """The model's run passed ``server.inference_timeout_s`` (not a metering timeout)."""


async def _run(
    catalog: ModelCatalog,
    tenant: uuid.UUID,
    model: LoadedModel,
    feed: dict[str, Any],
    outputs: list[str] | None,
    timeout_s: float,
    ref: ModelRef,
) -> dict[str, v2.Tensor]:
    try:
        return await catalog.infer(tenant, model, feed, outputs, timeout_s, ref=ref)
    except TimeoutError:
        raise _RunTimeoutError from None


async def _load(
    request: Request[Principal, Any, Any], db: AsyncSession | None, name: str, version: str | None
) -> LoadedModel:
    """Resolved for the caller's tenant: another tenant's model is as unknown as a missing one."""
    catalog = rails_of(request).models
    tenant = request.user.tenant_id
    return await catalog.aload(await catalog.resolve(db, tenant, name, version), tenant)
