"""``backplane documents``: the plugin's commands (``generate``: a bulk job from a local file).

``generate`` runs a job the way the workers do, chunk after chunk, each in its own committed
transaction of the tenant (its outcomes, usage and stored documents), in this process and
with a progress bar; then it zips the documents, as the job's last task does, and unpacks the
ZIP into ``--out``. The job is a job like any other (``GET /api/documents/jobs/{id}``, metered
on the tenant's usage), started by the operator; no worker needs to be running.
"""

from __future__ import annotations

import sys
import tempfile
import uuid
import zipfile
from pathlib import Path
from typing import Any

import click

from backplane import Kernel, QuotaExceeded, pass_kernel


@click.group("documents")
def documents_group() -> None:
    """Document templates: bulk generation from CSV or JSON lines."""


@documents_group.command("generate")
@click.argument("template")
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write the documents and manifest.jsonl into (created).",
)
@click.option("--tenant", required=True, help="The tenant's slug or id.")
@click.option(
    "--format",
    "data_format",
    type=click.Choice(["csv", "jsonl"]),
    help="The data's format (default: from the file name).",
)
@click.option("--encoding", default="utf-8-sig", show_default=True, help="The data's encoding.")
@click.option("--delimiter", help="CSV separator (default: sniffed).")
@click.option(
    "--max-error-rate",
    type=click.FloatRange(0, 1),
    help="Fail the job once more than this share of its rows failed.",
)
@click.option("--name-field", help="The field whose value names each document.")
@click.option(
    "--version",
    "version_number",
    type=click.IntRange(min=1),
    help="The template version (default: the current one).",
)
@pass_kernel
async def generate(
    kernel: Kernel,
    template: str,
    data: Path,
    out: Path,
    tenant: str,
    data_format: str | None,
    encoding: str,
    delimiter: str | None,
    max_error_rate: float | None,
    name_field: str | None,
    version_number: int | None,
) -> None:
    """Render TEMPLATE (its name or id) once per row of DATA (CSV or JSON lines) into --out."""
    from backplane_documents.jobs_assemble import assemble
    from backplane_documents.jobs_create import JobOptions, create_job
    from backplane_documents.jobs_input import InputError, check_encoding, detect_format
    from backplane_documents.jobs_run import run_chunk
    from backplane_documents.templates import TemplateRequestError, find_version

    settings = kernel.plugin_settings
    try:
        options = JobOptions(
            format=detect_format(data_format, None, data.name),
            encoding=check_encoding(encoding),
            delimiter=delimiter,
            max_error_rate=max_error_rate,
            name_field=name_field,
        )
        async with kernel.tenant(tenant) as scoped:
            found = await _template(scoped, template)
            version = await find_version(scoped.db, found, version_number)
            with data.open("rb") as upload:
                job = await create_job(
                    scoped,
                    found,
                    version,
                    upload,
                    options,
                    settings.jobs,
                    user_id=None,
                    source="cli",
                )
            job_id, total, chunks = job.id, job.total, job.chunks_total
    except (InputError, TemplateRequestError, QuotaExceeded) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"job {job_id}: {total} rows of {data.name}", err=True)
    bar: Any = click.progressbar(length=total, label=f"generating {template}", file=sys.stderr)
    with bar:
        for chunk in range(chunks):
            async with kernel.tenant(tenant) as scoped:
                result = await run_chunk(scoped, job_id, chunk, settings.limits, inline=True)
            if result is None:
                continue
            bar.update(result.done + result.failed)
            if result.status not in ("running", "assembling"):
                break
    async with kernel.tenant(tenant) as scoped:
        finished = await assemble(scoped, job_id)
        if finished is None or finished.zip_file_id is None:
            raise click.ClickException(f"job {job_id} has no ZIP")
        opened = await scoped.files.open(finished.zip_file_id)
        status, done, failed, error = (
            finished.status,
            finished.done,
            finished.failed,
            finished.error,
        )
        with tempfile.TemporaryFile() as archive:
            async for part in opened.read():
                archive.write(part)
            out.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(archive) as unpacked:
                unpacked.extractall(out)
    click.echo(f"{done} documents in {out}, {failed} rows failed (see {out / 'manifest.jsonl'})")
    if status != "succeeded":
        raise click.ClickException(f"job {job_id} {status}: {error}")


async def _template(kernel: Kernel, wanted: str) -> Any:
    """The tenant's template by id or name (TemplateRequestError 404 otherwise)."""
    from sqlalchemy import select

    from backplane_documents.models import DocumentTemplate
    from backplane_documents.templates import TemplateRequestError, find_template

    try:
        template_id = uuid.UUID(wanted)
    except ValueError:
        template_id = None
    if template_id is not None:
        return await find_template(kernel.db, template_id)
    found = await kernel.db.scalar(select(DocumentTemplate).where(DocumentTemplate.name == wanted))
    if found is None:
        raise TemplateRequestError(f"no template named {wanted!r}", status=404)
    return found
