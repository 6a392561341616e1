"""Acceptance 2: an independent xAPI client from the package registry (``tincan``, ADL's
TinCanPython) stores and reads statements and documents in the LRS, served by uvicorn on a
real socket (the client speaks ``http.client``, not ASGI)."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from backplane.testing import seed_tenant

tincan = pytest.importorskip("tincan")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served(backplane_app: Any) -> Iterator[str]:
    config = uvicorn.Config(backplane_app, host="127.0.0.1", port=_free_port(), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(30)


def test_tincan_stores_and_reads_statements_and_documents(
    served: str, backplane_plugins: Any
) -> None:
    tenant = seed_tenant(backplane_plugins, "acme")
    made = httpx.post(
        f"{served}/api/education/xapi/credentials",
        json={"name": "tincan", "scope": "all"},
        headers=tenant.headers,
    )
    assert made.status_code == 201, made.text
    lrs = tincan.RemoteLRS(
        endpoint=f"{served}/xapi/",
        version="1.0.1",
        username=made.json()["key"],
        password=made.json()["secret"],
    )
    about = lrs.about()
    assert about.success, about.data
    assert "1.0.3" in about.content.version

    actor = tincan.Agent(name="Ada", mbox="mailto:ada@example.org")
    verb = tincan.Verb(
        id="http://adlnet.gov/expapi/verbs/completed", display={"en-US": "completed"}
    )
    activity = tincan.Activity(
        id="http://example.org/course/1",
        definition=tincan.ActivityDefinition(name={"en-US": "Course one"}),
    )
    registration = str(uuid.uuid4())
    one = tincan.Statement(
        actor=actor,
        verb=verb,
        object=activity,
        context=tincan.Context(registration=registration),
        result=tincan.Result(score=tincan.Score(scaled=0.8), success=True, completion=True),
    )
    saved = lrs.save_statement(one)
    assert saved.success, saved.data
    statement_id = saved.content.id
    batch = [tincan.Statement(actor=actor, verb=verb, object=activity) for _ in range(25)]
    assert lrs.save_statements(batch).success

    read = lrs.retrieve_statement(statement_id)
    assert read.success, read.data
    assert read.content.actor.mbox == "mailto:ada@example.org"
    assert read.content.result.score.scaled == 0.8
    assert str(read.content.context.registration) == registration

    query = lrs.query_statements({"agent": actor, "verb": verb, "limit": 10})
    assert query.success, query.data
    seen = len(query.content.statements)
    more = query.content.more
    while more:
        page = lrs.more_statements(more)
        assert page.success, page.data
        seen += len(page.content.statements)
        more = page.content.more
    assert seen == 26

    state = tincan.StateDocument(
        activity=activity,
        agent=actor,
        id="bookmark",
        content='{"page": 3}',
        content_type="application/json",
    )
    assert lrs.save_state(state).success
    got = lrs.retrieve_state(activity, actor, "bookmark")
    assert got.success, got.data
    assert got.content.content == b'{"page": 3}'
    # (tincan 1.0.0 reads response headers as a dict from a list of pairs, so it never sees
    # the ETag; our own tests read it: test_xapi_documents.py)
    ids = lrs.retrieve_state_ids(activity, actor)
    assert ids.success
    assert list(ids.content) == ["bookmark"]

    profile = tincan.ActivityProfileDocument(
        activity=activity,
        id="settings",
        content='{"theme": "dark"}',
        content_type="application/json",
    )
    assert lrs.save_activity_profile(profile).success
    read_profile = lrs.retrieve_activity_profile(activity, "settings")
    assert read_profile.success, read_profile.data
    assert read_profile.content.content == b'{"theme": "dark"}'

    agent_profile = tincan.AgentProfileDocument(
        agent=actor, id="prefs", content="plain", content_type="text/plain"
    )
    assert lrs.save_agent_profile(agent_profile).success
    read_agent = lrs.retrieve_agent_profile(actor, "prefs")
    assert read_agent.success, read_agent.data
    assert read_agent.content.content == b"plain"
    assert lrs.delete_agent_profile(read_agent.content).success
    assert lrs.retrieve_agent_profile(actor, "prefs").response.status == 404
