"""Reading Server-Sent Events over real HTTP, and serving an app on a real port in a thread.

The test client buffers a whole response before returning it, and an event stream never ends;
the live-events tests therefore talk to a uvicorn server (in a thread of the test process, or
``backplane serve``) with httpx, reading the stream as it comes.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

from tests.cli import free_port
from tests.waiting import wait_for


@dataclass
class Message:
    """One SSE message: its fields (``id``, ``event``, ``data``, ``retry``) and comments."""

    id: str | None = None
    event: str | None = None
    data: str | None = None
    retry: str | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def json(self) -> Any:
        assert self.data is not None, self
        return json.loads(self.data)


class EventStream:
    """An open ``GET /api/events``: :meth:`next` is the next message (comments included),
    :meth:`next_event` the next one carrying an event."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()

    def next(self) -> Message:
        message = Message()
        seen = False
        for line in self._lines:
            if line == "":
                if seen:
                    return message
                continue
            seen = True
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                message.comments.append(value)
            elif name == "data":
                message.data = value if message.data is None else f"{message.data}\n{value}"
            elif name in ("id", "event", "retry"):
                setattr(message, name, value)
        raise EOFError("the stream ended")

    def next_event(self) -> Message:
        while True:
            message = self.next()
            if message.event is not None:
                return message

    def events(self, count: int) -> list[Message]:
        return [self.next_event() for _ in range(count)]


@contextlib.contextmanager
def open_stream(
    base: str,
    headers: dict[str, str],
    *,
    last_event_id: str | None = None,
    timeout: float = 15.0,
) -> Iterator[EventStream]:
    """A stream, its first message (the position) already read into ``stream.start``."""
    sent = dict(headers)
    if last_event_id is not None:
        sent["Last-Event-ID"] = last_event_id
    with (
        httpx.Client(timeout=timeout) as client,
        client.stream("GET", f"{base}/api/events", headers=sent) as response,
    ):
        assert response.status_code == 200, response.read().decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = EventStream(response)
        stream.start = stream.next()  # type: ignore[attr-defined]
        yield stream


def publish(
    base: str, headers: dict[str, str], kind: str, data: dict[str, Any] | None = None, **more: Any
) -> dict[str, str]:
    """``kernel.live.publish`` in kitchen_sink's handler (``via_task``: from its task)."""
    response = httpx.post(
        f"{base}/api/kitchen_sink/live",
        json={"kind": kind, "data": data or {}, **more},
        headers=headers,
        timeout=10,
    )
    assert response.status_code == 201, response.text
    result: dict[str, str] = response.json()
    return result


@contextlib.contextmanager
def serving_in_thread(app: Any) -> Iterator[str]:
    """``app`` on a free port of 127.0.0.1, served by uvicorn in a thread; its base URL."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=free_port(), log_level="warning", timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, message="uvicorn to start", timeout=30, interval=0.05)
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(30)
