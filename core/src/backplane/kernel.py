"""The kernel facade: the one object plugin code receives, wherever it runs.

Hooks, route handlers (the ``kernel`` dependency), tasks, scheduled jobs, CLI commands and
lifecycle hooks all get a :class:`Kernel` — as datasette hands its plugins the ``datasette``
object. It carries settings without secrets, the plugin's own validated settings, and the
kernel's services bound to one tenant and one transaction: the session, the task queue, usage
metering, the tenant's models. Nothing it hands out is the application, an engine, or a secret.

A kernel is a cheap view: :meth:`Kernel.for_plugin` and :meth:`Kernel.tenant` make new views of
the same process-wide services (:class:`Rails`, kernel-internal).
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from backplane.db.tenancy import acting_as, bind_tenant
from backplane.plugins import KERNEL_PLUGIN, PluginRecord, PluginSet
from backplane.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from backplane._contract import Meter, ModelRef, Service, Trainer
    from backplane.audit.service import TenantAudit
    from backplane.billing.group import UsageWriter
    from backplane.billing.providers import BillingContext
    from backplane.billing.usage import UsageRecorder, UsageResult
    from backplane.caching import RefreshAheadCache
    from backplane.db.engine import Database
    from backplane.events import Events, TenantEvents
    from backplane.files.service import TenantFiles
    from backplane.files.storage import FileStore
    from backplane.identity.auth import Principal
    from backplane.identity.backends import Authenticate
    from backplane.identity.holder import IdentityHolder
    from backplane.identity.members import Member
    from backplane.inference.load_checks import LoadChecks
    from backplane.inference.runtime import ModelCatalog
    from backplane.inference.service import TenantModels
    from backplane.live import LiveHub, TenantLive
    from backplane.mail.service import MailRails, TenantMail
    from backplane.ratelimit import RateLimits
    from backplane.secret_key import DeploymentKey
    from backplane.tasks.context import TaskQueue
    from backplane.tasks.runtime import TaskRuntime


class NoSessionError(LookupError):
    """``kernel.db`` (or a service on it) was used where no tenant session is bound."""


class UnknownTenantError(LookupError):
    """``kernel.tenant(...)`` named no tenant."""


async def _tenant_id(session: AsyncSession, tenant: uuid.UUID | str) -> uuid.UUID:
    from sqlalchemy import select

    from backplane.identity.models import Tenant

    if isinstance(tenant, uuid.UUID):
        query = select(Tenant.id).where(Tenant.id == tenant)
    else:
        query = select(Tenant.id).where(Tenant.slug == tenant)
    found = await session.scalar(query)
    await session.rollback()  # the tenant's own transaction starts after the lookup
    if found is None:
        raise UnknownTenantError(f"no tenant {tenant!s}")
    return found


@dataclass(eq=False)
class Rails:
    """The process-wide services behind every :class:`Kernel` view (kernel-internal: plugins
    reach them only through a kernel). One per process: the server's app, a worker, a command.
    """

    settings: Settings
    plugins: PluginSet
    database: Database
    tasks: TaskRuntime
    meters: dict[str, Meter]
    models: ModelCatalog
    identity: IdentityHolder
    usage_writer: UsageWriter
    rate_limits: RateLimits
    features: RefreshAheadCache[uuid.UUID, frozenset[str]]
    """Tenants' plan features, for ``requires_entitlement`` guards."""
    events: Events
    billing: BillingContext
    mail: MailRails
    """The mail transport and the tenants' sending rate (:mod:`backplane.mail`)."""
    live: LiveHub
    public: Settings = field(init=False)
    auth_backends: tuple[tuple[Authenticate, Kernel], ...] = field(init=False, default=())
    """``(authenticate, kernel view of its plugin)``, in the order requests are tried."""

    def __post_init__(self) -> None:
        self.public = self.settings.public()

    @classmethod
    def build(cls, settings: Settings, plugins: PluginSet, *, broker: Any = None) -> Rails:
        """Everything a process needs, from its settings and loaded plugins (no I/O yet);
        ``broker`` replaces the dramatiq broker ``broker_url`` selects (tests use a stub)."""
        from backplane.billing.entitlements import features_cache
        from backplane.billing.group import UsageWriter
        from backplane.billing.meters import collect_meters
        from backplane.billing.providers import BillingContext, collect_providers
        from backplane.db.engine import Database
        from backplane.events import Events, collect_event_types
        from backplane.identity.backends import auth_backends
        from backplane.identity.holder import IdentityHolder
        from backplane.identity.permissions import platform_permissions, role_permissions
        from backplane.inference.runtime import ModelCatalog
        from backplane.live import LiveHub
        from backplane.mail.service import MailRails
        from backplane.ratelimit import RateLimits
        from backplane.tasks.runtime import TaskRuntime

        database = Database(settings)
        meters = collect_meters(plugins)
        # Subscribers are called through the kernel's own view, made once the rails exist.
        events = Events(
            collect_event_types(plugins), lambda *a, **k: rails.kernel().notify(*a, **k)
        )
        rails = cls(
            settings=settings,
            plugins=plugins,
            database=database,
            tasks=TaskRuntime(plugins, broker=broker),
            meters=meters,
            models=ModelCatalog(plugins, database.sessions, events=events),
            identity=IdentityHolder(
                settings, database, role_permissions(plugins), platform_permissions(plugins)
            ),
            usage_writer=UsageWriter(
                database.sessions,
                meters,
                events,
                unlimited_s=settings.inference.metering_overlap_s,
                flush_s=settings.inference.metering_flush_ms / 1000,
                max_deferred=settings.inference.metering_max_deferred,
            ),
            rate_limits=RateLimits(settings),
            features=features_cache(database, settings),
            events=events,
            billing=BillingContext(
                settings,
                meters,
                collect_providers(plugins),
                events,
                lambda *a, **k: rails.kernel().notify(*a, **k),
            ),
            mail=MailRails(settings, plugins),
            live=LiveHub(settings),
        )
        rails.files  # noqa: B018 - opens the file store: a misnamed files.backend fails now
        rails.trainers  # noqa: B018 - collects the trainers: an invalid one fails now
        rails.services  # noqa: B018 - collects the services: an invalid one fails now
        rails.models.load_checks = _load_checks(rails)
        kernel = rails.kernel()
        rails.auth_backends = auth_backends(plugins, kernel.for_plugin, settings.auth.backends)
        rails.tasks.attach(functools.partial(_TaskViews, rails))
        return rails

    async def close(self) -> None:
        """Release what :meth:`build` opened (after the task runtime stopped)."""
        await self.usage_writer.flush()
        await self.models.monitoring.drift.drain()
        self.models.close()
        await self.identity.close()
        await self.rate_limits.aclose()
        await self.mail.aclose()
        await self.live.close()
        await self.database.dispose()

    def kernel(self) -> Kernel:
        """The kernel's own view (plugin ``core``), bound to no tenant."""
        return Kernel(self)

    @functools.cached_property
    def files(self) -> FileStore:
        """The store of tenant files ``files.backend`` names (opened on first use)."""
        from backplane.files.storage import open_file_store

        return open_file_store(self.plugins)

    @functools.cached_property
    def trainers(self) -> dict[str, Trainer]:
        """The trainers plugins registered (``register_trainers``), by name."""
        from backplane.inference.trainers import collect_trainers

        return collect_trainers(self.plugins)

    @functools.cached_property
    def services(self) -> dict[str, tuple[str, Service]]:
        """The services plugins offer (``register_services``): name -> (plugin, service)."""
        from backplane._contract import Service
        from backplane.plugins import owned_items

        make = owned_items(Service, "register_services", lambda s: s.name, "plugin.what_it_does")
        found: dict[str, tuple[str, Service]] = {}
        for plugin, service in self.plugins.collect("register_services", make):
            if not callable(service.call):
                raise TypeError(f"service {service.name!r}: call must be callable")
            if service.name in found:
                raise ValueError(f"service {service.name!r} is registered twice")
            found[service.name] = (plugin, service)
        return found


def _load_checks(rails: Rails) -> LoadChecks | None:
    """Hook ``model_loading`` of every plugin, asked in a read session of the tenant, its
    answers kept ``inference.load_check_s``; None when no plugin implements it."""
    from backplane.inference.load_checks import LoadChecks

    if not any(True for _ in rails.plugins.implementations("model_loading")):
        return None

    async def check(tenant_id: uuid.UUID, ref: ModelRef) -> None:
        async with rails.kernel().tenant(tenant_id) as kernel:
            await kernel.notify("model_loading", model=ref)

    return LoadChecks(check, rails.settings.inference.load_check_s)


class _TaskViews:
    """The kernel views actors receive: of the process's rails, on the task runtime's own
    database and a model catalog of its own (the runtime runs on another event loop)."""

    def __init__(self, rails: Rails, database: Database) -> None:
        from backplane.inference.runtime import ModelCatalog

        self._rails = dataclasses.replace(
            rails, database=database, models=ModelCatalog(rails.plugins)
        )
        self._rails.models.load_checks = _load_checks(self._rails)

    def __call__(self, plugin: str, **binding: Any) -> Kernel:
        return Kernel(self._rails, plugin, **binding)

    def close(self) -> None:
        self._rails.models.close()


class Kernel:
    """What plugin code receives: settings, its own settings, and the kernel's services.

    Bound to a tenant (``tenant_id``) and a session (``db``) in request handlers, tasks and
    inside :meth:`tenant`; unbound in start-up hooks and commands, where :meth:`tenant` opens a
    tenant's session (and, in commands only, :meth:`all_tenants` a session of every tenant).
    ``principal`` is the caller in request handlers; ``message_id`` and ``attempt`` say which
    delivery of a task this is.
    """

    __slots__ = (
        "_all_tenants",
        "_db",
        "_maintenance",
        "_open",
        "_operator",
        "_rails",
        "_tasks",
        "_usage",
        "attempt",
        "message_id",
        "plugin",
        "principal",
        "tenant_id",
        "usage_results",
    )

    def __init__(
        self,
        rails: Rails,
        plugin: str = KERNEL_PLUGIN,
        *,
        db: AsyncSession | Callable[[], AsyncSession] | None = None,
        tenant_id: uuid.UUID | None = None,
        principal: Principal | None = None,
        message_id: uuid.UUID | None = None,
        attempt: int = 0,
        usage_results: list[UsageResult] | None = None,
        maintenance: Callable[[str], AbstractAsyncContextManager[AsyncSession]] | None = None,
        operator: bool = False,
    ) -> None:
        self._rails = rails
        self.plugin = plugin
        """The plugin this view is for (``core`` for the kernel's own code)."""
        # A task opens its session only if the actor uses it: ``db`` may be the opener.
        self._db: AsyncSession | None = None if callable(db) else db
        self._open: Callable[[], AsyncSession] | None = db if callable(db) else None
        self._maintenance = maintenance if plugin == KERNEL_PLUGIN else None
        self.tenant_id = tenant_id
        self.principal = principal
        self.message_id = message_id
        """The task's id (tasks only)."""
        self.attempt = attempt
        """1 on a task's first delivery, 2 on its first retry, ... (0 outside tasks)."""
        self.usage_results = usage_results
        """Where a request's usage results wait to become quota headers (requests only)."""
        self._tasks: TaskQueue | None = None
        self._usage: UsageRecorder | None = None
        self._operator = operator
        """Made for an operator's CLI command (:func:`backplane.pass_kernel`): may open
        :meth:`all_tenants`."""
        self._all_tenants = False
        """``db`` sees every tenant (inside :meth:`all_tenants`)."""

    def __repr__(self) -> str:
        return f"Kernel(plugin={self.plugin!r}, tenant_id={self.tenant_id!r})"

    # -- configuration ----------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        """The kernel's settings without secrets (no secret key, no URL credentials)."""
        return self._rails.public

    @property
    def plugin_settings(self) -> Any:
        """This plugin's validated settings struct (None when it declares none)."""
        return self._rails.plugins.settings_for(self.plugin)

    @property
    def plugins(self) -> list[PluginRecord]:
        """What the kernel knows about every plugin, loaded or skipped (copies)."""
        return [msgspec.structs.replace(r) for r in self._rails.plugins.records.values()]

    # -- services bound to the tenant's session -----------------------------------------------
    @property
    def db(self) -> AsyncSession:
        """The tenant's session: row-level secured, committed by whoever opened it."""
        if self._db is None and self._open is not None:
            self._db = self._open()
        if self._db is None:
            raise NoSessionError(
                "no tenant session here: use `async with kernel.tenant(tenant_id) as k:`"
            )
        return self._db

    @property
    def tasks(self) -> TaskQueue:
        """Enqueue tasks in this session's transaction (the transactional outbox)."""
        if self._tasks is None:
            self._tasks = self._rails.tasks.queue_for(self.db)
        return self._tasks

    @property
    def usage(self) -> UsageRecorder:
        """Meter usage in this session's transaction (hard quotas refuse with 429)."""
        if self._usage is None:
            from backplane.billing.usage import UsageRecorder

            self._usage = UsageRecorder(
                self.db, self._rails.meters, self._rails.events, self.usage_results
            )
        return self._usage

    @property
    def events(self) -> TenantEvents:
        """Emit platform events in this session's transaction: ``await
        kernel.events.emit("helpdesk.ticket_closed", {...})`` (see :mod:`backplane.events`)."""
        from backplane.events import TenantEvents

        return TenantEvents(self._rails.events, self.db)

    @property
    def audit(self) -> TenantAudit:
        """Record security-relevant actions in the tenant's audit trail, in this session's
        transaction: ``await kernel.audit.record("helpdesk.ticket_deleted", target=("ticket",
        ticket_id))`` (see :mod:`backplane.audit`)."""
        from backplane.audit.service import TenantAudit

        return TenantAudit(
            self.db, self.plugin, self.principal, self._rails.settings.audit.max_details_bytes
        )

    @property
    def files(self) -> TenantFiles:
        """The tenant's files: ``await kernel.files.save(chunks, name=...)``, ``open``, ``get``,
        ``list``, ``delete``, ``signed_url``; metadata in this session's transaction (see
        :mod:`backplane.files.service`)."""
        from backplane.files.service import TenantFiles

        if self.tenant_id is None:
            raise NoSessionError(
                "files belong to a tenant: use `async with kernel.tenant(tenant_id) as k:`"
            )
        return TenantFiles(
            session=self.db,
            tenant_id=self.tenant_id,
            store=self._rails.files,
            settings=self._rails.settings.files,
            usage=self.usage,
            identity=self._rails.identity,
            owner=self.plugin,
            created_by=self.principal.user_id if self.principal is not None else None,
        )

    @property
    def mail(self) -> TenantMail:
        """Send mail as this tenant, queued in this session's transaction: ``await
        kernel.mail.send("a@example.org", "Subject", "text")`` (see :mod:`backplane.mail`);
        bulk mail adds ``headers={"List-Unsubscribe": "<https://...>", ...}`` (an allow-list:
        ``List-Unsubscribe``, ``List-Unsubscribe-Post``, ``List-Id``, ``Feedback-ID``,
        ``Precedence``; DKIM signs them)."""
        from backplane.mail.service import TenantMail

        if self.tenant_id is None:
            raise NoSessionError("kernel.mail sends as a tenant: use `kernel.tenant(...)`")
        return TenantMail(self._rails.settings.mail, self.db, self.tasks, self.tenant_id)

    @property
    def live(self) -> TenantLive:
        """Send live events to the tenant's open streams (``GET /api/events``) or one user's:
        ``await kernel.live.publish("imports.progress", {"done": 40}, user_id=...)``, at once,
        not at commit (see :mod:`backplane.live`). Needs a tenant: inside a handler, a task, or
        ``async with kernel.tenant(...)``."""
        from backplane.live import TenantLive

        if self.tenant_id is None:
            raise NoSessionError(
                "no tenant here: use `async with kernel.tenant(tenant_id) as k:` to publish"
            )
        return TenantLive(self._rails.live, self.plugin, self.tenant_id)

    async def rate_limit(
        self, action: str, key: str = "", *, limit: int, window_s: int, calls: str = ""
    ) -> None:
        """Count one call of this plugin's ``action`` by ``key`` (a client address, an e-mail
        address; within this view's tenant when it has one) and raise 429 with ``Retry-After``
        past ``limit`` calls in ``window_s`` seconds (at most a day): for public routes, where
        no caller's tenant is there to count against (``await kernel.rate_limit("form_submit",
        client_ip, limit=10, window_s=3600)``). Counted like :mod:`backplane.ratelimit`'s
        guards: in this process, or shared through Redis when ``redis_url`` is set (503 if
        Redis does not answer); keys are stored hashed. Every call counts. ``calls`` names
        them in the 429 message ("too many <calls>: at most 3 per hour"; ``action`` when empty).
        """
        tenant = str(self.tenant_id) if self.tenant_id is not None else "-"
        await self._rails.rate_limits.hit(
            f"ratelimit:{self.plugin}:{action}:{tenant}:{key}",
            limit=limit,
            window_s=window_s,
            calls=calls or f"{action.replace('_', ' ')} calls",
        )

    async def member(
        self, *, user_id: uuid.UUID | None = None, email: str | None = None
    ) -> Member | None:
        """The member of this view's tenant named by ``user_id`` or ``email`` (exactly one):
        their user id, address and role, or None when nobody here is that person (a user of
        another tenant included). For plugins that take people by id or address, such as an
        admin enrolling learners. :class:`ValueError` for a malformed address."""
        from backplane.identity.members import find_member

        if self.tenant_id is None:
            raise NoSessionError(
                "members belong to a tenant: use `async with kernel.tenant(tenant_id) as k:`"
            )
        return await find_member(self.db, self.tenant_id, user_id=user_id, email=email)

    # -- authentication ---------------------------------------------------------------------
    async def principal_for(self, tenant: uuid.UUID | str, role: str, *, subject: str) -> Principal:
        """What an auth backend returns for a credential it accepts: a principal acting for
        ``tenant`` (its id or slug) with the permissions the registered role map gives ``role``,
        not as a user. ``subject`` names the credential (``token_id``, for logs). 401 when the
        tenant does not exist; ``via`` becomes the backend's name when the kernel admits it."""
        identity = await self._rails.identity.get()
        return await identity.authenticator.principal_for(tenant, role, subject=subject)

    @property
    def models(self) -> TenantModels:
        """The models this tenant may call: ``await kernel.models.infer(name, inputs)``,
        metered in this session's transaction, and ``await kernel.models.card(name, version)``,
        a trained version's model card (see :mod:`backplane.inference.service`)."""
        from backplane.inference.service import TenantModels

        return TenantModels(self._rails.models, self)

    def deployment_key(self, purpose: str) -> DeploymentKey:
        """This deployment's Ed25519 key for this plugin and ``purpose`` (1-50 of a-z, 0-9,
        ``.``, ``_``, ``-``): ``key.sign(message)`` (base64) and ``key.public_key`` (base64 of
        the raw 32 bytes), for documents other deployments verify, such as a signed catalog.
        Derived from the installation's secret key, so every process holds the same one, it is
        stored nowhere else and never handed out; each plugin and purpose gets its own, and
        changing ``secret_key`` rotates them (see :class:`backplane.DeploymentKey`)."""
        import re

        from backplane.secret_key import deployment_key, secret_key

        if not re.fullmatch(r"[a-z0-9._-]{1,50}", purpose):
            raise ValueError(f"purpose {purpose!r}: 1-50 of a-z, 0-9, '.', '_', '-'")
        return deployment_key(secret_key(self._rails.settings), self.plugin, purpose)

    async def service(self, name: str) -> Callable[..., Any] | None:
        """The function another plugin offers as ``name`` (``register_services``), bound to
        that plugin's view of this kernel (same tenant, session and principal): ``await
        call(...)`` when it is async. None when no loaded plugin offers ``name``, or when this
        view's tenant has that plugin switched off: an optional dependency degrades, it never
        imports the other plugin."""
        offered = self._rails.services.get(name)
        if offered is None:
            return None
        plugin, service = offered
        if self.tenant_id is not None and plugin != KERNEL_PLUGIN:
            identity = await self._rails.identity.get()
            if not await identity.authenticator.plugin_enabled(self.tenant_id, plugin):
                return None
        return functools.partial(service.call, self.for_plugin(plugin))

    # -- other views ----------------------------------------------------------------------------
    def for_plugin(self, name: str) -> Kernel:
        """The same binding seen as plugin ``name`` (its settings)."""
        return Kernel(
            self._rails,
            name,
            db=self._db if self._db is not None else self._open,
            tenant_id=self.tenant_id,
            principal=self.principal,
            message_id=self.message_id,
            attempt=self.attempt,
            usage_results=self.usage_results,
            maintenance=self._maintenance,
            operator=self._operator,
        )

    @asynccontextmanager
    async def tenant(self, tenant: uuid.UUID | str) -> AsyncIterator[Kernel]:
        """A view bound to a new session of ``tenant`` (its id, or its slug), committed when the
        block ends (rolled back if it raises): for start-up hooks, commands and jobs that go
        tenant by tenant. :class:`UnknownTenantError` if there is no such tenant."""
        async with self._rails.database.sessions() as session:
            tenant_id = await _tenant_id(session, tenant)
            bind_tenant(session, tenant_id)
            async with session.begin():
                yield Kernel(self._rails, self.plugin, db=session, tenant_id=tenant_id)

    @asynccontextmanager
    async def all_tenants(self, reason: str) -> AsyncIterator[Kernel]:
        """Operator commands only (``@backplane.pass_kernel``): a view whose ``db`` reads and
        writes the rows of every tenant (on PostgreSQL past row-level security), committed when
        the block ends (rolled back if it raises); ``reason`` goes to the audit log
        (``backplane.audit``), as for the kernel's own maintenance. Rows it adds name their
        tenant themselves. Inside, :meth:`tenant_ids` lists the tenants that have the plugin
        enabled. Handlers, tasks and hooks never act across tenants: PermissionError there.
        """
        if not self._operator:
            raise PermissionError(
                "kernel.all_tenants() is for operator commands (@backplane.pass_kernel) only; "
                "a handler or task acts for its own tenant"
            )
        audited = f"operator command of {self.plugin}: {reason}" if reason.strip() else reason
        async with self._rails.database.maintenance(audited) as session, session.begin():
            view = Kernel(self._rails, self.plugin, db=session)
            view._all_tenants = True
            yield view

    async def tenant_ids(self) -> list[uuid.UUID]:
        """The tenants that have this plugin enabled, oldest first, inside :meth:`all_tenants`
        (then ``async with kernel.tenant(tenant_id) as k:`` works on one of them)."""
        from backplane.tasks.runtime import tenants_running

        if not self._all_tenants:
            raise PermissionError(
                "kernel.tenant_ids() lists every tenant: call it on the view of "
                "`async with kernel.all_tenants(reason) as k:`"
            )
        return await tenants_running(self.db, self.plugin)

    async def notify(
        self,
        hook: str,
        *,
        session: AsyncSession | None = None,
        tenant_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> list[tuple[str, Any]]:
        """Call lifecycle hook ``hook`` of every plugin, each with its own view of this kernel
        (``kernel=``) and ``kwargs``; the ``(plugin, result)`` pairs, in plugin order.

        With ``session`` and ``tenant_id``, the views are bound to that session acting as that
        tenant for the duration (the transaction that creates a tenant, say)."""
        if session is None or tenant_id is None:
            return await self._rails.plugins.acall(hook, kernel=self, **kwargs)
        bound = Kernel(self._rails, self.plugin, db=session, tenant_id=tenant_id)
        with acting_as(session, tenant_id):
            results = await self._rails.plugins.acall(hook, kernel=bound, **kwargs)
            await session.flush()  # what the hooks added is stamped as the tenant's
        return results


def internals(kernel: Kernel) -> Rails:
    """The rails behind a kernel view, for the kernel's own code only (a task of plugin
    ``core`` needing the full settings, the model store, ...); plugins never call this."""
    if kernel.plugin != KERNEL_PLUGIN:
        raise PermissionError("only the kernel's own code reaches the kernel's internals")
    return kernel._rails


def maintenance_session(kernel: Kernel, reason: str) -> AbstractAsyncContextManager[AsyncSession]:
    """The kernel's own tasks only: a session that sees every tenant (on PostgreSQL the
    maintenance connection's, committed when the block ends; on SQLite the task's own,
    committed with it). ``reason`` goes to the audit log."""
    if kernel._maintenance is None:
        raise PermissionError("only the kernel's own tasks may act across tenants")
    return kernel._maintenance(reason)
