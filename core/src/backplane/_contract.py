"""Value types that plugins pass to the kernel through the ``register`` callbacks.

They are plain msgspec structs so that the kernel can validate, serialise (``plugins list
--json``) and compare them without importing anything heavy.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec

if TYPE_CHECKING:  # msgspec resolves annotations lazily; keep `backplane --help` lean
    from importlib.resources.abc import Traversable

PLUGIN_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}\Z")
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
    per_tenant: bool = False
    """With ``schedule``: each period runs once per tenant that has the plugin enabled, each run
    a task of its own bound to that tenant (``kernel.db`` sees its rows), failing and retried
    alone; without it, a periodic job runs once per period for no tenant."""


ONNXRUNTIME = "onnxruntime"
"""The kernel's own inference runtime: onnxruntime in process."""


class InferenceModel(msgspec.Struct, frozen=True, kw_only=True):
    """A model file shipped inside a plugin's package data (an ONNX file, unless ``runtime``
    names a runtime that reads another format).

    ``path`` may be a ``Path`` or what ``importlib.resources.files(...) / "x.onnx"`` returns,
    so models load from an installed wheel as well as from a source tree. With
    ``max_batch_size`` above 1 (and a dynamic first dimension on every input) requests are
    batched dynamically, whatever the runtime.
    """

    name: str
    version: str
    path: Path | Traversable
    max_batch_size: int = 0
    max_queue_delay_us: int = 0
    description: str = ""
    runtime: str = ONNXRUNTIME
    """The name of the :class:`InferenceRuntime` that loads and runs the file (registered
    through ``register_inference_runtimes``); a name no plugin registered skips the plugin
    that ships the model, with that reason (or stops start-up, in strict mode)."""


class ModelRef(msgspec.Struct, frozen=True, kw_only=True):
    """One servable model version, wherever it comes from: what an
    :class:`InferenceRuntime` is told about the file it loads."""

    name: str
    version: str
    source: str
    """``kernel`` or ``plugin`` (shipped: every tenant sees them), or a registry row's source
    (``upload``, ``marketplace``)."""
    key: str
    """Names the loaded session: the file's ``sha256`` for uploads, ``shipped:<name>:<version>``
    otherwise."""
    max_batch_size: int = 0
    max_queue_delay_us: int = 0
    description: str = ""


class Meter(msgspec.Struct, frozen=True, kw_only=True):
    """A billable metric: what is counted, in which unit, and how it is aggregated."""

    code: str
    unit: str
    aggregation: Aggregation = "count"
    property: str | None = None
    group_by: tuple[str, ...] = ()
    description: str = ""


class EventType(msgspec.Struct, frozen=True, kw_only=True):
    """A kind of platform event (``register_event_types``): what happened, for subscribers
    (``event_emitted``) and for tenants' webhook endpoints to subscribe to by name."""

    name: str
    description: str = ""
    live: bool = False
    """Also send each event to its tenant's live stream (``GET /api/events``) once its
    transaction commits: for events every member of the tenant may see."""


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
    """A named way of running models: the kernel's in-process ``onnxruntime``, a remote V2
    server, anything that can answer the protocol below.

    ``load(data, model)`` builds a session from a model file's bytes (``data``; ``model`` says
    which version of which model they are). It is called once per model version a process
    loads, in a worker thread, never per request. The session it returns needs, as
    onnxruntime's ``InferenceSession`` has them:

    - ``get_inputs()`` and ``get_outputs()``: sequences of items with ``name``, ``type`` (a
      V2 datatype such as ``"FP32"``, or an onnxruntime type string such as
      ``"tensor(float)"``) and ``shape`` (a list; a dimension that is not a non-negative int,
      such as ``-1``, ``None`` or ``"batch"``, is dynamic);
    - ``run(output_names, feed)``: the outputs named, in that order, as numpy arrays, for
      ``feed`` (input name to numpy array, already checked against the signature). It is
      called from several threads at once.

    Dynamic batching works with every runtime: when a model asks for it (``max_batch_size``
    above 1) the kernel concatenates the rows of queued requests along the first axis, calls
    ``run`` once and splits the outputs by rows; a model whose outputs do not have one row per
    input row is then run request by request. Shipped models name their runtime
    (:attr:`InferenceModel.runtime`); uploads, always validated as ONNX files first, use the
    ``inference.runtime`` setting. A runtime of the same name registered by a later plugin
    replaces an earlier one (the kernel's ``onnxruntime`` included).
    """

    name: str
    load: Callable[[bytes, ModelRef], Any]
    platform: str = ""
    """What V2 model metadata reports as the ``platform`` of its models (Triton's names, such
    as ``onnxruntime_onnx``); the runtime's name when empty."""


class StorageBackend(msgspec.Struct, frozen=True, kw_only=True):
    """A named place for stored objects: model files (chosen by ``storage.backend``), tenant
    files (chosen by ``files.backend``), or both.

    ``open(settings)`` is called once per process with the kernel's settings and returns the
    model store: ``backplane.ArtifactStore``, content-addressed (``put(data)`` returns the
    sha256, ``get(sha256)`` raises ``backplane.ArtifactMissingError`` for what it does not hold,
    ``exists(sha256)``, and ``sweep(keep, older_than)`` for the hourly retention task; optionally
    ``discard(sha256, older_than)``, deleting one file unless stored since ``older_than``, which
    tenant deletion uses at once, else the sweep removes the files later). Its methods are
    called from worker threads.

    ``open_files(settings)``, likewise once per process, returns the streaming store of tenant
    files: ``backplane.FileStore`` (``write(key, chunks)`` from an async iterator, all or
    nothing; ``read(key, start, end)`` a byte range as an async iterator; ``size``, ``delete``
    and ``list(prefix)`` for the retention task's sweep). A backend may leave either one None.
    A backend of the same name registered by a later plugin replaces an earlier one (the
    kernel's ``local`` included).
    """

    name: str
    open: Any = None
    open_files: Any = None


class BillingProvider(msgspec.Struct, frozen=True, kw_only=True):
    """A named billing provider (the kernel's own ledger, a payment service, ...)."""

    name: str
    provider: Any


class MailTransport(msgspec.Struct, frozen=True, kw_only=True):
    """A named way of handing mail on, chosen by ``mail.transport``: the kernel's ``files``
    (``.eml`` files in the data directory, the default) and ``smtp`` (aiosmtplib), or a
    plugin's (an HTTP mail API, say).

    ``open(settings, password)`` is called once per process with the kernel's settings without
    secrets and the configured ``mail.smtp_password`` (None when unset), and returns the
    transport: an object with ``async deliver(envelope, committing)`` that hands one
    :class:`backplane.MailEnvelope` on. It must ``await committing()`` immediately before the
    step after which the receiver may have accepted the message (SMTP: before ``DATA``): until
    then a failure is retried, after it a failure that is not a definite refusal leaves the
    message ``unconfirmed`` rather than risk sending it twice. It raises
    :class:`backplane.MailDeliveryError` for a refusal (``permanent`` for one a retry cannot
    cure, such as a rejected recipient). A transport of the same name registered by a later
    plugin replaces an earlier one.
    """

    name: str
    open: Any


class StaticFiles(msgspec.Struct, frozen=True, kw_only=True):
    """Files shipped in a plugin's package data, served as they are by ``register_routes``:
    ``register(StaticFiles(path="/assets", directory=files(__package__) / "static"))`` serves
    ``/api/<plugin>/assets/<file>`` (under ``prefix=`` if given). Always public: they are the
    same for every tenant and a browser fetches them without credentials (stylesheets, scripts
    and images of public pages); never put a tenant's data there. ``directory`` must be a real
    directory once installed (a wheel unpacked by pip or uv, not a zip)."""

    path: str
    directory: Path | Traversable


class Templates(msgspec.Struct, frozen=True, kw_only=True):
    """Jinja templates shipped in a plugin's package data: ``register(Templates(directory=
    files(__package__) / "templates"))``; a handler returns ``litestar.response.Template(
    "<plugin>/page.html", context={...})`` (names start with the plugin's name, so plugins'
    templates never shadow each other). Autoescaped."""

    directory: Path | Traversable


Metric = str
"""A trainer's metric: ``auc``, ``log_loss``, ``rmse``, ``accuracy``, or ``hit_rate@k`` (``k``
from 1 to 9999: the share of holdout rows whose label is among the model's ``k`` most probable
classes, for recommenders built as a classifier over items; see
:mod:`backplane.inference.metrics`)."""
HIGHER_IS_BETTER: dict[str, bool] = {
    "auc": True,
    "accuracy": True,
    "log_loss": False,
    "rmse": False,
}
"""Whether a larger value of each metric means a better model (``hit_rate@k``: larger)."""


_HIT_RATE = re.compile(r"^hit_rate@([1-9][0-9]{0,3})\Z")


def hit_rate_k(metric: str) -> int | None:
    """``k`` of a ``hit_rate@k`` metric name (1 to 9999), None for any other name."""
    found = _HIT_RATE.match(metric)
    return int(found.group(1)) if found else None


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better; ValueError naming the known metrics."""
    if metric in HIGHER_IS_BETTER:
        return HIGHER_IS_BETTER[metric]
    if hit_rate_k(metric) is not None:
        return True
    known = ", ".join([*sorted(HIGHER_IS_BETTER), "hit_rate@k (k from 1 to 9999)"])
    raise ValueError(f"unknown metric {metric!r}; known: {known}")


class Trainer(msgspec.Struct, frozen=True, kw_only=True):
    """A named way to learn the tenant's model ``model`` from the tenant's own data
    (``register_trainers``).

    ``fit(kernel)`` (may be async) reads the tenant's rows through ``kernel.db`` and returns
    ``(features, labels, estimator)``: a 2-D float array (converted to float32), one label per
    row, and an unfitted scikit-learn estimator or pipeline that skl2onnx can convert. The
    kernel does the rest: a seeded holdout split, the fit in a resource-limited process, the
    metrics (``metric`` decides which model is better: ``auc``, ``log_loss``, ``rmse``,
    ``accuracy``, or ``hit_rate@k`` for a recommender built as a classifier whose classes are
    the items; a constant baseline's for comparison), permutation importance on the holdout,
    conversion to ONNX, a check that ONNX agrees with scikit-learn on the holdout, and a new
    version of the tenant's ``model`` with its model card. The estimator's class must be
    importable by its module name (the fit runs in a separate process). Make ``fit`` async
    when it reads the database: only an async ``fit`` is held to ``training.time_limit_s``
    (a synchronous one runs to its end before the clock can stop it).

    ``fit`` may return a fourth item, ``baseline_scores``: one number per row from the
    product's own non-learnt method (a rules score for ``auc``, a prediction for ``rmse``, a
    label for ``accuracy``). The kernel measures it on the same holdout instead of the constant
    baseline (the card's ``baseline``, ``baseline_source: "trainer"``), and a version that does
    not beat it is never promoted.
    """

    name: str
    model: str
    fit: Any
    metric: Metric
    description: str = ""
    beat_baseline_to_promote: bool = False
    """Promote a version only when its holdout metric beats the constant baseline's (class
    prior or mean, on the same split; for a ``hit_rate@k`` recommender that is popularity),
    on top of beating production: a model that learnt nothing never serves."""

    @property
    def higher_is_better(self) -> bool:
        return higher_is_better(self.metric)


class Service(msgspec.Struct, frozen=True, kw_only=True):
    """A function a plugin offers other plugins (``register_services``), called through
    ``await kernel.service(name)`` without importing the plugin: the optional dependency
    between plugins (a certificate from the documents plugin, when it is there).

    ``call(kernel, *args, **kwargs)`` (may be async) receives the *offering* plugin's own
    :class:`backplane.Kernel` view bound to the caller's tenant, session and principal, so what
    it writes commits, or rolls back, with the caller's transaction. ``name`` starts with the
    offering plugin's name (``documents.render``); document its arguments and result in
    ``description`` and the plugin's README: they are a public API of that plugin."""

    name: str
    call: Any
    description: str = ""
