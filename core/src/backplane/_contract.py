"""Value types that plugins pass to the kernel through the ``register`` callbacks.

They are plain msgspec structs so that the kernel can validate, serialise (``plugins list
--json``) and compare them without importing anything heavy.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec

if TYPE_CHECKING:  # msgspec resolves annotations lazily; keep `backplane --help` lean
    from importlib.resources.abc import Traversable

PLUGIN_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
"""Plugin names become URL segments (``/api/<name>/``), alembic branch labels and settings
sections, so they are restricted to lower-case identifiers."""

Aggregation = Literal["count", "sum", "max", "unique_count", "latest"]
Role = Literal["owner", "admin", "member", "viewer"]


class PluginInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a plugin module declares about itself as a module attribute named ``plugin``.

    ``requires_core`` is a PEP 440 specifier checked against the running kernel version;
    ``depends_on`` names other plugins that must load first; ``settings`` is a msgspec struct
    type validating the plugin's section of the configuration (``[plugins.<name>]`` in TOML,
    ``BACKPLANE_PLUGIN__<NAME>__<FIELD>`` in the environment).
    """

    name: str
    requires_core: str = ""
    depends_on: tuple[str, ...] = ()
    settings: Any = None
    description: str = ""


class Migrations(msgspec.Struct, frozen=True, kw_only=True):
    """An alembic version directory owned by one branch label (normally the plugin name).

    ``metadata`` is the SQLAlchemy ``MetaData`` holding the plugin's tables, compared with the
    database by ``backplane db check``.
    """

    directory: Path
    branch: str
    metadata: Any = None


class Task(msgspec.Struct, frozen=True, kw_only=True):
    """A background task (a dramatiq actor or the function to wrap into one)."""

    actor: Any
    queue: str = "default"
    max_retries: int = 20
    time_limit_ms: int = 600_000
    schedule: str | None = None
    """A cron expression for periodic jobs, or None."""


class InferenceModel(msgspec.Struct, frozen=True, kw_only=True):
    """An ONNX model file shipped inside a plugin's package data.

    ``path`` may be a ``Path`` or what ``importlib.resources.files(...) / "x.onnx"`` returns,
    so models load from an installed wheel as well as from a source tree.
    """

    name: str
    version: str
    path: Path | Traversable
    max_batch_size: int = 0
    max_queue_delay_us: int = 0
    description: str = ""
    runtime: str = "onnxruntime"
    """The :class:`InferenceRuntime` that runs it."""


class Meter(msgspec.Struct, frozen=True, kw_only=True):
    """A billable metric: what is counted, in which unit, and how it is aggregated."""

    code: str
    unit: str
    aggregation: Aggregation = "count"
    property: str | None = None
    group_by: tuple[str, ...] = ()
    description: str = ""


class Permission(msgspec.Struct, frozen=True, kw_only=True):
    """A permission code and the membership roles that hold it by default."""

    code: str
    roles: tuple[Role, ...] = ("owner", "admin")
    description: str = ""


class AuthBackend(msgspec.Struct, frozen=True, kw_only=True):
    """A named way of turning request credentials into a principal.

    ``authenticate(connection, kernel)`` is an async callable: ``connection`` is the request
    (read its headers), ``kernel`` the plugin's own :class:`backplane.Kernel` (its settings in
    ``kernel.plugin_settings``). It returns the :class:`backplane.Principal` built by
    ``await kernel.principal_for(tenant, role, subject=...)`` (tenant by id or slug; the
    permissions come from the registered role map; 401 when the tenant does not exist), or
    None when the request carries no credential of its kind (the next backend is asked); it
    raises ``litestar.exceptions.NotAuthorizedException`` for a bad credential of its kind.

    The kernel admits what a plugin's backend returns only if it is a principal of an existing
    tenant, for no user, with no permission beyond its role's; its ``via`` (``authenticated_by``
    in ``GET /api/me``) becomes ``name``. It then passes the same guards as any caller:
    permissions, the tenant's plugin switches, plan entitlements. ``name`` must not be
    ``token`` or ``api_key`` (the kernel's own principals); ``bearer`` is the kernel's backend.
    """

    name: str
    authenticate: Any


class InferenceRuntime(msgspec.Struct, frozen=True, kw_only=True):
    """A named model execution runtime (in-process onnxruntime, a remote V2 server, ...).

    ``load(data, model)`` builds a session from a model file's bytes (called in a thread): an
    object with onnxruntime's ``get_inputs()``, ``get_outputs()`` (each item with ``name``,
    ``type`` and ``shape``) and ``run(output_names, feed)``. A shipped model names its runtime
    (:attr:`InferenceModel.runtime`); uploads use ``inference.runtime``.
    """

    name: str
    load: Any


class StorageBackend(msgspec.Struct, frozen=True, kw_only=True):
    """A named place for stored objects: ``open(settings)`` returns the store
    (``backplane.inference.storage.ArtifactStore``: ``put``, ``get``, ``exists``, ``sweep``)."""

    name: str
    open: Any


class BillingProvider(msgspec.Struct, frozen=True, kw_only=True):
    """A named billing provider (the kernel's own ledger, a payment service, ...)."""

    name: str
    provider: Any
