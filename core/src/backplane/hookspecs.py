"""The plugin contract: every hook a plugin may implement, and nothing else.

Registration hooks receive a ``register`` callback instead of returning values (the ``llm``
pattern): the kernel controls how contributions are merged and attributes each one to the
plugin that made it, and new keyword arguments can be added to ``register`` without breaking
old plugins. An implementation may also return a value, a callable (called with no arguments)
or an awaitable; for registration hooks a returned item, or list of items, is registered as if
passed to ``register``. Hooks are called once per plugin, in dependency order, kernel first;
an implementation declares only the arguments it uses, so hooks gain arguments without breaking
older plugins. Every registration hook may also take ``settings`` (the kernel's settings without
secrets) and ``plugin_settings`` (the plugin's own validated settings struct). Lifecycle hooks
receive ``kernel``: the plugin's own :class:`backplane.Kernel`.

A plugin module may implement one hook more than once, under other function names, with
``@hookimpl(specname="register_routes")`` (pluggy's own option): a plugin whose parts are
written separately (templates, bulk jobs, processing) then registers each part's routes, tasks
and meters from its own function instead of editing a shared one.
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT_NAME = "backplane"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_routes(register: Any, settings: Any, plugin_settings: Any) -> Any:
    """Register Litestar controllers, routers or handlers: ``register(*handlers)``; mounted
    under ``/api/<plugin>/`` and tagged with the plugin name in OpenAPI. ``settings`` (the
    kernel's, without secrets) is there for routes built from them, such as a body limit.
    ``register(*handlers, prefix="/xapi")`` mounts them at a path the plugin owns instead
    (where a standard names one; a path another plugin or the kernel claims refuses the later
    plugin at start-up, naming both); ``register(*handlers, public=True)`` serves them without
    authentication (no caller, no tenant: the handler checks what it serves; a plugin's
    handler is public only this way). ``register(StaticFiles(path=..., directory=...))``
    serves package data (public), ``register(Templates(directory=...))`` adds Jinja templates
    named ``<plugin>/<file>``."""


@hookspec
def register_migrations(register: Any, settings: Any, plugin_settings: Any) -> Any:
    """Register an alembic version directory: ``register(directory, branch=name, metadata=None)``;
    ``metadata`` holds the tables that ``backplane db check`` compares with the database."""


@hookspec
def register_tasks(register: Any, settings: Any, plugin_settings: Any) -> Any:
    """Register background tasks: ``register(actor, queue=..., max_retries=..., time_limit_ms=...,
    schedule=None)``, where ``schedule`` is a cron expression for periodic jobs."""


@hookspec
def register_inference_models(register: Any, settings: Any, plugin_settings: Any) -> Any:
    """Register ONNX models shipped with the plugin: ``register(InferenceModel(...))``."""


@hookspec
def register_meters(register: Any, settings: Any, plugin_settings: Any) -> Any:
    """Register billable metrics: ``register(*meters)`` with :class:`backplane.Meter` values."""


@hookspec
def register_permissions(register: Any, settings: Any, plugin_settings: Any) -> Any:
    """Register permission codes and the roles holding them: ``register(*permissions)``
    (``platform.*`` codes with ``roles=()``: platform operators hold those)."""


@hookspec
def register_commands(cli: Any) -> Any:
    """Add subcommands to the ``backplane`` click group ``cli`` (keep imports inside them lazy)."""


@hookspec
def register_auth_backends(register: Any, settings: Any, plugin_settings: Any) -> Any:
    """Register ways to authenticate requests: ``register(*backends)`` with
    :class:`backplane.AuthBackend` values. Every request asks plugins' backends in plugin order,
    then the kernel's ``bearer`` (access tokens, API keys); the first principal wins, none is
    401. A name registered again replaces the earlier backend (later plugins win);
    ``auth.backends`` may pick and order them."""


@hookspec
def register_inference_runtimes(register: Any, settings: Any, plugin_settings: Any) -> Any:
    """Register ways of running models: ``register(InferenceRuntime(name=..., load=...))``;
    shipped models name theirs (``InferenceModel.runtime``), uploads use ``inference.runtime``.
    ``settings`` (the kernel's) is there for runtimes built from them (onnxruntime's arena)."""


@hookspec
def register_storage_backends(register: Any, settings: Any, plugin_settings: Any) -> Any:
    """Register where stored objects may live: ``register(StorageBackend(name=..., open=...,
    open_files=...))``; ``storage.backend`` picks the one of model files by name (``open``),
    ``files.backend`` the one of tenant files (``open_files``: a streaming ``FileStore``)."""


@hookspec
def register_billing_providers(register: Any, settings: Any, plugin_settings: Any) -> Any:
    """Register a billing provider: ``register(name, provider)``."""


@hookspec
def register_event_types(register: Any, settings: Any, plugin_settings: Any) -> Any:
    """Register the platform events the plugin emits: ``register(EventType(name=..., ...))``;
    a name starts with the plugin's name (``helpdesk.ticket_closed``). Only registered types
    can be emitted (``kernel.events.emit``) or subscribed to by webhook endpoints."""


@hookspec
def event_emitted(kernel: Any, event: Any) -> Any:
    """A platform event (:class:`backplane.Event`) was emitted: called in the emitter's
    transaction, with ``kernel`` bound to the event's tenant and that session, so what a
    subscriber writes or enqueues (``kernel.tasks``) commits, or rolls back, with the action."""


@hookspec
def seed_demo_data(kernel: Any) -> Any:
    """Add demo rows on the first ``backplane demo seed`` of a database; ``kernel.db`` is the
    demo tenant's session (the kernel commits). A returned dict of credentials or hints is
    printed once."""


@hookspec
def startup(kernel: Any) -> Any:
    """Run when the application starts, after the kernel's own start-up."""


@hookspec
def shutdown(kernel: Any) -> Any:
    """Run when the application stops, before the kernel releases its resources."""


@hookspec
def check_health(kernel: Any) -> Any:
    """Report the plugin's own readiness for ``/health/ready``: return None when healthy, else a
    short problem description (may be async; bounded by ``db.health_timeout_s``)."""


@hookspec
def tenant_created(kernel: Any, tenant: Any) -> Any:
    """React to a new tenant, in the transaction that creates it (``kernel.db``)."""


@hookspec
def plugin_enabled(kernel: Any, tenant: Any, name: str) -> Any:
    """React to plugin ``name`` being enabled for ``tenant`` (``kernel.db`` is its session)."""


@hookspec
def export_tenant_data(kernel: Any, archive: Any, subject: Any) -> Any:
    """Write the plugin's data of ``kernel.tenant_id`` into ``archive`` (a
    :class:`backplane.ExportArchive`; ``kernel.db`` is the tenant's session, for reading): every
    table of yours (``add_table``, secrets left out with ``redact``) and the files you keep
    outside the database (``add_file``, streamed). With ``subject`` (a
    :class:`backplane.Subject`), only what is about that person; with None, everything of the
    tenant: ``backplane tenants export`` checks each table's rows against the database."""


@hookspec
def erase_subject(kernel: Any, subject: Any) -> Any:
    """Remove or pseudonymise one person (``subject``: a :class:`backplane.Subject`) in the
    plugin's rows of ``kernel.tenant_id`` (``kernel.db``: the erasure's one transaction; raise
    to refuse and roll every plugin's part back). Delete what is only about them, keep shared
    records with a pseudonym; never touch other tenants' rows (the person may belong to them).
    Return ``{table: rows changed}`` for the caller's report (optional)."""


@hookspec
def tenant_deleting(kernel: Any, tenant: Any, after_commit: Any) -> Any:
    """``tenant`` is being deleted, in the transaction that deletes it (``kernel.db``); the
    kernel itself then deletes its rows from every table with a ``tenant_id`` column. Delete
    here only what that cannot see (rows naming the tenant in another column), and pass
    ``after_commit(callable)`` what to remove outside the database once the rows are gone
    (stored files; sync or async; a failure is reported, never undoes the deletion)."""


@hookspec
def register_mail_transports(register: Any, settings: Any, plugin_settings: Any) -> Any:
    """Register ways of handing mail on: ``register(MailTransport(name=..., open=...))``;
    ``mail.transport`` picks one by name (``files`` by default, ``smtp``)."""


@hookspec
def register_trainers(register: Any, settings: Any, plugin_settings: Any) -> Any:
    """Register ways to learn a tenant's model from its own data:
    ``register(Trainer(name=..., model=..., fit=..., metric=...))``; a name starts with the
    plugin's name. ``POST /api/models/{model}/train`` runs one as a background task."""


@hookspec
def register_services(register: Any, settings: Any, plugin_settings: Any) -> Any:
    """Offer functions to other plugins: ``register(Service(name=..., call=...))``, a name
    starting with the plugin's name; callers get them with ``await kernel.service(name)``
    (None when no loaded plugin offers it, or its plugin is switched off for the tenant)."""


@hookspec
def invoice_closing(kernel: Any, period_start: Any, period_end: Any, currency: str) -> Any:
    """Bill the plugin's own items on the invoice of ``kernel.tenant_id`` for ``[period_start,
    period_end)`` being closed in ``currency``: return a list of :class:`backplane.InvoiceItem`
    (whole minor units; may be async), each becoming a line of kind ``item``. Read the period's
    usage with ``kernel.usage.window``. ``kernel.db`` is the closing transaction: what you write
    there commits with the invoice and is rolled back with it (a retried close calls you
    again). Called only for tenants with a subscription in the period, never for an invoice
    already finalized."""


@hookspec
def model_loading(kernel: Any, model: Any) -> Any:
    """A model the plugin exposed (``kernel.models.expose_artifact``; ``model`` is its
    :class:`backplane.ModelRef`: ``source``, ``name``, ``version``, ``key`` = the artifact's
    SHA-256) is about to serve ``kernel.tenant_id`` (V2 inference, metadata, readiness,
    ``kernel.models.infer``): raise :class:`backplane.ModelRefused` with the reason to refuse
    (the caller gets 409 with it); ``kernel.db`` is a read session of that tenant. Called for
    every source but shipped models and uploads, so check ``model.source`` first. Each process
    keeps the answer for ``inference.load_check_s`` (``kernel.models.recheck()`` drops it)."""
