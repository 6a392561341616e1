"""A plugin that implements every hook of the contract, as a third party would.

Imports of Litestar, SQLAlchemy and the plugin's own modules happen inside the hooks so that
loading the plugin (which every ``backplane`` command does) stays cheap.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any, Literal

import msgspec

from backplane import (
    AuthBackend,
    EventType,
    InferenceModel,
    InferenceRuntime,
    InvoiceItem,
    MailTransport,
    Meter,
    Permission,
    PluginInfo,
    StaticFiles,
    StorageBackend,
    Templates,
    hookimpl,
    pass_kernel,
)


class KitchenSinkSettings(msgspec.Struct, forbid_unknown_fields=True):
    greeting: str = "hello"
    max_notes: int = 100
    auth_token: str | None = None
    """The ``X-Kitchen-Sink-Token`` its auth backend accepts (None: the backend is inactive)."""
    auth_tenant: str | None = None
    """The slug of the tenant that token acts for (None: the backend is inactive)."""
    auth_role: Literal["owner", "admin", "member", "viewer"] = "viewer"

    def __post_init__(self) -> None:
        # A check across the struct, as a plugin may make one: its error names what was set.
        if self.max_notes < 1:
            raise ValueError(f"max_notes must be at least 1, not {self.max_notes}")


plugin = PluginInfo(
    name="kitchen_sink",
    requires_core=">=0.1,<0.2",
    settings=KitchenSinkSettings,
    description="Implements every hook; used by the kernel's tests.",
)

EVENTS: list[tuple[str, Any]] = []
"""Lifecycle hook calls, in order, for tests to inspect."""


@hookimpl
def register_routes(register: Any) -> None:
    from bp_sample_kitchen_sink.live import LiveController
    from bp_sample_kitchen_sink.routes import (
        DoubleController,
        FailureController,
        GreetingController,
        JobsController,
        NotesController,
    )
    from bp_sample_kitchen_sink.slow import SlowController

    register(NotesController, GreetingController, JobsController, DoubleController)
    register(FailureController, SlowController, LiveController)

    from bp_sample_kitchen_sink.mounted import RecordsController, signup_page, track

    register(RecordsController, prefix="/ks-records")
    register(signup_page, track, public=True)
    register(StaticFiles(path="/assets", directory=files(__package__) / "static"))
    register(Templates(directory=files(__package__) / "templates"))


@hookimpl
def register_migrations(register: Any) -> None:
    from bp_sample_kitchen_sink.models import Note

    register(files(__package__) / "migrations", branch="kitchen_sink", metadata=Note.metadata)


@hookimpl
def register_tasks(register: Any) -> None:
    from bp_sample_kitchen_sink import tasks

    register(
        tasks.count_notes,
        queue="kitchen_sink",
        max_retries=3,
        schedule="*/5 * * * *",
        per_tenant=True,
    )
    register(tasks.log_label, queue="kitchen_sink")
    register(tasks.write_note, queue="kitchen_sink")
    register(tasks.flaky, queue="kitchen_sink", max_retries=5)
    register(tasks.always_fails, queue="kitchen_sink", max_retries=2)
    register(tasks.sleepy, queue="kitchen_sink", max_retries=0, time_limit_ms=500)
    register(tasks.slow_log, queue="kitchen_sink", time_limit_ms=60_000)
    register(tasks.announce, queue="kitchen_sink")


@hookimpl
def register_inference_models(register: Any) -> None:
    register(
        InferenceModel(
            name="kitchen_sink_double",
            version="1",
            path=files(__package__) / "shipped_models" / "double.onnx",
        ),
        InferenceModel(
            name="kitchen_sink_echo",
            version="1",
            path=files(__package__) / "shipped_models" / "echo.json",
            runtime="kitchen_sink_echo",  # not ONNX: only the runtime below can load it
            description="Echoes x and label back (the kitchen_sink_echo runtime)",
            max_batch_size=4,
            max_queue_delay_us=20_000,
        ),
    )


@hookimpl
def register_meters(register: Any) -> None:
    register(Meter(code="kitchen_sink.notes", unit="note", aggregation="count"))


@hookimpl
def register_permissions(register: Any) -> Any:
    # Returning items instead of calling register() is part of the contract too.
    return [Permission(code="kitchen_sink.notes.write", roles=("owner", "admin", "member"))]


@hookimpl
def register_commands(cli: Any) -> None:
    import click

    @cli.command("kitchen-sink-hello")
    @click.argument("name")
    def hello(name: str) -> None:
        """Say hello (a plugin-provided command)."""
        click.echo(f"hello, {name}, from kitchen_sink")

    @cli.command("kitchen-sink-notes")
    @click.argument("tenant")
    @pass_kernel
    async def notes(kernel: Any, tenant: str) -> None:
        """Count TENANT's notes (a command that reaches the database through the kernel)."""
        EVENTS.append(("command", kernel))
        from sqlalchemy import func, select

        from bp_sample_kitchen_sink.models import Note

        async with kernel.tenant(tenant) as scoped:
            count = await scoped.db.scalar(select(func.count()).select_from(Note))
        click.echo(f"{kernel.plugin_settings.greeting}: {tenant} has {count} notes")

    @cli.command("kitchen-sink-census")
    @pass_kernel
    async def census(kernel: Any) -> None:
        """Count the notes of each tenant that has kitchen_sink on (an audited all-tenants
        session, then one tenant's session each)."""
        from sqlalchemy import func, select

        from bp_sample_kitchen_sink.models import Note

        async with kernel.all_tenants("census of the notes") as everyone:
            query = select(Note.tenant_id, func.count()).group_by(Note.tenant_id)
            counted = {tenant_id: n for tenant_id, n in await everyone.db.execute(query)}
            tenant_ids = await everyone.tenant_ids()
        for tenant_id in tenant_ids:
            async with kernel.tenant(tenant_id) as scoped:  # the same count, RLS-bound
                count = await scoped.db.scalar(select(func.count()).select_from(Note))
            assert count == counted.get(tenant_id, 0)
            click.echo(f"{kernel.plugin_settings.greeting}: {tenant_id} has {count} notes")


@hookimpl
def register_auth_backends(register: Any) -> None:
    from bp_sample_kitchen_sink.auth import authenticate

    register(AuthBackend(name="kitchen_sink_header", authenticate=authenticate))


@hookimpl
def register_inference_runtimes(register: Any) -> None:
    from bp_sample_kitchen_sink import runtime

    register(InferenceRuntime(name="kitchen_sink_echo", load=runtime.load))


@hookimpl
def register_storage_backends(register: Any) -> None:
    from bp_sample_kitchen_sink.storage import open_memory_store

    register(StorageBackend(name="kitchen_sink_memory", open=open_memory_store))


@hookimpl
def register_mail_transports(register: Any) -> None:
    from bp_sample_kitchen_sink.mailbox import open_memory_transport

    register(MailTransport(name="kitchen_sink_memory", open=open_memory_transport))


class KitchenSinkLedger:
    """A billing provider that books finalized invoices under its own reference."""

    async def invoice_finalized(self, session: Any, invoice: Any) -> str | None:
        return f"kitchen-sink/{invoice.number}"


@hookimpl
def register_billing_providers(register: Any) -> None:
    register("kitchen_sink_ledger", KitchenSinkLedger())


@hookimpl
def register_event_types(register: Any) -> None:
    register(EventType(name="kitchen_sink.note_created", description="A note was written"))


@hookimpl
def event_emitted(kernel: Any, event: Any) -> None:
    EVENTS.append(("event_emitted", (kernel, event)))


@hookimpl
async def seed_demo_data(kernel: Any) -> None:
    from bp_sample_kitchen_sink.models import Note

    kernel.db.add(Note(body="demo note"))


@hookimpl
async def startup(kernel: Any) -> None:
    EVENTS.append(("startup", kernel))


@hookimpl
def shutdown(kernel: Any) -> None:
    EVENTS.append(("shutdown", kernel))


@hookimpl
def tenant_created(kernel: Any, tenant: Any) -> None:
    EVENTS.append(("tenant_created", (kernel, tenant)))


@hookimpl
def plugin_enabled(kernel: Any, tenant: Any, name: str) -> None:
    EVENTS.append(("plugin_enabled", (kernel, tenant, name)))


HEALTH_PROBLEM: list[str] = []
"""What ``check_health`` reports (tests put a problem here)."""


@hookimpl
async def check_health(kernel: Any) -> str | None:
    return HEALTH_PROBLEM[-1] if HEALTH_PROBLEM else None


@hookimpl
async def export_tenant_data(kernel: Any, archive: Any, subject: Any) -> None:
    """Every note and task log row of the tenant; for one person, the notes naming their
    email (the sample's notes have no author), and a text file of them."""
    from bp_sample_kitchen_sink.models import Note, TaskLog

    if subject is None:
        await archive.add_table(Note)
        await archive.add_table(TaskLog)
        return
    if subject.email is None:
        return
    await archive.add_table(Note, Note.body.contains(subject.email))
    bodies = await kernel.db.scalars(select_notes_of(subject.email))
    await archive.add_file("notes.txt", [f"{body}\n".encode() for body in bodies])


def select_notes_of(email: str) -> Any:
    from sqlalchemy import select

    from bp_sample_kitchen_sink.models import Note

    return select(Note.body).where(Note.body.contains(email)).order_by(Note.id)


@hookimpl
async def erase_subject(kernel: Any, subject: Any) -> dict[str, int]:
    """Notes naming the person's email are pseudonymised: the email becomes ``[erased]``."""
    from sqlalchemy import func, update

    from bp_sample_kitchen_sink.models import Note

    if subject.email is None:
        return {}
    result = await kernel.db.execute(
        update(Note)
        .where(Note.body.contains(subject.email))
        .values(body=func.replace(Note.body, subject.email, "[erased]"))
        .execution_options(synchronize_session=False)
    )
    return {"kitchen_sink_notes": result.rowcount}


@hookimpl
def tenant_deleting(kernel: Any, tenant: Any, after_commit: Any) -> None:
    """Nothing of the plugin's names a tenant outside ``tenant_id``; it records the deletion,
    once committed (as a plugin deleting stored files would act)."""
    slug = tenant.slug
    EVENTS.append(("tenant_deleting", (kernel, tenant)))
    after_commit(lambda: EVENTS.append(("tenant_deleted", slug)))


@hookimpl
def register_trainers(register: Any) -> None:
    from backplane import Trainer
    from bp_sample_kitchen_sink import trainers

    register(
        Trainer(
            name="kitchen_sink.notes",
            model="note_score",
            fit=trainers.notes_training_data,
            metric="auc",
            description="Logistic regression over the labelled rows in the tenant's notes",
        ),
        Trainer(
            name="kitchen_sink.slow",
            model="slow_score",
            fit=trainers.slow_training_data,
            metric="accuracy",
        ),
        Trainer(
            name="kitchen_sink.hungry",
            model="hungry_score",
            fit=trainers.hungry_training_data,
            metric="accuracy",
        ),
    )


@hookimpl
def register_services(register: Any) -> None:
    """One function other plugins may call without importing this one: the tenant's notes."""
    from backplane import Service

    async def count_notes(kernel: Any, *, containing: str = "") -> dict[str, Any]:
        from sqlalchemy import func, select

        from bp_sample_kitchen_sink.models import Note

        query = select(func.count()).select_from(Note).where(Note.body.contains(containing))
        return {"plugin": kernel.plugin, "notes": await kernel.db.scalar(query)}

    register(
        Service(
            name="kitchen_sink.count_notes",
            call=count_notes,
            description="count_notes(containing='') -> {'plugin', 'notes'}: the tenant's notes",
        )
    )


@hookimpl
async def invoice_closing(
    kernel: Any, period_start: Any, period_end: Any, currency: str
) -> list[InvoiceItem]:
    """Bills 2 minor units a note written in the period, on a line of its own."""
    notes = sum(
        g.count for g in await kernel.usage.window("kitchen_sink.notes", period_start, period_end)
    )
    if not notes:
        return []
    return [
        InvoiceItem(
            description=f"kitchen sink notes ({currency})",
            amount=2 * notes,
            quantity=str(notes),
            meter="kitchen_sink.notes",
            details=[{"unit_price": "2"}],
        )
    ]


@hookimpl
def model_loading(kernel: Any, model: Any) -> None:
    """Models this plugin exposes (source ``kitchen_sink``) named ``refused_*`` never serve."""
    EVENTS.append(("model_loading", (kernel.tenant_id, model.name)))
    if model.source == "kitchen_sink" and model.name.startswith("refused_"):
        from backplane import ModelRefused

        raise ModelRefused("the kitchen sink withdrew its licence")
