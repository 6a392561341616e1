"""``kernel.models``: the models a tenant may call, for plugin code (handlers and tasks).

The same resolution, signature checks, dynamic batching and metering as the V2 API: a plugin
that fills a document field with a model's score, or scores a batch of leads in a task, calls
``await kernel.models.infer("lead_score", {"features": rows})`` and pays for it on the tenant's
usage (``inference.requests`` and ``inference.rows``), in the caller's transaction, before the
run: a spent quota refuses the call (:class:`backplane.QuotaExceeded`) without using the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from litestar import Request, Response

from backplane._contract import ModelRef
from backplane.inference.artifacts import ArtifactReport, ArtifactRun, check_artifact, try_artifact
from backplane.inference.exposure import expose_artifact, withdraw
from backplane.inference.load_checks import ModelRefused
from backplane.inference.runtime import ModelCatalog, ModelNotFoundError, usage_items
from backplane.inference.v2 import V2Error, numpy_dtype

if TYPE_CHECKING:
    from backplane.inference.cards import ModelCard
    from backplane.kernel import Kernel

Array = np.ndarray[Any, Any]


class TenantModels:
    """The models of the kernel view's tenant: shipped ones and the tenant's own uploads."""

    __slots__ = ("_catalog", "_kernel")

    def __init__(self, catalog: ModelCatalog, kernel: Kernel) -> None:
        self._catalog = catalog
        self._kernel = kernel

    async def versions(self, name: str) -> list[ModelRef]:
        """The versions of ``name`` the tenant can call, oldest first
        (:class:`ModelNotFoundError` if none)."""
        return await self._catalog.versions(self._kernel.db, self._tenant(), name)

    async def infer(
        self,
        name: str,
        inputs: Mapping[str, Any],
        *,
        version: str | None = None,
        outputs: list[str] | None = None,
        routing_key: str | None = None,
    ) -> dict[str, Array]:
        """Run model ``name`` (its latest version, or ``version``) on ``inputs`` (name ->
        array-like, converted with numpy), metered first; the outputs by name (all of them, or
        ``outputs``). ``version`` may name an alias; an alias that splits its traffic routes by
        ``routing_key`` (sticky) or at random. Inputs that do not match the model's signature
        raise ``ValueError`` naming what does not match; left unhandled in a route, it answers
        400 with that message (and an unknown model 404), see :data:`MODEL_ERROR_HANDLERS`."""
        tenant = self._tenant()
        ref = await self._catalog.resolve(
            self._kernel.db, tenant, name, version, routing_key=routing_key, split=True
        )
        model = await self._catalog.aload(ref, tenant)
        # Python numbers become the signature's datatype (a list of floats is FP64 otherwise);
        # a value that does not fit it is refused by the check below, named.
        dtypes = {t.name: numpy_dtype(t.datatype) for t in model.inputs if t.datatype != "BYTES"}
        feed = model.check_inputs(
            {
                key: value if isinstance(value, np.ndarray) else np.asarray(value, dtypes.get(key))
                for key, value in inputs.items()
            }
        )
        await self._kernel.usage.record_many(
            usage_items(name, feed, ref, self._catalog.source_meters)
        )
        timeout = self._kernel.settings.server.inference_timeout_s
        return await self._catalog.infer(tenant, model, feed, outputs, timeout, ref=ref)

    async def card(self, name: str, version: str | None = None) -> ModelCard | None:
        """The model card of the version ``version`` names (a number or an alias; None: the one
        :meth:`infer` would call without ``version``), None when no training run registered
        it (an upload). A recommender reads its items' order in ``classes`` here."""
        from sqlalchemy import select

        from backplane.inference.cards import model_card
        from backplane.inference.training_runs import SUCCEEDED, TrainingRun

        tenant = self._tenant()
        ref = await self._catalog.resolve(self._kernel.db, tenant, name, version)
        run = await self._kernel.db.scalar(
            select(TrainingRun).where(
                TrainingRun.tenant_id == tenant,
                TrainingRun.model == name,
                TrainingRun.version == ref.version,
                TrainingRun.status == SUCCEEDED,
            )
        )
        if run is None or run.card is None:
            return None
        return model_card(str(run.id), run.card, run.finished_at)

    async def check_artifact(self, data: bytes) -> ArtifactReport:
        """Validate ONNX ``data`` by the upload rules and store it by its SHA-256, without
        registering a model: :class:`backplane.ModelRejected` naming the broken rule (its
        ``status_code`` is 413 or 422). For plugins that review models before anyone calls
        them; see :mod:`backplane.inference.artifacts`."""
        return await check_artifact(self._catalog, data)

    async def try_artifact(self, sha256: str, inputs: Mapping[str, Any]) -> ArtifactRun:
        """Run the stored artifact ``sha256`` once on ``inputs``, outside metering, statistics
        and batching: its outputs and the run's wall time (``ValueError`` for inputs that do not
        fit its signature, :class:`backplane.ArtifactMissingError` for an unknown digest). The
        caller decides who may run what: any stored artifact can be named."""
        return await try_artifact(self._catalog, sha256, inputs)

    async def artifact_bytes(self, sha256: str) -> bytes:
        """The stored artifact ``sha256``'s bytes, verified against it
        (:class:`backplane.ArtifactMissingError` if not stored intact). No route of the kernel
        hands an artifact out: a plugin that distributes ones it vouches for (the marketplace's
        federation serves approved, signed artifacts to subscribing deployments) decides who
        may have which. Needs no tenant."""
        import asyncio

        data: bytes = await asyncio.to_thread(self._catalog.store.get, sha256)
        return data

    async def expose_artifact(
        self,
        name: str,
        report: ArtifactReport,
        *,
        source: str,
        version: str | None = None,
        description: str = "",
    ) -> str:
        """Make the stored, checked artifact ``report`` the tenant's model ``name`` (version
        ``version``, else the next number), callable through V2 and :meth:`infer` like an
        upload and never downloadable; ``source`` (``marketplace``, say) is shown in the
        tenant's model list. The registered version; :class:`backplane.RegistryError` (with
        ``status_code``) for a bad or taken name, :class:`backplane.ArtifactMissingError`
        for an artifact not stored intact. Audited as ``model.uploaded`` with the source."""
        return await expose_artifact(
            self._kernel.db,
            self._catalog,
            tenant_id=self._tenant(),
            name=name,
            report=report,
            source=source,
            version=version,
            description=description,
        )

    async def withdraw(self, name: str) -> int:
        """Remove every version of the tenant's model ``name`` (what :meth:`expose_artifact`
        added, say); the number removed, :class:`backplane.RegistryError` 404 if none."""
        return await withdraw(self._kernel.db, self._catalog, self._tenant(), name)

    def recheck(self, artifact: str | None = None) -> None:
        """Make this process ask hook ``model_loading`` again before the models exposed from
        ``artifact`` (a SHA-256; None: every exposed model) next serve any tenant, instead of
        trusting its answer for up to ``inference.load_check_s``: after something that may
        change the answer (the marketplace calls it when a signing key is revoked). Other
        processes ask again within ``inference.load_check_s``."""
        if self._catalog.load_checks is not None:
            self._catalog.load_checks.forget(artifact)

    def _tenant(self) -> Any:
        tenant = self._kernel.tenant_id
        if tenant is None:
            raise LookupError("kernel.models needs a tenant: use `async with kernel.tenant(...)`")
        return tenant


def _client_error(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    status = 404 if isinstance(exc, ModelNotFoundError) else getattr(exc, "status_code", 400)
    return Response({"status_code": status, "detail": str(exc)}, status_code=status)


MODEL_ERROR_HANDLERS: dict[int | type[Exception], Any] = {
    V2Error: _client_error,
    ModelNotFoundError: _client_error,
    ModelRefused: _client_error,
}
"""App-wide: a plugin route that lets ``kernel.models`` refuse its inputs answers the client
(4xx with the reason), not 500. The V2 routes keep their own ``{"error": ...}`` documents."""
