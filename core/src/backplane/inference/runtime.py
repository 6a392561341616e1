"""Serving models, shipped (``register_inference_models``) and uploaded, through one catalog.

A shipped model is visible to every tenant, an upload only to its tenant (tenant-scoped rows,
row-level secured on PostgreSQL); unknown and invisible are the same 404. Sessions come from
the model's runtime (a shipped model names its own, uploads use ``inference.runtime``), are
built on first use, cached by bytes and shared by every tenant calling the same file; runs go
to a thread pool, through a :class:`~backplane.inference.batching.DynamicBatcher` when allowed.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backplane._contract import InferenceModel, InferenceRuntime, ModelRef
from backplane.billing.meters import collect_meters
from backplane.billing.usage import UsageItem
from backplane.caching import RefreshAheadCache
from backplane.db.tenancy import bind_tenant
from backplane.inference import v2
from backplane.inference.batching import DynamicBatcher, Timing
from backplane.inference.load_checks import LoadChecks
from backplane.inference.models import ModelVersion, model_rows
from backplane.inference.monitoring import Monitoring
from backplane.inference.resolution import RegistryView, read_aliases, version_for
from backplane.inference.sessions import SessionCache
from backplane.inference.stats import StatsBook
from backplane.inference.storage import open_store
from backplane.plugins import KERNEL_PLUGIN, PluginSet

SHIPPED = ("kernel", "plugin")


class ModelNotFoundError(LookupError):
    """No model (or version) of that name is visible to the caller."""


class UnknownInferenceRuntimeError(LookupError):
    """``inference.runtime`` names no runtime registered through ``register_inference_runtimes``."""


class LoadedModel:
    """A runtime's session, its V2 signature and (when the model allows it) its batcher."""

    def __init__(self, ref: ModelRef, session: Any, cost: int, platform: str) -> None:
        self.ref = ref
        self.session = session
        self.cost = cost
        self.platform = platform
        self.inputs = [_tensor(i) for i in session.get_inputs()]
        self.outputs = [_tensor(o) for o in session.get_outputs()]
        self.output_names = [t.name for t in self.outputs]
        self.batcher: DynamicBatcher | None = None
        self.evicted = False
        """Out of the cache: requests still holding it finish unbatched, nothing new starts."""

    @property
    def batchable(self) -> bool:
        """Every input has a dynamic first dimension and the model asks for batches of 2+."""
        return self.ref.max_batch_size > 1 and all(t.shape[:1] == [-1] for t in self.inputs)

    def metadata(self, versions: list[str], name: str | None = None) -> v2.ModelMetadata:
        """V2 metadata under ``name`` (the caller's model: the session may be shared by a model
        of the same bytes under another name, even another tenant's), default the loader's."""
        return v2.ModelMetadata(
            name=name or self.ref.name,
            versions=versions,
            platform=self.platform,
            inputs=self.inputs,
            outputs=self.outputs,
        )

    def check_inputs(self, tensors: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
        """The session feed, or :class:`v2.V2Error` naming what does not match the signature."""
        expected = {t.name: t for t in self.inputs}
        if set(tensors) != set(expected):
            raise v2.V2Error(
                f"model {self.ref.name} takes inputs {sorted(expected)}, got {sorted(tensors)}"
            )
        feed: dict[str, Any] = {}
        for name, array in tensors.items():
            spec = expected[name]
            if v2.datatype_of(array.dtype) != spec.datatype:
                raise v2.V2Error(
                    f"input {name}: datatype {v2.datatype_of(array.dtype)}, "
                    f"expected {spec.datatype}"
                )
            if array.ndim != len(spec.shape) or any(
                want not in (-1, got) for want, got in zip(spec.shape, array.shape, strict=True)
            ):
                raise v2.V2Error(f"input {name}: shape {list(array.shape)}, expected {spec.shape}")
            feed[name] = v2.bytes_to_str(array, name) if spec.datatype == "BYTES" else array
        return feed


def _tensor(node: Any) -> v2.MetadataTensor:
    shape = [d if isinstance(d, int) and d >= 0 else -1 for d in (node.shape or [])]
    kind = node.type
    datatype = kind if kind in v2.DATATYPES else v2.datatype_from_onnx(kind)
    return v2.MetadataTensor(name=node.name, datatype=datatype, shape=shape)


def _runtimes(plugin: str, *runtimes: Any) -> list[InferenceRuntime]:
    for runtime in runtimes:
        if not isinstance(runtime, InferenceRuntime) or not callable(runtime.load):
            raise TypeError(
                "register_inference_runtimes expects InferenceRuntime values with a callable "
                f"load, got {runtime!r}"
            )
    return list(runtimes)


def collect_runtimes(plugins: PluginSet) -> dict[str, InferenceRuntime]:
    """Every registered runtime by name (a later plugin's replaces an earlier one's)."""
    return {
        runtime.name: runtime
        for _, runtime in plugins.collect("register_inference_runtimes", _runtimes)
    }


def batch_rows(feed: Mapping[str, Any]) -> int:
    """Rows (batch entries) of a request: the longest first dimension, 1 for scalars only."""
    return max((a.shape[0] for a in feed.values() if getattr(a, "ndim", 0)), default=1)


UNMETERED_SOURCES = frozenset({"kernel", "plugin", "upload"})
"""Model sources without source meters: shipped models and the tenant's own uploads."""


def usage_items(
    name: str,
    feed: Mapping[str, Any],
    ref: ModelRef | None = None,
    source_meters: frozenset[str] = frozenset(),
) -> list[UsageItem]:
    """What one request to model ``name`` is metered, on the V2 API and ``kernel.models``.

    Every request counts on ``inference.requests`` and ``inference.rows`` (grouped by model).
    A model a plugin exposed (``kernel.models.expose_artifact``, source ``S``) also counts on
    the plugin's **source meters** ``S.requests`` (1) and ``S.rows`` (the batch rows), each
    only when a plugin registered it (``source_meters``), with the properties ``model``,
    ``version`` and ``artifact`` (the SHA-256): in the same batch as the kernel's meters, so
    the plugin can price its models per version (the marketplace does) exactly."""
    rows = batch_rows(feed)
    properties = {"model": name}
    items = [
        UsageItem("inference.requests", 1, properties),
        UsageItem("inference.rows", rows, properties),
    ]
    if ref is not None and ref.source not in UNMETERED_SOURCES:
        exposed = {"model": name, "version": ref.version, "artifact": ref.key}
        for metric, value in (("requests", 1), ("rows", rows)):
            if f"{ref.source}.{metric}" in source_meters:
                items.append(UsageItem(f"{ref.source}.{metric}", value, exposed))
    return items


def version_key(version: str) -> tuple[int, int, str]:
    """Numeric versions order numerically and after any other; the rest by text."""
    return (1, int(version), version) if version.isdigit() else (0, 0, version)


def pick_version(refs: list[ModelRef], version: str | None) -> ModelRef:
    """``version`` of a model's versions (oldest first, as :meth:`ModelCatalog.versions` gives
    them), or the latest when ``version`` is None."""
    if version is None:
        return refs[-1]
    for ref in refs:
        if ref.version == version:
            return ref
    raise ModelNotFoundError(f"model {refs[-1].name!r} has no version {version!r}")


async def _registry_refs(db: AsyncSession, tenant_id: uuid.UUID, name: str) -> list[ModelRef]:
    """The tenant's ready versions of ``name`` as refs, oldest first."""
    rows = await db.scalars(model_rows(tenant_id, name).where(ModelVersion.status == "ready"))
    refs = [
        ModelRef(
            name=row.name,
            version=row.version,
            source=row.source,
            key=row.sha256,
            max_batch_size=row.max_batch_size if row.dynamic_batch else 0,
            max_queue_delay_us=row.max_queue_delay_us,
            description=row.description,
        )
        for row in rows
    ]
    return sorted(refs, key=lambda r: version_key(r.version))


async def _registry_view(db: AsyncSession, tenant_id: uuid.UUID, name: str) -> RegistryView:
    refs = await _registry_refs(db, tenant_id, name)
    return RegistryView(refs, await read_aliases(db, tenant_id, name) if refs else {})


class ModelCatalog:
    """Every model a tenant may call, loaded lazily, run off the event loop."""

    def __init__(
        self,
        plugins: PluginSet,
        sessionmaker: async_sessionmaker[AsyncSession] | None = None,
        events: Any = None,
    ) -> None:
        self.settings = plugins.settings
        self._sessionmaker = sessionmaker
        """Reads a tenant's registry rows when a caller passes no session (the V2 hot path
        opens none: shipped and recently resolved models need no database)."""
        config = self.settings.inference
        self._runtimes = collect_runtimes(plugins)
        self.source_meters = frozenset(
            code for code in collect_meters(plugins) if code.endswith((".requests", ".rows"))
        )
        """Registered meters that may be source meters (see :func:`usage_items`)."""
        uploads = self._runtimes.get(config.runtime)
        if uploads is None:
            where = self.settings.sources.get("inference.runtime", "BACKPLANE_INFERENCE__RUNTIME")
            raise UnknownInferenceRuntimeError(
                f"{where}: no inference runtime {config.runtime!r} "
                f"(registered: {', '.join(sorted(self._runtimes)) or 'none'})"
            )
        self._upload_runtime = uploads
        self.shipped: dict[str, dict[str, InferenceModel]] = {}
        shipped_refs: dict[str, dict[str, ModelRef]] = {}
        for plugin, spec in plugins.collect("register_inference_models", self._shipped_models):
            self.shipped.setdefault(spec.name, {})[spec.version] = spec
            shipped_refs.setdefault(spec.name, {})[spec.version] = ModelRef(
                name=spec.name,
                version=spec.version,
                source="kernel" if plugin == KERNEL_PLUGIN else "plugin",
                key=f"shipped:{spec.name}:{spec.version}",
                max_batch_size=spec.max_batch_size,
                max_queue_delay_us=spec.max_queue_delay_us,
                description=spec.description,
            )
        self._shipped_refs = {
            name: sorted(refs.values(), key=lambda r: version_key(r.version))
            for name, refs in shipped_refs.items()
        }
        self.store = open_store(plugins)
        self.stats = StatsBook()
        self.monitoring = Monitoring(config, sessionmaker, events)
        """Per-version latency, error rate and input drift (``events``: where drift alerts go)."""
        self.load_checks: LoadChecks | None = None
        """What plugins say before a model they exposed serves a tenant (hook
        ``model_loading``): set by the process's rails (not the CLI's catalog)."""
        self.threads = config.threads or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="backplane-inference")
        self._sessions: SessionCache[LoadedModel] = SessionCache(
            config.session_cache_bytes, on_evict=self._evicted
        )
        self._registry: RefreshAheadCache[tuple[uuid.UUID, str], RegistryView] = RefreshAheadCache(
            self._read_view,
            config.registry_cache_s,
            # not names nobody uploaded: any caller can invent those
            remember=lambda view: bool(view.refs),
            name="model registry",
        )

    def _shipped_models(self, plugin: str, *models: Any) -> list[InferenceModel]:
        """Checks ``register_inference_models`` items: models, run by a registered runtime."""
        for model in models:
            if not isinstance(model, InferenceModel):
                raise TypeError(
                    f"register_inference_models expects InferenceModel values, got {model!r}"
                )
            if model.runtime not in self._runtimes:
                raise LookupError(
                    f"model {model.name!r} version {model.version!r} names inference runtime "
                    f"{model.runtime!r}, which no plugin registered "
                    f"(registered: {', '.join(sorted(self._runtimes))})"
                )
        return list(models)

    # -- resolution ---------------------------------------------------------------------------
    def shipped_refs(self, name: str) -> list[ModelRef]:
        return self._shipped_refs.get(name, [])

    async def versions(
        self, db: AsyncSession | None, tenant_id: uuid.UUID, name: str
    ) -> list[ModelRef]:
        """The versions of ``name`` the tenant can call, oldest first (a shipped name wins:
        uploads cannot take one). The server's catalog (with a sessionmaker) reads the registry
        with its own session, through its cache, and ignores ``db``; the CLI's uses ``db``."""
        return (await self._view(db, tenant_id, name)).refs

    async def resolve(
        self,
        db: AsyncSession | None,
        tenant_id: uuid.UUID,
        name: str,
        version: str | None,
        *,
        routing_key: str | None = None,
        split: bool = False,
    ) -> ModelRef:
        """The version to serve; ``version`` may name an alias (and None means ``production``
        when the tenant's model has it): :func:`backplane.inference.resolution.version_for`."""
        view = await self._view(db, tenant_id, name)
        chosen = version_for(view, tenant_id, name, version, routing_key, split=split)
        return pick_version(view.refs, chosen)

    async def _view(self, db: AsyncSession | None, tenant_id: uuid.UUID, name: str) -> RegistryView:
        """A shipped name's versions (no aliases: those are the tenant's own models'), else
        the tenant's versions and aliases; :class:`ModelNotFoundError` when there are none."""
        refs = self.shipped_refs(name)
        if refs:
            return RegistryView(refs, {})
        view = await self._tenant_view(db, tenant_id, name)
        if not view.refs:
            raise ModelNotFoundError(f"unknown model {name!r}")
        return view  # both sources keep their lists sorted, oldest first

    async def _tenant_view(
        self, db: AsyncSession | None, tenant_id: uuid.UUID, name: str
    ) -> RegistryView:
        if self._sessionmaker is not None:
            return await self._registry.get((tenant_id, name))
        if db is None:  # the CLI's catalog: no sessionmaker, one-shot, so no cache either
            raise RuntimeError("ModelCatalog: no session given and no sessionmaker configured")
        return await _registry_view(db, tenant_id, name)

    async def _read_view(self, key: tuple[uuid.UUID, str]) -> RegistryView:
        tenant_id, name = key
        assert self._sessionmaker is not None
        async with self._sessionmaker() as session:
            bind_tenant(session, tenant_id)
            return await _registry_view(session, tenant_id, name)

    def forget(self, tenant_id: uuid.UUID, name: str) -> None:
        """Drop the cached view of a tenant's model (after this process changed it)."""
        self._registry.forget((tenant_id, name))

    # -- sessions -----------------------------------------------------------------------------
    def load(self, ref: ModelRef) -> LoadedModel:
        """The model's session, built by its runtime (blocking on first use: call it in a
        thread). The runtime is chosen here, once per load; requests use the session."""

        def build() -> tuple[LoadedModel, int]:
            # A shipped model's own runtime (checked when it was registered), else the uploads'.
            if ref.source in SHIPPED:
                spec = self.shipped[ref.name][ref.version]
                data, runtime = spec.path.read_bytes(), self._runtimes[spec.runtime]
            else:
                data, runtime = self.store.get(ref.key), self._upload_runtime
            loaded = LoadedModel(
                ref, runtime.load(data, ref), len(data), runtime.platform or runtime.name
            )
            return loaded, loaded.cost

        return self._sessions.get_or_load(ref.key, build)

    async def aload(self, ref: ModelRef, tenant_id: uuid.UUID | None = None) -> LoadedModel:
        """:meth:`load` for the event loop: a loaded model at once, a new one in a thread.
        With ``tenant_id``, first what the plugin that exposed ``ref`` says about serving it
        to that tenant (:class:`~backplane.inference.load_checks.ModelRefused` if it refuses;
        cached, see :mod:`backplane.inference.load_checks`)."""
        if tenant_id is not None and self.load_checks is not None:
            await self.load_checks.admit(tenant_id, ref)
        loaded = self._sessions.get(ref.key)
        return loaded if loaded is not None else await asyncio.to_thread(self.load, ref)

    def loaded_keys(self) -> list[str]:
        return self._sessions.keys()

    def _evicted(self, model: LoadedModel) -> None:
        """Called by the cache, usually in the thread that loaded another model."""
        model.evicted = True
        batcher, model.batcher = model.batcher, None
        if batcher is not None:
            batcher.close_from_any_thread()

    # -- running ------------------------------------------------------------------------------
    async def infer(
        self,
        tenant_id: uuid.UUID,
        model: LoadedModel,
        feed: dict[str, Any],
        outputs: list[str] | None,
        timeout_s: float,
        *,
        version: str | None = None,
        ref: ModelRef | None = None,
    ) -> dict[str, np.ndarray[Any, Any]]:
        """Run ``feed`` (batched with other requests when the model allows it); record stats
        under ``ref`` (the resolved model and version) and ``version`` (default ``ref``'s).
        Models with the same bytes share a session, whose own ``ref`` is the model that loaded
        it: maybe another name, another source, another tenant's; it is only the default."""
        served = ref or model.ref
        name, version = served.name, version or served.version
        started = time.perf_counter_ns()
        try:
            async with asyncio.timeout(timeout_s):
                results, timing = await self._run(model, feed)
        except BaseException:
            elapsed = time.perf_counter_ns() - started
            self.stats.failure(tenant_id, name, version, elapsed)
            self.monitoring.failure(tenant_id, name, version, elapsed)
            raise
        elapsed = time.perf_counter_ns() - started
        self.stats.success(tenant_id, name, version, batch_rows(feed), timing, elapsed)
        self.monitoring.success(tenant_id, name, version, elapsed, served, feed)
        if outputs:
            return {name: results[name] for name in outputs}
        return results

    async def _run(
        self, model: LoadedModel, feed: dict[str, Any]
    ) -> tuple[dict[str, np.ndarray[Any, Any]], Timing]:
        batcher = self._batcher(model, feed)
        if batcher is not None:
            return await batcher.submit(feed)
        loop = asyncio.get_running_loop()
        started = time.perf_counter_ns()
        results = await loop.run_in_executor(
            self._pool, model.session.run, model.output_names, feed
        )
        return dict(zip(model.output_names, results, strict=True)), Timing(
            compute_ns=time.perf_counter_ns() - started, batch_rows=0
        )

    def _batcher(self, model: LoadedModel, feed: dict[str, Any]) -> DynamicBatcher | None:
        if model.evicted or not (self.settings.inference.dynamic_batching and model.batchable):
            return None
        if any(not isinstance(a, np.ndarray) or a.ndim == 0 for a in feed.values()):
            return None
        if model.batcher is None:
            model.batcher = DynamicBatcher(
                model.session.run,
                model.output_names,
                self._pool,
                max_batch_size=model.ref.max_batch_size,
                max_queue_delay_us=model.ref.max_queue_delay_us,
                concurrency=self.settings.inference.batch_concurrency or self.threads,
            )
        if model.batcher.disabled_reason is not None:
            return None
        return model.batcher

    def close(self) -> None:
        for model in self._sessions.values():
            if model.batcher is not None:
                model.batcher.close()
        self._sessions.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)
