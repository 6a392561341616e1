"""Write ``docs/reference.md``: the plugin contract, generated from the kernel's docstrings.

Every public name (``backplane.__all__``) with its signature and docstring (classes with their
public methods and properties), every hook with its docstring and an example, after the
hand-written ``docs/reference-intro.md`` (what plugin code receives, the compatibility
promise). ``tests/unit/test_api_reference.py`` fails when a public name or hook has no
docstring, a hook has no example here, or the committed file differs from what this script
writes, so the reference cannot drift from the code.

    python scripts/api_reference.py          # rewrite docs/reference.md
    python scripts/api_reference.py --check  # exit 1 if it would change
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "reference.md"

RECEIVED_ONLY = {"Kernel", "Principal", "TaskQueue", "UsageRecorder"}
"""Classes plugin code receives from the kernel and never constructs: no constructor shown."""

HOOK_EXAMPLES: dict[str, str] = {
    "invoice_closing": """
@hookimpl
async def invoice_closing(kernel, period_start, period_end, currency):
    used = await kernel.usage.window("helpdesk.escalations", period_start, period_end)
    count = sum(group.count for group in used)
    return [InvoiceItem(description=f"{count} escalations", amount=50 * count, quantity=str(count))]
""",
    "model_loading": """
@hookimpl
async def model_loading(kernel, model):
    if model.source != "resale":
        return  # another plugin's model, an upload or a shipped one
    licence = await kernel.db.scalar(select(Licence).where(Licence.model_name == model.name))
    if licence is None or licence.expired:
        raise ModelRefused("the licence for this model has expired")
""",
    "register_routes": """
@hookimpl
def register_routes(register):
    from helpdesk.routes import TicketsController

    register(TicketsController)  # mounted under /api/helpdesk/
""",
    "register_migrations": """
@hookimpl
def register_migrations(register):
    from importlib.resources import files

    from helpdesk.models import Base

    register(files("helpdesk") / "migrations", branch="helpdesk", metadata=Base.metadata)
""",
    "register_tasks": """
@hookimpl
def register_tasks(register):
    from helpdesk import tasks

    register(tasks.notify_assignee, queue="helpdesk", max_retries=3)
    register(tasks.close_stale, queue="helpdesk", schedule="0 * * * *")
""",
    "register_inference_models": """
@hookimpl
def register_inference_models(register):
    from importlib.resources import files

    path = files("helpdesk") / "models" / "priority.onnx"
    register(InferenceModel(name="ticket_priority", version="1", path=path))
""",
    "register_meters": """
@hookimpl
def register_meters(register):
    register(Meter(code="helpdesk.tickets", unit="ticket", aggregation="count"))
""",
    "register_permissions": """
@hookimpl
def register_permissions(register):
    register(
        Permission(code="helpdesk.tickets.read", roles=("owner", "admin", "member", "viewer")),
        Permission(code="helpdesk.tickets.write", roles=("owner", "admin", "member")),
    )
""",
    "register_commands": """
@hookimpl
def register_commands(cli):
    import click

    @cli.command("helpdesk-stats")
    @click.argument("tenant")
    @pass_kernel
    async def stats(kernel, tenant):
        async with kernel.tenant(tenant) as k:
            click.echo(await k.db.scalar(select(func.count()).select_from(Ticket)))
""",
    "register_auth_backends": """
@hookimpl
def register_auth_backends(register, plugin_settings):
    async def by_header(request, kernel):
        if request.headers.get("x-helpdesk-token") != plugin_settings.token:
            return None
        return await kernel.principal_for("acme", "viewer", subject="helpdesk-token")

    register(AuthBackend(name="helpdesk_header", authenticate=by_header))
""",
    "register_inference_runtimes": """
@hookimpl
def register_inference_runtimes(register):
    register(InferenceRuntime(name="rules", load=load_rules_model))
""",
    "register_storage_backends": """
@hookimpl
def register_storage_backends(register):
    register(StorageBackend(name="s3", open=lambda settings: S3Store(settings)))
""",
    "register_billing_providers": """
@hookimpl
def register_billing_providers(register):
    class Ledger:
        async def invoice_finalized(self, session, invoice):
            return f"books/{invoice.number}"  # the provider's reference

    register("books", Ledger())  # chosen with BACKPLANE_BILLING__PROVIDER=books
""",
    "register_event_types": """
@hookimpl
def register_event_types(register):
    register(EventType(name="helpdesk.ticket_closed", description="A ticket was closed"))
""",
    "event_emitted": """
@hookimpl
async def event_emitted(kernel, event):
    if event.type == "helpdesk.ticket_closed":
        await kernel.tasks.enqueue("helpdesk.send_survey", event.data["ticket_id"])
""",
    "seed_demo_data": """
@hookimpl
async def seed_demo_data(kernel):
    kernel.db.add(Ticket(title="Printer on fire"))
    return {"hint": "GET /api/helpdesk/tickets"}
""",
    "startup": """
@hookimpl
async def startup(kernel):
    log.info("helpdesk ready, auto-close after %s days", kernel.plugin_settings.auto_close_days)
""",
    "shutdown": """
@hookimpl
def shutdown(kernel):
    CLIENTS.close()
""",
    "check_health": """
@hookimpl
async def check_health(kernel):
    return None if MAIL_RELAY.reachable() else "the mail relay does not answer"
""",
    "tenant_created": """
@hookimpl
def tenant_created(kernel, tenant):
    kernel.db.add(Queue(name="General"))  # the tenant's row, in the creating transaction
""",
    "plugin_enabled": """
@hookimpl
def plugin_enabled(kernel, tenant, name):
    if name == "helpdesk":
        kernel.db.add(Queue(name="General"))
""",
    "export_tenant_data": """
@hookimpl
async def export_tenant_data(kernel, archive, subject):
    where = [] if subject is None else [Ticket.author_id == subject.user_id]
    await archive.add_table(Ticket, *where, redact=["reply_token"])  # helpdesk_tickets.jsonl
    for attachment in await kernel.db.scalars(select(Attachment)):
        await archive.add_file(f"attachments/{attachment.id}", files.chunks(attachment.key))
""",
    "erase_subject": """
@hookimpl
async def erase_subject(kernel, subject):
    drafts = await kernel.db.execute(delete(Draft).where(Draft.author_id == subject.user_id))
    await kernel.db.execute(  # the thread stays the tenant's, without the person's name
        update(Ticket).where(Ticket.email == subject.email).values(email=None, name="erased")
    )
    return {"helpdesk_drafts": drafts.rowcount}
""",
    "tenant_deleting": """
@hookimpl
async def tenant_deleting(kernel, tenant, after_commit):
    keys = list(await kernel.db.scalars(select(Attachment.key)))  # rows go after this hook
    after_commit(lambda: files.delete_many(keys))  # once the deletion has committed
""",
    "register_mail_transports": """
class ApiMail:
    async def deliver(self, envelope, committing):
        await committing()  # from here on the provider may have the message
        await post_to_provider(envelope.sender, envelope.recipients, envelope.data)


@hookimpl
def register_mail_transports(register):
    # chosen with BACKPLANE_MAIL__TRANSPORT=api; a refusal raises backplane.MailDeliveryError
    register(MailTransport(name="api", open=lambda settings, password: ApiMail()))
""",
    "register_trainers": """
async def lead_data(kernel):
    rows = (await kernel.db.execute(select(Lead.score_inputs, Lead.converted))).all()
    features = np.array([r.score_inputs for r in rows], dtype=np.float32)
    labels = np.array([r.converted for r in rows])
    return features, labels, make_pipeline(StandardScaler(), LogisticRegression())


@hookimpl
def register_trainers(register):
    # POST /api/models/lead_score/train: a new version, if the fit passes every check
    register(Trainer(name="marketing.leads", model="lead_score", fit=lead_data, metric="auc"))
""",
    "register_services": """
async def render(kernel, *, template, fields, name=None, subject_email=None):
    ...  # kernel: this plugin's view, bound to the caller's tenant and transaction
    return {"document_id": ..., "file_id": ...}


@hookimpl
def register_services(register):
    register(Service(name="documents.render", call=render, description="render a template"))


# elsewhere, in another plugin (which never imports this one):
render = await kernel.service("documents.render")  # None: not installed, or switched off
if render is not None:
    made = await render(template="Certificate of completion", fields={...})
""",
}

INTRO = ROOT / "docs" / "reference-intro.md"
"""Hand-written: what plugin code receives, and the compatibility promise."""


def _doc(obj: Any) -> str:
    return inspect.getdoc(obj) or ""


def _signature(name: str, obj: Any) -> str:
    try:
        return f"{name}{inspect.signature(obj, eval_str=False)}"
    except (TypeError, ValueError, NameError):  # msgspec resolves annotations eagerly
        fields = getattr(obj, "__struct_fields__", None)
        return f"{name}({', '.join(fields)})" if fields is not None else name


def _members(cls: type) -> list[tuple[str, Any]]:
    found = []
    for member, value in vars(cls).items():
        if member.startswith("_") or not (_doc(value) or isinstance(value, property)):
            continue
        if callable(value) or isinstance(value, property | classmethod | staticmethod):
            found.append((member, value))
    return found


def public_section(module: Any) -> list[str]:
    lines = ["## Public names (`from backplane import ...`)", ""]
    for name in sorted(n for n in module.__all__ if not n.startswith("__")):
        obj = getattr(module, name)
        kind = "class" if inspect.isclass(obj) else "function" if callable(obj) else "value"
        lines += [f"### `{name}` ({kind})", ""]
        if kind != "value" and name not in RECEIVED_ONLY:
            lines += ["```python", _signature(name, obj), "```", ""]
        lines += [_doc(obj), ""]
        if inspect.isclass(obj) and obj.__module__.startswith("backplane"):
            for member, value in _members(obj):
                target = value.fget if isinstance(value, property) else value
                what = "property" if isinstance(value, property) else "method"
                summary = " ".join(_doc(target).split("\n\n")[0].split())
                lines += [f"- `{name}.{member}` ({what}): {summary}"]
            lines.append("")
    return lines


def hooks_section(hookspecs: Any) -> list[str]:
    lines = ["## Hooks (`backplane.hookspecs`)", "", _doc(hookspecs), ""]
    for name in hook_names(hookspecs):
        function = getattr(hookspecs, name)
        lines += [f"### `{name}`", "", "```python", _signature(name, function), "```", ""]
        lines += [_doc(function), "", "Example:", "", "```python"]
        lines += [HOOK_EXAMPLES.get(name, "").strip(), "```", ""]
    return lines


def hook_names(hookspecs: Any) -> list[str]:
    return sorted(n for n, f in vars(hookspecs).items() if hasattr(f, "backplane_spec"))


def render() -> str:
    import backplane
    from backplane import hookspecs

    head = [
        "# Plugin API reference",
        "",
        "Generated from the kernel's docstrings by `python scripts/api_reference.py`; a test",
        'fails when it drifts from the code. Narrative docs: `README.md` ("Writing a plugin").',
    ]
    body = [*head, "", INTRO.read_text().rstrip(), ""]
    body += public_section(backplane) + hooks_section(hookspecs)
    return "\n".join(body).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file would change")
    text = render()
    if parser.parse_args().check:
        current = TARGET.read_text() if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET.relative_to(ROOT)} is out of date: run scripts/api_reference.py")
            return 1
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
