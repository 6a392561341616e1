"""Issue 19, acceptance 2 (crash half): a real ``backplane worker`` delivering to a real SMTP
server (aiosmtpd, in the test process) is killed with SIGKILL, restarted, and the messages the
server received are counted.

- Killed at the worst moment (the server has taken the whole message and holds its answer,
  so the worker never learns it was accepted): after the restart the message is **not** sent
  again; it becomes ``unconfirmed`` once the dead attempt's claim lapses.
- Killed before the hand-over (the server holds its answer to ``RCPT``): the server cannot
  have accepted anything, and after the restart the message is delivered, once.

See :mod:`backplane.mail.delivery` for the design and its trade-off.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.cli import BACKPLANE, kill_9, process, run_cli, serving
from tests.integration.test_tasks_crash import _prepare, _purge, _query
from tests.mail_helpers import Mailbox, smtp_env, smtp_server
from tests.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.redis]

ATTEMPT_S = 3
"""mail.attempt_timeout_s here: a dead attempt's claim lapses 13 s after it began."""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def env(request: pytest.FixtureRequest, data_dir: Path, redis_tasks_url: str) -> dict[str, str]:
    env = {
        "BACKPLANE_DATA_DIR": str(data_dir),
        "BACKPLANE_PLUGINS": "kitchen_sink",
        "BACKPLANE_BROKER_URL": redis_tasks_url,
        "BACKPLANE_TASKS__RELAY_INTERVAL_S": "0.1",
        "BACKPLANE_TASKS__POLL_INTERVAL_MS": "100",
        "BACKPLANE_TASKS__RESEND_AFTER_S": "6",
        "BACKPLANE_MAIL__ATTEMPT_TIMEOUT_S": str(ATTEMPT_S),
        "BACKPLANE_MAIL__BACKOFF_S": "0",
    }
    if request.param == "postgres":
        env.update(request.getfixturevalue("postgres_app_env"))
    return env


def _message(env: dict[str, str]) -> tuple[str, str | None, int]:
    [(status, phase, attempts)] = _query(
        env, "SELECT status, phase, attempts FROM backplane_mail_messages"
    )
    return str(status), phase, int(attempts)


def _crash_and_restart(
    env: dict[str, str], box: Mailbox, hold: threading.Event, reached: threading.Event, tmp: Path
) -> tuple[str, str | None, int]:
    """Send one message, kill -9 the worker once the server reached the held step, restart it,
    and run the dispatcher (``backplane mail flush``) until the message settles."""
    env = {**env, **smtp_env(box)}
    key = _prepare(env)
    _purge(env)
    worker_args = [BACKPLANE, "worker", "--processes", "1", "--threads", "2"]
    with serving(env, tmp / "serve.log", timeout=30) as server:
        with process(worker_args, env, tmp / "worker.log") as worker:
            sent = httpx.post(
                f"{server.base}/api/mail/messages",
                json={"to": ["ada@example.org"], "subject": "Once", "text": "only once"},
                headers={"Authorization": f"Bearer {key}"},
                timeout=10,
            )
            assert sent.status_code == 202, sent.text
            assert reached.wait(30), "the worker never reached the held SMTP step"
            kill_9(worker)
        hold.set()  # the server answers now, to nobody
        killed_at = _message(env)
        with process(worker_args, env, tmp / "worker.log"):
            time.sleep(ATTEMPT_S + 10 + 1)  # the dead attempt's claim lapses

            def settled() -> tuple[str, str | None, int] | None:
                state = _message(env)
                if state[0] in ("sent", "failed", "unconfirmed"):
                    return state
                flushed = run_cli("mail", "flush", env=env)
                assert flushed.returncode == 0, flushed.stderr
                return None

            final = wait_for(settled, message="the message to settle", timeout=60, interval=1)
            time.sleep(2)  # let any duplicate delivery arrive
    assert killed_at[:2] == ("sending", "handing_over" if hold is box.hold_data else "connecting")
    return final


def test_a_worker_killed_after_the_server_took_the_message_does_not_send_it_twice(
    env: dict[str, str], tmp_path: Path
) -> None:
    with smtp_server() as box:
        box.hold_data = threading.Event()
        status, _phase, attempts = _crash_and_restart(
            env, box, box.hold_data, box.reached_data, tmp_path
        )
        assert len(box.received) == 1  # the server got it once, and never again
        assert box.data_attempts == 1
    assert (status, attempts) == ("unconfirmed", 1)
    [(error,)] = _query(env, "SELECT last_error FROM backplane_mail_messages")
    assert "not sent again" in str(error)
    counts = json.loads(run_cli("mail", "status", "--json", env=env).stdout)
    assert counts == [{"status": "unconfirmed", "count": 1}]


def test_a_worker_killed_before_the_hand_over_delivers_the_message_once_after_restart(
    env: dict[str, str], tmp_path: Path
) -> None:
    with smtp_server() as box:
        box.hold_rcpt = threading.Event()
        status, _phase, attempts = _crash_and_restart(
            env, box, box.hold_rcpt, box.reached_rcpt, tmp_path
        )
        assert len(box.received) == 1
        assert box.data_attempts == 1
    assert (status, attempts) == ("sent", 2)
