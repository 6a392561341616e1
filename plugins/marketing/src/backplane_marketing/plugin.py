"""The marketing plugin's hooks: everything the kernel needs to know, nothing heavy imported
eagerly (routes, tasks and parsers load when the app or the worker is built)."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from backplane import EventType, Meter, Permission, PluginInfo, Task, hookimpl
from backplane_marketing.settings import MarketingSettings
from backplane_marketing.wakeups import SAFETY_TICK

READ = "marketing.read"
WRITE = "marketing.write"
EXPORT = "marketing.export"
"""Exports hand out every contact's address: owners and admins only, each one audited."""
ADMIN = "marketing.admin"
"""Attribute definitions and merges of contacts."""
FORMS = "marketing.forms"
"""Creating, changing and deleting signup forms (they collect consent): owners and admins."""
ROWS_IMPORTED_METER = "marketing.rows_imported"
"""Rows an import upserted; a hard quota on it stops an import with the reason."""
LIVE_IMPORT_PROGRESS = "marketing.import.progress"
"""The live event (``GET /api/events``) an import publishes after each chunk."""

plugin = PluginInfo(
    name="marketing",
    requires_core=">=0.1,<0.2",
    settings=MarketingSettings,
    description=(
        "Contacts, imports, segments compiled to SQL, campaigns and their tracking, automations"
    ),
)


@hookimpl
def register_routes(register: Any) -> None:
    from backplane_marketing.automations.routes import (
        AutomationsController,
        AutomationUnsubscribeController,
    )
    from backplane_marketing.campaigns.routes_campaigns import CampaignsController
    from backplane_marketing.campaigns.routes_templates import TemplatesController
    from backplane_marketing.routes_contacts import ContactsController
    from backplane_marketing.routes_imports import ExportsController, ImportsController
    from backplane_marketing.routes_meta import AttributesController, ListsController
    from backplane_marketing.routes_segments import SegmentsController
    from backplane_marketing.scoring.routes import ScoringController
    from backplane_marketing.tracking.routes import TrackingController, WebhookSecretController

    register(
        ContactsController,
        AttributesController,
        ListsController,
        ImportsController,
        ExportsController,
        SegmentsController,
        ScoringController,
        TemplatesController,
        CampaignsController,
        WebhookSecretController,
        AutomationsController,
    )
    register(TrackingController, AutomationUnsubscribeController, public=True)
    from backplane_marketing.abtests.routes import AbTestController
    from backplane_marketing.forms.routes import FormsController, PublicFormsController

    register(FormsController, AbTestController)
    register(PublicFormsController, public=True)


@hookimpl
def register_tasks(register: Any) -> None:
    from backplane_marketing.campaigns.send import campaign_send, campaign_tick
    from backplane_marketing.import_job import import_chunk

    register(import_chunk, queue="marketing", max_retries=10, time_limit_ms=600_000)
    register(campaign_send, queue="marketing", max_retries=20, time_limit_ms=600_000)
    register(Task(actor=campaign_tick, queue="marketing", schedule=SAFETY_TICK, per_tenant=True))
    from backplane_marketing.scoring.service import rescore

    register(rescore, queue="marketing", max_retries=3)
    from backplane_marketing.automations.engine import automation_advance, automation_tick

    register(automation_advance, queue="marketing", max_retries=20, time_limit_ms=600_000)
    register(Task(actor=automation_tick, queue="marketing", schedule=SAFETY_TICK, per_tenant=True))
    from backplane_marketing.abtests.service import ab_send, ab_tick

    register(ab_send, queue="marketing", max_retries=20, time_limit_ms=600_000)
    register(Task(actor=ab_tick, queue="marketing", schedule=SAFETY_TICK, per_tenant=True))
    from backplane_marketing.forms.service import purge_expired_sign_ups

    purge = Task(
        actor=purge_expired_sign_ups, queue="marketing", schedule="41 3 * * *", per_tenant=True
    )
    register(purge)


@hookimpl(specname="register_trainers")
def register_marketing_trainers(register: Any) -> None:
    from backplane_marketing.scoring.trainer import marketing_trainers

    register(*marketing_trainers())


@hookimpl
def register_migrations(register: Any) -> None:
    from backplane_marketing.abtests import models as ab_models  # noqa: F401  (its tables)
    from backplane_marketing.automations import models as automation_models
    from backplane_marketing.campaigns import models as campaign_models
    from backplane_marketing.forms import models as form_models  # noqa: F401  (its tables)
    from backplane_marketing.models import Contact
    from backplane_marketing.scoring import models  # noqa: F401  (its tables in the metadata)

    assert campaign_models.Campaign.metadata is Contact.metadata  # its tables are registered
    assert automation_models.Automation.metadata is Contact.metadata

    register(files(__package__) / "migrations", branch="marketing", metadata=Contact.metadata)


@hookimpl
def register_permissions(register: Any) -> None:
    register(
        Permission(code=READ, roles=("owner", "admin", "member", "viewer")),
        Permission(code=WRITE, roles=("owner", "admin", "member")),
        Permission(code=EXPORT, roles=("owner", "admin")),
        Permission(code=ADMIN, roles=("owner", "admin")),
        Permission(code=FORMS, roles=("owner", "admin")),
    )


@hookimpl
def register_meters(register: Any) -> None:
    register(
        Meter(
            code=ROWS_IMPORTED_METER,
            unit="row",
            aggregation="sum",
            description="Contact rows upserted by imports",
        ),
    )


@hookimpl
def register_event_types(register: Any) -> None:
    register(
        EventType(name="marketing.import_finished", description="A contact import finished"),
        EventType(name="marketing.contacts_merged", description="Duplicate contacts were merged"),
        EventType(
            name="marketing.form_submitted",
            description="A signup form's submission was confirmed (double opt-in): the contact",
        ),
        EventType(
            name="marketing.ab_test_decided",
            description="An A/B test picked its winner, which now goes to the rest",
        ),
    )


@hookimpl
async def export_tenant_data(kernel: Any, archive: Any, subject: Any) -> None:
    from backplane_marketing.privacy import export

    await export(kernel, archive, subject)


@hookimpl
async def erase_subject(kernel: Any, subject: Any) -> dict[str, int]:
    from backplane_marketing.privacy import erase

    return await erase(kernel, subject)


@hookimpl
async def seed_demo_data(kernel: Any) -> dict[str, str]:
    from backplane_marketing.demo import seed

    return await seed(kernel)
