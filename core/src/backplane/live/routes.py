"""``GET /api/events``: the caller's tenant's and the caller's own live events, as
Server-Sent Events (the ``text/event-stream`` format of the HTML standard).

The first message carries only an ``id`` (the client's position; EventSource keeps it) and the
``retry`` delay. Each event is ``id: <position>``, ``event: <type>``, ``data: <LiveEvent JSON>``;
``live.gap`` says events were missed (the position given fell out of the kept window: reload
what the page shows). A comment line keeps idle streams open. A stream ends on its own after
``live.max_stream_s`` or when its access token expires, and when the server stops; clients
reconnect with ``Last-Event-ID`` (or ``?last_event_id=``) and miss nothing that was kept.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, get
from litestar.exceptions import ClientException, HTTPException
from litestar.params import HeaderParameter, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.status_codes import HTTP_429_TOO_MANY_REQUESTS, HTTP_503_SERVICE_UNAVAILABLE

from backplane.identity.auth import Principal
from backplane.live._backend import START, Listener, LiveUnavailableError, parse_id
from backplane.live.hub import (
    Admission,
    Cursor,
    LiveEvent,
    LiveHub,
    StreamLimitError,
    tenant_channel,
    user_channel,
)
from backplane.state import rails_of

GAP = "live.gap"


class _Typed(msgspec.Struct):
    type: str


_type_of = msgspec.json.Decoder(_Typed)


@get(
    "/events",
    summary="Live events of your tenant and of you (Server-Sent Events)",
    description=__doc__,
    tags=["live"],
    media_type="text/event-stream",
)
async def live_events(
    request: Request[Principal, Any, Any],
    last_event_id_header: Annotated[
        str | None, HeaderParameter(name="Last-Event-ID", required=False, max_length=80)
    ] = None,
    last_event_id: Annotated[
        str | None, QueryParameter(name="last_event_id", required=False, max_length=80)
    ] = None,
) -> ServerSentEvent:
    principal = request.user
    given = last_event_id_header or last_event_id
    try:
        cursor = Cursor.parse(given) if given else None
    except ValueError as exc:
        raise ClientException(str(exc)) from None
    hub = rails_of(request).live
    subject = (
        principal.user_id.hex if principal.user_id else f"{principal.via}:{principal.token_id}"
    )
    try:
        admission = hub.admit(principal.tenant_id, subject)
    except StreamLimitError as exc:
        raise HTTPException(status_code=HTTP_429_TOO_MANY_REQUESTS, detail=str(exc)) from None
    if cursor is None:  # from now on: the streams' newest ids, taken before listening
        try:
            cursor = await _heads(hub, principal)
        except LiveUnavailableError as exc:
            admission.release()
            raise HTTPException(status_code=HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from None
    deadline = time.monotonic() + hub.settings.max_stream_s
    if principal.token_expires_at is not None:
        deadline = min(deadline, time.monotonic() + principal.token_expires_at - time.time())
    stream = _stream(hub, admission, principal, cursor, deadline)
    # A stream the server never starts (the client left first) still gives its place back.
    weakref.finalize(stream, admission.release)
    return ServerSentEvent(stream, headers={"Cache-Control": "no-store"})


async def _stream(
    hub: LiveHub,
    admission: Admission,
    principal: Principal,
    cursor: Cursor,
    deadline: float,
) -> AsyncIterator[ServerSentEventMessage]:
    backend, listener = hub.backend, admission.listener
    channels = {"tenant": tenant_channel(principal.tenant_id)}
    if principal.user_id is not None:
        channels["user"] = user_channel(principal.tenant_id, principal.user_id)
    scope_of = {channel: scope for scope, channel in channels.items()}
    try:
        for channel in channels.values():
            await backend.listen(channel, listener)
        seen = {"tenant": cursor.tenant, "user": cursor.user}
        yield ServerSentEventMessage(data=None, id=_position(seen), retry=hub.settings.retry_ms)
        for scope, channel in channels.items():  # what came after the client's position
            entries, whole = await backend.since(channel, seen[scope])
            if not whole:
                yield _gap(scope, _position(seen))
            for entry_id, payload in entries:
                seen[scope] = entry_id
                yield _message(payload, _position(seen))
        async for message in _follow(hub, listener, scope_of, seen, deadline):
            yield message
    finally:
        for channel in channels.values():
            backend.unlisten(channel, listener)
        admission.release()


async def _follow(
    hub: LiveHub,
    listener: Listener,
    scope_of: dict[str, str],
    seen: dict[str, str],
    deadline: float,
) -> AsyncIterator[ServerSentEventMessage]:
    """New events as they come, keep-alive comments between, until the deadline, the hub's
    end, or the client falling ``live.backlog_events`` behind."""
    while not listener.overflowed:
        wait = min(hub.settings.keepalive_s, deadline - time.monotonic())
        if wait <= 0:
            return
        try:
            item = await asyncio.wait_for(listener.queue.get(), wait)
        except TimeoutError:
            if time.monotonic() < deadline:
                yield ServerSentEventMessage(data=None, comment="keep-alive")
            continue
        if item is None:
            return
        channel, entry_id, payload = item
        scope = scope_of.get(channel)
        if scope is None or parse_id(entry_id) <= parse_id(seen[scope]):
            continue  # already sent from the history
        seen[scope] = entry_id
        yield _message(payload, _position(seen))


async def _heads(hub: LiveHub, principal: Principal) -> Cursor:
    tenant = await hub.backend.head(tenant_channel(principal.tenant_id))
    if principal.user_id is None:
        return Cursor(tenant, START)
    return Cursor(
        tenant, await hub.backend.head(user_channel(principal.tenant_id, principal.user_id))
    )


def _position(seen: dict[str, str]) -> str:
    return str(Cursor(seen["tenant"], seen["user"]))


def _message(payload: bytes, position: str) -> ServerSentEventMessage:
    return ServerSentEventMessage(
        data=payload.decode(), event=_type_of.decode(payload).type, id=position
    )


def _gap(scope: str, position: str) -> ServerSentEventMessage:
    event = LiveEvent(
        type=GAP,
        data={"reason": "events older than the kept window were missed"},
        scope=scope,
        published_at=datetime.now(UTC),
    )
    return ServerSentEventMessage(data=msgspec.json.encode(event).decode(), event=GAP, id=position)
