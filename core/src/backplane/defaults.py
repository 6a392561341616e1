"""The kernel's own contributions, registered through the same hooks a plugin would use.

Because the defaults are an ordinary hook implementation, a plugin can add to or replace any of
them, and the contract is exercised by the kernel itself on every start.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from backplane._contract import Permission, Role
from backplane.hookspecs import hookimpl


@hookimpl
def register_migrations(register: Any) -> None:
    import backplane.billing.models
    import backplane.billing.plan_models
    import backplane.billing.webhooks.models
    import backplane.db.models
    import backplane.identity.models
    import backplane.inference.models
    import backplane.tasks.models  # noqa: F401
    from backplane.db.base import Base

    register(files("backplane") / "migrations" / "versions", branch="core", metadata=Base.metadata)


@hookimpl
def register_routes(register: Any) -> None:
    from backplane.billing.routes import ROUTES as BILLING_ROUTES
    from backplane.billing.webhooks.routes import ROUTES as WEBHOOK_ROUTES
    from backplane.identity.routes import ROUTES

    register(*ROUTES, *BILLING_ROUTES, *WEBHOOK_ROUTES)


@hookimpl
def register_meters(register: Any) -> None:
    from backplane._contract import Meter

    register(
        Meter(
            code="api.requests",
            unit="request",
            aggregation="count",
            description="Authenticated API requests (recorded by later issues' middleware)",
        ),
        Meter(
            code="inference.requests",
            unit="request",
            aggregation="count",
            group_by=("model",),
            description="V2 inference requests",
        ),
        Meter(
            code="inference.rows",
            unit="row",
            aggregation="sum",
            group_by=("model",),
            description="Rows (batch entries) sent to models",
        ),
    )


@hookimpl
def register_inference_models(register: Any) -> None:
    """The example models built from scikit-learn (``scripts/build_example_models.py``)."""
    from backplane._contract import InferenceModel
    from backplane.models import example_models, resource

    register(
        *[
            InferenceModel(
                name=m.name,
                version=m.version,
                path=resource(m.file),
                description=m.description,
                # every example takes a batch of rows (dynamic first dimension)
                max_batch_size=32,
            )
            for m in example_models()
        ]
    )


@hookimpl
def register_permissions(register: Any) -> None:
    everyone: tuple[Role, ...] = ("owner", "admin", "member", "viewer")
    register(
        Permission(
            code="tenant.read",
            roles=everyone,
            description="See the tenant, its members and plugins",
        ),
        Permission(
            code="tenant.members.manage",
            roles=("owner", "admin"),
            description="Add, change and remove members (never above one's own role)",
        ),
        Permission(
            code="tenant.plugins.manage",
            roles=("owner", "admin"),
            description="Switch plugins on and off for the tenant",
        ),
        Permission(
            code="apikeys.manage",
            roles=("owner", "admin"),
            description="Create, list and revoke the tenant's API keys",
        ),
        Permission(
            code="models.read",
            roles=everyone,
            description="See the models the tenant can call, their metadata and statistics",
        ),
        Permission(
            code="models.infer",
            roles=("owner", "admin", "member"),
            description="Run inference on the tenant's models (metered)",
        ),
        Permission(
            code="models.manage",
            roles=("owner", "admin"),
            description="Upload and delete the tenant's own models",
        ),
        Permission(
            code="billing.read",
            roles=("owner", "admin"),
            description="See the tenant's plan, usage and invoices",
        ),
        Permission(
            code="billing.manage",
            roles=("owner",),
            description="Change the tenant's plan (to self-service plans)",
        ),
        Permission(
            code="billing.events.write",
            roles=("owner", "admin"),
            description="Send usage events (POST /api/billing/events)",
        ),
        Permission(
            code="billing.webhooks.manage",
            roles=("owner", "admin"),
            description="Register billing webhook endpoints, see their secrets once and their "
            "delivery history",
        ),
    )


@hookimpl
def register_tasks(register: Any) -> None:
    from backplane.billing.webhooks.delivery import deliver_webhook, dispatch_webhooks
    from backplane.identity.maintenance import prune_expired_credentials

    register(prune_expired_credentials, queue="backplane", schedule="17 * * * *")
    from backplane.billing.jobs import close_ended_period

    # Hourly: acts once per period, billing.close_grace_s after it ended; many tenants take time.
    register(close_ended_period, queue="backplane", schedule="23 * * * *", time_limit_ms=3_600_000)
    # Retries are the delivery's own (webhooks settings), so the task itself is not retried;
    # its time limit covers the HTTP attempt (webhooks.timeout_s) with room to record it.
    register(deliver_webhook, queue="backplane", max_retries=0, time_limit_ms=120_000)
    register(dispatch_webhooks, queue="backplane", schedule="* * * * *")
    from backplane.retention import prune_history

    # Hourly: finished tasks, past schedule periods and finished webhook deliveries, once old.
    register(prune_history, queue="backplane", schedule="41 * * * *", time_limit_ms=600_000)


@hookimpl
def register_billing_providers(register: Any) -> None:
    """The kernel's own ledger (``billing.provider = "ledger"``, the default)."""
    from backplane.billing.hooks import ledger

    ledger(register)


@hookimpl
async def tenant_created(tenant: Any) -> None:
    """New tenants start on the default plan (``billing.default_plan``)."""
    from backplane.billing.hooks import on_tenant_created

    await on_tenant_created(tenant)
