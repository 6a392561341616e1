"""HTTP routes, mounted by the kernel under ``/api/kitchen_sink``."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.exceptions import ClientException
from litestar.params import JSONBody
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backplane import requires
from bp_sample_kitchen_sink.models import Note


class NoteIn(msgspec.Struct, forbid_unknown_fields=True):
    body: Annotated[str, msgspec.Meta(max_length=500)]
    """As long as the column (longer: 400, not a database error)."""


class NoteOut(msgspec.Struct):
    id: int
    body: str


class NotesController(Controller):
    path = "/notes"

    @get("/")
    async def list_notes(self, db: NamedDependency[AsyncSession]) -> list[NoteOut]:
        rows = (await db.scalars(select(Note).order_by(Note.id))).all()
        return [NoteOut(id=n.id, body=n.body) for n in rows]

    @post("/", guards=[requires("kitchen_sink.notes.write")])
    async def create_note(
        self,
        data: JSONBody[NoteIn],
        db: NamedDependency[AsyncSession],
        plugin_settings: NamedDependency[Any],
        usage: NamedDependency[Any],
        kernel: NamedDependency[Any],
    ) -> NoteOut:
        count = await db.scalar(select(func.count()).select_from(Note))
        if (count or 0) >= plugin_settings.max_notes:
            raise ClientException(f"at most {plugin_settings.max_notes} notes")
        await usage.record("kitchen_sink.notes")  # 429 when the tenant's hard limit is spent
        note = Note(body=data.body)
        db.add(note)
        await db.flush()
        await kernel.events.emit("kitchen_sink.note_created", {"id": note.id, "body": note.body})
        return NoteOut(id=note.id, body=note.body)


class GreetingController(Controller):
    path = "/greeting"

    @get("/", sync_to_thread=False)
    def greeting(self, plugin_settings: NamedDependency[Any]) -> dict[str, str]:
        return {"greeting": plugin_settings.greeting}


class JobIn(msgspec.Struct, forbid_unknown_fields=True):
    label: str
    fail_after_enqueue: bool = False
    seconds: float = 0.0
    """If positive, the task sleeps this long before writing (to kill a worker mid-task)."""
    note: bool = False
    """Run ``write_note`` (a note written, metered and announced by a task) instead."""


class JobsController(Controller):
    """Enqueue a task in the request's transaction (the transactional outbox)."""

    path = "/jobs"

    @post("/")
    async def enqueue(self, data: JSONBody[JobIn], tasks: NamedDependency[Any]) -> dict[str, str]:
        from bp_sample_kitchen_sink.tasks import log_label, slow_log, write_note

        if data.note:
            message_id = await tasks.enqueue(write_note, data.label)
        elif data.seconds > 0:
            message_id = await tasks.enqueue(slow_log, data.label, data.seconds)
        else:
            message_id = await tasks.enqueue(log_label, data.label)
        if data.fail_after_enqueue:
            raise ClientException("failing after enqueue: the task must not run")
        return {"message_id": str(message_id)}


class DoubleIn(msgspec.Struct, forbid_unknown_fields=True):
    values: Annotated[list[float], msgspec.Meta(max_length=1000)]


class DoubleController(Controller):
    """Plugin code calling a model through ``kernel.models`` (metered like V2)."""

    path = "/double"

    @post("/")
    async def double(self, data: JSONBody[DoubleIn], kernel: NamedDependency[Any]) -> list[float]:
        from bp_sample_kitchen_sink.plugin import EVENTS

        EVENTS.append(("handler", kernel))
        rows = [[value] for value in data.values]
        outputs = await kernel.models.infer("kitchen_sink_double", {"x": rows})
        return [float(row[0]) for row in outputs["y"]]


class FailureController(Controller):
    """A route that fails on purpose, for the kernel's tests of unhandled errors (500, logged
    with a request id). Left out of the OpenAPI schema: the schema-driven walks and fuzzers
    expect no operation to answer 5xx."""

    path = "/failure"
    include_in_schema = False

    @get("/", sync_to_thread=False)
    def fail(self) -> None:
        raise RuntimeError("kitchen_sink fails on purpose")
