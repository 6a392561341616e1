"""The documents plugin's hooks: everything the kernel needs to know, nothing heavy imported
eagerly (the engines load in the render workers, the routes when the app is built).

Other parts of the plugin (bulk jobs, processing) register their hooks by appending clearly
separated sections at the end of this module.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from backplane import EventType, Meter, Permission, PluginInfo, hookimpl
from backplane_documents.settings import DocumentsSettings

READ = "documents.read"
WRITE = "documents.write"
ADMIN = "documents.admin"
GENERATED_METER = "documents.generated"
"""One per generated document; a hard quota on it stops generation with 429."""
PAGES_METER = "documents.pages"
"""Pages of generated documents (PDF pages; HTML 1; DOCX 1 + page breaks)."""

plugin = PluginInfo(
    name="documents",
    requires_core=">=0.1,<0.2",
    settings=DocumentsSettings,
    description="Per-tenant templates rendered to PDF (typst), HTML and DOCX, in a sandbox",
)


@hookimpl
def register_routes(register: Any) -> None:
    from backplane_documents.routes_documents import DocumentsController
    from backplane_documents.routes_templates import TemplatesController

    register(TemplatesController, DocumentsController)


@hookimpl
def register_migrations(register: Any) -> None:
    import backplane_documents.jobs_models
    import backplane_documents.processing.models  # noqa: F401 - extraction tables, same metadata
    from backplane_documents.models import DocumentTemplate

    register(
        files(__package__) / "migrations", branch="documents", metadata=DocumentTemplate.metadata
    )


@hookimpl
def register_permissions(register: Any) -> None:
    register(
        Permission(code=READ, roles=("owner", "admin", "member", "viewer")),
        Permission(code=WRITE, roles=("owner", "admin", "member")),
        Permission(code=ADMIN, roles=("owner", "admin")),
    )


@hookimpl
def register_meters(register: Any) -> None:
    register(
        Meter(
            code=GENERATED_METER,
            unit="document",
            aggregation="count",
            description="Documents generated from templates",
        ),
        Meter(
            code=PAGES_METER,
            unit="page",
            aggregation="sum",
            description="Pages of generated documents",
        ),
    )


@hookimpl
def register_event_types(register: Any) -> None:
    register(
        EventType(name="documents.document_generated", description="A document was generated"),
    )


@hookimpl
async def export_tenant_data(kernel: Any, archive: Any, subject: Any) -> None:
    from backplane_documents.privacy import export

    await export(kernel, archive, subject)


@hookimpl
async def erase_subject(kernel: Any, subject: Any) -> dict[str, int]:
    from backplane_documents.privacy import erase

    return await erase(kernel, subject)


@hookimpl
async def seed_demo_data(kernel: Any) -> dict[str, str]:
    from backplane_documents.demo import seed

    return await seed(kernel)


@hookimpl
def startup(kernel: Any) -> None:
    """With ``prestart_workers``, start the render workers of this process in the background:
    the first renders then find them ready (their start-up would be in their latency)."""
    import threading

    from backplane_documents.sandbox import pool_for

    if not kernel.plugin_settings.prestart_workers:
        return
    limits = kernel.plugin_settings.limits
    pool = pool_for(limits.workers, limits.memory_bytes)
    threading.Thread(target=pool.warm, name="documents-warm", daemon=True).start()


@hookimpl
def shutdown() -> None:
    from backplane_documents.sandbox import close_pools

    close_pools()


# --- bulk jobs (wt-docjobs): CSV / JSON lines to documents as background tasks ---------------
# Hooks of this section are named apart and bound to their hook by ``specname``, so that this
# part of the plugin is merged by appending, never by editing the hooks above.

JOB_FINISHED_EVENT = "documents.job_finished"
"""A bulk job ended and its ZIP is stored (live: it reaches the tenant's event stream too)."""


@hookimpl(specname="register_routes")
def register_job_routes(register: Any) -> None:
    from backplane_documents.jobs_routes import JobsController, TemplateJobsController

    register(TemplateJobsController, JobsController)


@hookimpl(specname="register_tasks")
def register_job_tasks(register: Any) -> None:
    from backplane_documents import jobs_tasks

    # A chunk renders up to documents.jobs.chunk_rows documents in one transaction.
    register(jobs_tasks.run_job_chunk, queue="documents", max_retries=10, time_limit_ms=1_800_000)
    register(
        jobs_tasks.assemble_job_zip, queue="documents", max_retries=10, time_limit_ms=3_600_000
    )


@hookimpl(specname="register_event_types")
def register_job_event_types(register: Any) -> None:
    register(
        EventType(
            name=JOB_FINISHED_EVENT,
            description="A bulk generation job ended (succeeded, failed, out of quota or "
            "cancelled); its ZIP holds the documents it produced",
            live=True,
        )
    )


@hookimpl(specname="register_commands")
def register_job_commands(cli: Any) -> None:
    from backplane_documents.cli import documents_group

    cli.add_command(documents_group)


@hookimpl(specname="export_tenant_data")
async def export_job_data(kernel: Any, archive: Any, subject: Any) -> None:
    from backplane_documents.jobs_privacy import export_jobs

    await export_jobs(kernel, archive, subject)


@hookimpl(specname="erase_subject")
async def erase_job_subject(kernel: Any, subject: Any) -> dict[str, int]:
    from backplane_documents.jobs_privacy import erase_jobs

    return await erase_jobs(kernel, subject)


# -- processing (wt-docproc): extraction of text and fields, bulk extraction jobs ----------
# Separate implementations of the same hooks (pluggy's ``specname``), so each part of the
# plugin registers its own routes, tasks and tables.

PAGES_PROCESSED_METER = "documents.pages_processed"
"""One per page extracted (text layer, OCR or DOCX); a hard quota on it answers 429."""


@hookimpl(specname="register_routes")
def register_processing_routes(register: Any) -> None:
    from backplane_documents.extraction_routes import (
        ExtractionJobsController,
        ExtractionsController,
    )

    register(ExtractionsController, ExtractionJobsController)


@hookimpl(specname="register_tasks")
def register_processing_tasks(register: Any) -> None:
    from backplane_documents.processing.jobs import extract_chunk

    # a chunk of text-layer pages takes seconds; one of scans is bounded by the OCR limits
    register(extract_chunk, queue="documents", max_retries=5, time_limit_ms=30 * 60_000)


@hookimpl(specname="register_meters")
def register_processing_meters(register: Any) -> None:
    register(
        Meter(
            code=PAGES_PROCESSED_METER,
            unit="page",
            aggregation="sum",
            description="Pages of documents whose text was extracted",
        )
    )


@hookimpl(specname="export_tenant_data")
async def export_processing_data(kernel: Any, archive: Any, subject: Any) -> None:
    from backplane_documents.processing.privacy import export

    await export(kernel, archive, subject)


@hookimpl(specname="erase_subject")
async def erase_processing_subject(kernel: Any, subject: Any) -> dict[str, int]:
    from backplane_documents.processing.privacy import erase

    return await erase(kernel, subject)


# -- classification (wt-docclass): a tenant-trained document-type model -------------------


@hookimpl(specname="register_trainers")
def register_documents_trainers(register: Any) -> None:
    from backplane_documents.trainers import documents_trainers

    register(*documents_trainers())


# -- services for other plugins (kernel.service("documents.render")) ---------------------------


@hookimpl(specname="register_services")
def register_documents_services(register: Any) -> None:
    from backplane_documents.services import services

    register(*services())
