"""Marketing send benchmark (issue 23, acceptance 6, second half): campaign messages/s to an
SMTP server (aiosmtpd, in this process) through the plugin against aiosmtplib sending the same
messages directly.

``python bench/marketing/send.py [--messages N] [--database-url URL] [--no-record]`` where
``backplane-marketing`` is installed (the tests env has it). On a fresh PostgreSQL database:

- **direct**: the messages composed with the standard ``email`` package (the same subject,
  text and HTML sizes, the RFC 8058 headers) and sent with ``aiosmtplib.send``, one connection
  per message as the kernel's SMTP transport does, ``--concurrency`` at a time;
- **plugin**: a campaign to a segment of N imported contacts, from ``POST .../send`` until the
  server has received all N: templates rendered in the sandbox, tracked links, one recipient
  row and one kernel mail row per message, outbox tasks, the kernel's claim/hand-over/sent
  commits around each SMTP transaction (no DKIM key on either side).

Goal: plugin at least 0.7 x direct. The machine is shared and noisy. The run is appended to
``bench/RESULTS.md``; the exit status is 1 on a missed goal.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _common import (  # noqa: E402
    BenchError,
    free_port,
    fresh_postgres_database,
    git_revision,
    machine,
    record,
)

GOAL_RATIO = 0.7
TEXT = "Hello {{ contact.first_name | default('there') }}\nUnsubscribe: {{ unsubscribe_url }}\n"
HTML = (
    "<html><body><p>Hello {{ contact.name | default('friend') }}</p>"
    '<p><a href="https://shop.example.org/pricing">Pricing</a></p>'
    '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>'
)


class Sink:
    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            self.count += 1
        return "250 OK"

    def wait(self, total: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.count < total:
            if time.monotonic() > deadline:
                raise BenchError(f"the server got {self.count} of {total} messages")
            time.sleep(0.01)


def _message(n: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Backplane <no-reply@backplane.localhost>"
    message["To"] = f"user{n}@example.org"
    message["Subject"] = f"Hi User{n}"
    unsubscribe = f"https://mail.example.org/api/marketing/t/{'0' * 36}/u/{'x' * 32}"
    message["List-Unsubscribe"] = f"<{unsubscribe}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(f"Hello User{n}\nUnsubscribe: {unsubscribe}\n")
    message.add_alternative(
        HTML.replace("{{ contact.name | default('friend') }}", f"User {n}"), subtype="html"
    )
    return message


async def direct(port: int, total: int, concurrency: int) -> float:
    import aiosmtplib

    messages = [_message(n) for n in range(total)]
    gate = asyncio.Semaphore(concurrency)

    async def one(message: EmailMessage) -> None:
        async with gate:
            await aiosmtplib.send(message, hostname="127.0.0.1", port=port, start_tls=False)

    started = time.perf_counter()
    await asyncio.gather(*(one(m) for m in messages))
    return time.perf_counter() - started


def plugin(url: str, port: int, sink: Sink, total: int, data_dir: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKPLANE_", "OTEL_"))}
    env |= {
        "BACKPLANE_DATA_DIR": str(data_dir),
        "BACKPLANE_PLUGINS": "marketing",
        "BACKPLANE_DEMO_DATA": "false",
        "BACKPLANE_DATABASE_URL": url,
        "BACKPLANE_TASKS__RELAY_INTERVAL_S": "0.05",
        "BACKPLANE_MAIL__TRANSPORT": "smtp",
        "BACKPLANE_MAIL__SMTP_HOST": "127.0.0.1",
        "BACKPLANE_MAIL__SMTP_PORT": str(port),
        "BACKPLANE_MAIL__SMTP_TLS": "none",
        "BACKPLANE_MAIL__MAX_PER_MINUTE": "10000000",
        "BACKPLANE_MAIL__LINK_BASE_URL": "https://mail.example.org",
        "BACKPLANE_PLUGIN__MARKETING__SEND_RATE_PER_MINUTE": "10000000",
    }
    command = shutil.which("backplane", path=str(Path(sys.executable).parent)) or "backplane"
    upgraded = subprocess.run(
        [command, "db", "upgrade"], env=env, capture_output=True, text=True, check=False
    )
    if upgraded.returncode != 0:
        raise BenchError(f"backplane db upgrade failed: {upgraded.stderr[-2000:]}")
    os.environ.update({k: v for k, v in env.items() if k.startswith("BACKPLANE_")})
    from litestar.testing import TestClient

    from backplane.app import create_app
    from backplane.settings import load_settings
    from backplane.testing import run_tasks, seed_tenant

    app = create_app(load_settings())
    with TestClient(app) as client:
        tenant = seed_tenant(client, "bench")
        client.headers["Authorization"] = f"Bearer {tenant.api_key}"
        rows = "".join(f"user{n}@example.org,User {n}\n" for n in range(total))
        stored = client.post(
            "/api/files", params={"name": "c.csv"}, content=b"email,name\n" + rows.encode()
        )
        job = client.post(
            "/api/marketing/imports",
            json={"file_id": stored.json()["id"], "options": {"tags": ["all"]}},
        )
        if job.status_code != 202:
            raise BenchError(f"import refused: {job.text}")
        run_tasks(client, timeout=600)
        segment = client.post(
            "/api/marketing/segments", json={"name": "all", "filter": {"type": "tag", "tag": "all"}}
        ).json()["id"]
        template = client.post(
            "/api/marketing/templates",
            json={
                "name": "t",
                "subject": "Hi {{ contact.first_name }}",
                "text": TEXT,
                "html": HTML,
            },
        ).json()["id"]
        campaign = client.post(
            "/api/marketing/campaigns",
            json={"name": "bench", "template_id": template, "segment_id": segment},
        ).json()["id"]
        started = time.perf_counter()
        sent = client.post(f"/api/marketing/campaigns/{campaign}/send", json={})
        if sent.status_code != 202:
            raise BenchError(f"send refused: {sent.text}")
        sink.wait(total, 1800)
        elapsed = time.perf_counter() - started
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    from aiosmtpd.controller import Controller

    sink, port = Sink(), free_port()
    server = Controller(sink, hostname="127.0.0.1", port=port)
    server.start()
    try:
        direct_s = asyncio.run(direct(port, args.messages, args.concurrency))
        if sink.count != args.messages:
            raise BenchError(f"direct: the server got {sink.count} of {args.messages}")
        sink.count = 0
        with (
            tempfile.TemporaryDirectory(prefix="bench-marketing-send-") as work,
            fresh_postgres_database(args.database_url, "bench_marketing_send") as url,
        ):
            plugin_s = plugin(url, port, sink, args.messages, Path(work) / "data")
    finally:
        server.stop()
    direct_rate, plugin_rate = args.messages / direct_s, args.messages / plugin_s
    ratio = plugin_rate / direct_rate
    ok = ratio >= GOAL_RATIO
    info = machine()
    lines = [
        f"## marketing send, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{git_revision(['plugins/marketing', 'core/src/backplane/mail'])}",
        "",
        f"Machine: {info.get('cpu', '?')}, load {info.get('load', '?')} (shared by eight "
        f"helpers: noisy); {args.messages:,} messages to aiosmtpd in the same process.",
        "",
        "| sender | seconds | messages/s |",
        "|---|---|---|",
        f"| aiosmtplib direct ({args.concurrency} at a time) | {direct_s:.1f} "
        f"| {direct_rate:,.0f} |",
        f"| plugin campaign (embedded worker) | {plugin_s:.1f} | {plugin_rate:,.0f} |",
        "",
        f"Ratio plugin/direct {ratio:.2f} (goal ≥ {GOAL_RATIO}): {'met' if ok else 'MISSED'}.",
    ]
    section = "\n".join(lines)
    print(section)
    if not args.no_record:
        record(section, f"marketing send, {datetime.now(UTC):%Y-%m-%d %H}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
