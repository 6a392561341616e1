"""``/api/models``: the tenant's model registry (upload, list, show, delete).

Built per application (:func:`models_controller`) because the upload route's body limit is the
configured ``inference.max_upload_bytes``, larger than the server-wide request limit. Every
route is the caller's tenant only; another tenant's model answers 404, like a missing one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.identity.auth import Principal, requires
from backplane.inference.registry import (
    ModelOut,
    RegistryError,
    add_model,
    delete_model,
    list_models,
    model_out,
    model_versions,
)
from backplane.inference.training_runs import with_cards
from backplane.inference.validation import ModelRejected
from backplane.ratelimit import rate_limit
from backplane.settings import Settings
from backplane.state import rails_of
from backplane.web import refuse_nul_in_fields

Req = Request[Principal, Any, Any]


@dataclass
class ModelUpload:
    """The multipart form of ``POST /api/models``."""

    name: str
    file: UploadFile
    version: str | None = None
    description: str = ""
    max_batch_size: int | None = None
    """Largest batch the dynamic batcher forms (0 or 1: no batching); default from settings."""
    max_queue_delay_us: int | None = None


def _registry_error(_: Request[Any, Any, Any], exc: RegistryError) -> Response[Any]:
    return Response(
        {"status_code": exc.status_code, "detail": str(exc)}, status_code=exc.status_code
    )


def _rejected(_: Request[Any, Any, Any], exc: ModelRejected) -> Response[Any]:
    return Response(
        {"status_code": exc.status_code, "detail": exc.message, "rule": exc.rule},
        status_code=exc.status_code,
    )


def models_controller(settings: Settings) -> type[Controller]:
    """The registry routes, with the upload limit from ``settings``."""
    # multipart framing (boundaries, part headers, the small fields) on top of the file
    upload_limit = settings.inference.max_upload_bytes + 64 * 1024

    class ModelsController(Controller):
        path = "/models"
        tags = ["models"]
        exception_handlers = {RegistryError: _registry_error, ModelRejected: _rejected}

        @post(
            "/",
            guards=[requires("models.manage"), rate_limit("models.upload")],
            request_max_body_size=upload_limit,
            summary="Upload a model version (multipart: name, file, optional version)",
            description=(
                "The file is validated before anything is stored: size, no external data, "
                "allowed operator domains only, node/nesting/initializer/shape limits, "
                "onnx.checker, and a trial load and run in a resource-limited subprocess. "
                "A rejection answers 413 (too large) or 422 with the rule broken. "
                "Uploads, accepted or not, count towards the tenant's "
                "`limits.model_uploads_per_hour` (then 429)."
            ),
        )
        async def upload(
            self,
            request: Req,
            db: NamedDependency[AsyncSession],
            data: Annotated[ModelUpload, Body(media_type=RequestEncodingType.MULTI_PART)],
        ) -> Response[ModelOut]:
            refuse_nul_in_fields(name=data.name, version=data.version, description=data.description)
            content = await data.file.read()
            row = await add_model(
                db,
                rails_of(request).models,
                tenant_id=request.user.tenant_id,
                name=data.name,
                data=content,
                version=data.version or None,
                description=data.description,
                max_batch_size=data.max_batch_size,
                max_queue_delay_us=data.max_queue_delay_us,
                created_by=request.user.user_id,
            )
            return Response(model_out(row), status_code=201)

        @get("/", guards=[requires("models.read")], summary="Models the tenant can call")
        async def list_all(self, request: Req, db: NamedDependency[AsyncSession]) -> list[ModelOut]:
            return await list_models(db, rails_of(request).models, request.user.tenant_id)

        @get(
            "/{name:str}",
            guards=[requires("models.read")],
            summary="The versions of one model, each trained one with its model card",
            description=(
                "Oldest first. A version registered by a training run carries `card`: the "
                "trainer, its metric on the holdout and a constant baseline's, training and "
                "holdout rows, features, the estimator's parameters, permutation importance, "
                "whether it was promoted, and when it was trained. Uploads have `card: null`."
            ),
        )
        async def show(
            self, request: Req, db: NamedDependency[AsyncSession], name: FromPath[str]
        ) -> list[ModelOut]:
            tenant = request.user.tenant_id
            versions = await model_versions(db, rails_of(request).models, tenant, name)
            await with_cards(db, tenant, versions)
            return versions

        @delete(
            ["/{name:str}", "/{name:str}/versions/{version:str}"],
            guards=[requires("models.manage")],
            summary="Delete a model (every version) or one version",
            status_code=204,
        )
        async def remove(
            self,
            request: Req,
            db: NamedDependency[AsyncSession],
            name: FromPath[str],
            version: FromPath[str | None] = None,
        ) -> None:
            catalog = rails_of(request).models
            if name in catalog.shipped:
                raise RegistryError(
                    f"{name!r} is shipped with the server; it cannot be deleted", 409
                )
            await delete_model(db, catalog, request.user.tenant_id, name, version)

    return ModelsController
