"""Live events from a handler and from a task (``kernel.live``), for the kernel's tests."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.params import JSONBody


class AnnounceIn(msgspec.Struct, forbid_unknown_fields=True):
    kind: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    user_id: uuid.UUID | None = None
    """Only this user's streams (None: every stream of the tenant)."""
    via_task: bool = False
    """Publish from a task (a worker process, with a real broker) instead of the handler."""


class LiveController(Controller):
    path = "/live"

    @post("/")
    async def announce(
        self, data: JSONBody[AnnounceIn], kernel: NamedDependency[Any]
    ) -> dict[str, str]:
        from bp_sample_kitchen_sink.tasks import announce

        user = str(data.user_id) if data.user_id else None
        if data.via_task:
            message_id = await kernel.tasks.enqueue(announce, data.kind, data.data, user)
            return {"message_id": str(message_id)}
        event_id = await kernel.live.publish(
            f"kitchen_sink.{data.kind}", data.data, user_id=data.user_id
        )
        return {"id": event_id}
