"""Issue 15, acceptance 4: schemathesis over the whole OpenAPI schema on PostgreSQL finds no 5xx.

Run it with ``tox -e fuzz`` (options after ``--``), before resolving a security or robustness
issue. It

1. creates a fresh PostgreSQL database and an application role as in production (the server's
   admin user migrates and owns the tables; the application connects as a role with neither
   SUPERUSER nor BYPASSRLS), at ``--postgres-url`` (default ``BACKPLANE_TEST_POSTGRES_URL`` or
   ``postgresql://postgres@127.0.0.1:5432/postgres``, trust authentication);
2. migrates it and seeds two tenants: A, whose owner the fuzzer acts as, and B, a bystander;
3. starts ``backplane serve`` on a free loopback port (the installed kernel and whichever
   plugins are installed next to it: in the tox env, the kernel alone);
4. for every operation of ``/schema/openapi.json``, runs schemathesis' Hypothesis strategy for it,
   with data that fits the schema and data that does not, ``--examples`` cases each, once with
   A's owner API key and once with an owner access token, and checks every answer with
   schemathesis' ``not_a_server_error``;
5. prints a table (operation, credential, cases, 5xx) and every distinct 5xx found (operation,
   status, the request's shape), and exits 1 if there was any 5xx, 0 otherwise.

The database is dropped at the end (``--keep`` keeps it, and the server log, for a look).

Credentials: calls that end or replace the caller's session (``logout``, ``switch-tenant``, the
password change) get an access token of their own, by refresh-token rotation, so they cannot
spoil the rest of the run; the shared access token is checked after every operation and replaced
if something revoked it. The login throttle is raised so that fuzzed logins reach the database
instead of stopping at 429 (the throttle has tests of its own); password hashing uses the cheap
test parameters so that the budget goes to breadth.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from hypothesis.reporting import with_reporter
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup

from backplane.testing import CHEAP_PASSWORD_HASHING, TEST_PASSWORD, SeededTenant, seed_tenant

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_EXAMPLES = 400
"""Per operation, credential and generation mode: about ten minutes for the kernel's schema on
a two-core machine (150 took three and a half)."""
REQUEST_TIMEOUT_S = 30.0
START_TIMEOUT_S = 60.0
SPOILERS = {
    ("POST", "/api/auth/logout"),
    ("POST", "/api/auth/switch-tenant"),
    ("PUT", "/api/me/password"),
}
"""Operations that may revoke the access token they are called with."""
EXAMPLES_SHOWN = 3
"""Distinct 5xx request shapes printed per operation and status."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BACKPLANE_TEST_POSTGRES_URL", DEFAULT_POSTGRES),
        help="an admin connection to the server (a database and a role are created on it)",
    )
    parser.add_argument(
        "--examples",
        type=int,
        default=DEFAULT_EXAMPLES,
        help=f"cases per operation, credential and mode (default {DEFAULT_EXAMPLES})",
    )
    parser.add_argument(
        "--operations", default="", help="only operations whose 'METHOD /path' matches this regex"
    )
    parser.add_argument(
        "--modes",
        choices=["positive", "negative", "all"],
        default="all",
        help="data that fits the schema, data that does not, or both (default)",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="make the generated data reproducible"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the database and the server log afterwards"
    )
    return parser.parse_args(argv)


# -- a database and a server as in production --------------------------------------------------
def admin(url: str, *statements: str) -> None:
    import asyncio

    import asyncpg

    async def run() -> None:
        connection = await asyncpg.connect(url, timeout=5)
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


@contextlib.contextmanager
def fresh_database(server_url: str, keep: bool) -> Iterator[dict[str, str]]:
    """A new database and application role; yields the ``BACKPLANE_*`` database variables."""
    token = uuid.uuid4().hex[:10]
    name, role = f"bp_fuzz_{token}", f"bp_fuzz_app_{token}"
    base = server_url.rsplit("/", 1)[0]
    owner_url = f"{base}/{name}"
    user = owner_url.split("://", 1)[1].split("@", 1)[0]
    admin(server_url, f'CREATE DATABASE "{name}"')
    try:
        admin(owner_url, f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOBYPASSRLS')
        yield {
            "BACKPLANE_DATABASE_URL": owner_url.replace(f"://{user}@", f"://{role}@", 1),
            "BACKPLANE_DB__MIGRATION_URL": owner_url,
            "BACKPLANE_DB__APP_ROLE": role,
        }
    finally:
        if keep:
            print(f"kept database {name!r} and role {role!r}")
        else:
            admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin(server_url, f'DROP ROLE IF EXISTS "{role}"')


def migrate_and_seed(env: dict[str, str]) -> tuple[SeededTenant, SeededTenant]:
    from backplane.db import migrations
    from backplane.loading import load_plugins
    from backplane.settings import load_settings

    plugins = load_plugins(load_settings(environ=env))
    migrations.upgrade(plugins)
    return seed_tenant(plugins, "acme"), seed_tenant(plugins, "globex")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(env: dict[str, str], log: Path) -> Iterator[str]:
    """``backplane serve`` with exactly ``env`` (plus PATH); yields its base URL once ready."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).with_name("backplane")), "serve", "--port", str(port)]
    with log.open("ab") as out:
        server = subprocess.Popen(
            command,
            env={"PATH": os.environ.get("PATH", ""), **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                raise SystemExit(f"the server exited with {server.returncode}; see {log}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"the server was not ready within {START_TIMEOUT_S} s; see {log}")
            time.sleep(0.2)
        yield base
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(10)


# -- credentials -------------------------------------------------------------------------------
class Credentials:
    """Tenant A's owner: the API key, and access tokens kept valid through the run."""

    def __init__(self, base: str, tenant: SeededTenant) -> None:
        self.client = httpx.Client(base_url=base, timeout=REQUEST_TIMEOUT_S)
        self.tenant = tenant
        self.access_token, self.refresh_token = self._login()

    def _login(self) -> tuple[str, str]:
        body = {"email": self.tenant.email, "password": TEST_PASSWORD}
        response = self.client.post("/api/auth/login", json=body)
        if response.status_code != 200:
            raise SystemExit(f"cannot log in as {self.tenant.email}: {response.text}")
        pair = response.json()
        return str(pair["access_token"]), str(pair["refresh_token"])

    def throwaway_token(self) -> str:
        """A fresh access token of its own (rotating the refresh token; a new login if the
        fuzzed calls ended that session)."""
        response = self.client.post("/api/auth/refresh", json={"refresh_token": self.refresh_token})
        if response.status_code != 200:
            return self._login()[0]
        pair = response.json()
        self.refresh_token = str(pair["refresh_token"])
        return str(pair["access_token"])

    def keep_alive(self) -> None:
        """Replace the shared access token if a fuzzed call revoked it."""
        headers = {"Authorization": f"Bearer {self.access_token}"}
        if self.client.get("/api/me", headers=headers).status_code != 200:
            self.access_token, self.refresh_token = self._login()

    def headers(self, kind: str, label: tuple[str, str]) -> dict[str, str]:
        if kind == "api key":
            return dict(self.tenant.headers)
        token = self.throwaway_token() if label in SPOILERS else self.access_token
        return {"Authorization": f"Bearer {token}"}


# -- fuzzing -----------------------------------------------------------------------------------
@dataclass
class Finding:
    status: int
    shape: str


@dataclass
class Run:
    """One operation fuzzed with one credential."""

    operation: str
    credential: str
    cases: int = 0
    findings: list[Finding] = field(default_factory=list)
    unsatisfiable: list[str] = field(default_factory=list)
    """Generation modes for which there is no data (no invalid data for an operation that has
    no inputs, or only string path parameters)."""


def shape(case: Any) -> str:
    """The request's parts, abbreviated: enough to reproduce the kind of input, not a dump."""
    parts = []
    for name in ("path_parameters", "query", "headers", "body"):
        value = getattr(case, name, None)
        if value in (None, {}, b"") or name == "headers":
            continue
        text = repr(value)
        parts.append(f"{name}={text[:240]}{'...' if len(text) > 240 else ''}")
    media = getattr(case, "media_type", None)
    if media:
        parts.append(f"media_type={media}")
    return ", ".join(parts) or "(no input)"


def fuzz_operation(
    operation: Any,
    credentials: Credentials,
    credential: str,
    args: argparse.Namespace,
    session: requests.Session,
) -> Run:
    label = (operation.method.upper(), operation.path)
    run = Run(f"{label[0]} {label[1]}", credential)
    modes = {
        "positive": [GenerationMode.POSITIVE],
        "negative": [GenerationMode.NEGATIVE],
        "all": [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    }[args.modes]
    for mode in modes:

        def one(case: Any) -> None:
            headers = credentials.headers(credential, label)
            response = case.call(session=session, headers=headers, timeout=REQUEST_TIMEOUT_S)
            run.cases += 1
            try:
                case.validate_response(response, checks=[not_a_server_error])
            except FailureGroup:
                run.findings.append(Finding(response.status_code, shape(case)))

        test = given(case=operation.as_strategy(generation_mode=mode))(one)
        test = settings(
            max_examples=args.examples,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )(test)
        if args.seed is not None:
            test = seed(args.seed)(test)
        try:
            # Findings are collected above; Hypothesis' own reports would only repeat them.
            with with_reporter(lambda _message: None):
                test()
        except Unsatisfiable:
            # Every string fits a string path parameter: an operation whose only inputs are
            # such has no invalid data (and one without inputs has none at all).
            run.unsatisfiable.append(mode.value)
    credentials.keep_alive()
    return run


def fuzz(base: str, a: SeededTenant, args: argparse.Namespace) -> list[Run]:
    schema = schemathesis.openapi.from_url(f"{base}/schema/openapi.json")
    schema.config.update(base_url=base)
    wanted = re.compile(args.operations)
    operations = [
        result.ok()
        for result in schema.get_all_operations()
        if wanted.search(f"{result.ok().method.upper()} {result.ok().path}")
    ]
    credentials = Credentials(base, a)
    session = requests.Session()
    runs = []
    started = time.monotonic()
    for index, operation in enumerate(operations, 1):
        for credential in ("api key", "access token"):
            run = fuzz_operation(operation, credentials, credential, args, session)
            runs.append(run)
            print(
                f"[{index}/{len(operations)} {time.monotonic() - started:6.0f} s] "
                f"{run.operation} ({credential}): {run.cases} cases, {len(run.findings)} 5xx",
                flush=True,
            )
    return runs


def report(runs: list[Run]) -> int:
    """Print the summary table and the 5xx found; the number of 5xx answers."""
    width = max(len(r.operation) for r in runs)
    print(f"\n{'operation':<{width}}  {'credential':<12}  {'cases':>6}  {'5xx':>5}")
    for run in runs:
        found = len(run.findings)
        print(f"{run.operation:<{width}}  {run.credential:<12}  {run.cases:>6}  {found:>5}")
    total_cases = sum(r.cases for r in runs)
    total_5xx = sum(len(r.findings) for r in runs)
    print(f"{'total':<{width}}  {'':<12}  {total_cases:>6}  {total_5xx:>5}")
    no_invalid = sorted({r.operation for r in runs if "negative" in r.unsatisfiable})
    if no_invalid:
        print(f"\nno invalid data exists for {len(no_invalid)} operations: {', '.join(no_invalid)}")
    if total_5xx:
        print("\n5xx answers (at most", EXAMPLES_SHOWN, "examples per operation and status):")
        for run in runs:
            by_status: dict[int, list[str]] = {}
            for finding in run.findings:
                by_status.setdefault(finding.status, []).append(finding.shape)
            for status, shapes in sorted(by_status.items()):
                print(f"- {run.operation} ({run.credential}) -> {status}: {len(shapes)} cases")
                for example in list(dict.fromkeys(shapes))[:EXAMPLES_SHOWN]:
                    print(f"    {example}")
    return total_5xx


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bp-fuzz-"))
    log = work / "serve.log"
    try:
        with fresh_database(args.postgres_url, args.keep) as database:
            env = {
                "BACKPLANE_DATA_DIR": str(work / "var"),
                **CHEAP_PASSWORD_HASHING,
                **database,
                "BACKPLANE_AUTH__LOGIN_MAX_ATTEMPTS": "1000000",
                "BACKPLANE_SERVER__ACCESS_LOG": "false",
            }
            a, _b = migrate_and_seed(env)
            with serving(env, log) as base:
                runs = fuzz(base, a, args)
        found = report(runs)
    finally:
        if args.keep:
            print(f"kept the server log: {log}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
