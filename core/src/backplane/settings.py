"""Kernel settings: msgspec structs filled from an optional TOML file and ``BACKPLANE_*`` vars.

Precedence is keyword arguments over environment over file over defaults. Nested fields use a
double underscore (``BACKPLANE_SERVER__PORT``); plugin sections use
``BACKPLANE_PLUGIN__<NAME>__<FIELD>`` or ``[plugins.<name>]`` in the file and are validated later
by each plugin's own struct. Every error names the variable (or file key) and what was expected,
because a typo in a deployment's environment should fail at start, loudly, not be ignored; how
values are read (text, comma lists, what an empty variable means) is in :mod:`backplane._config`.
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from backplane._config import Given, Key, Schema
from backplane._config import SettingsError as SettingsError  # noqa: PLC0414 - public API

ENV_PREFIX = "BACKPLANE_"
CONFIG_ENV = "BACKPLANE_CONFIG"
PLUGIN_ENV_PREFIX = "BACKPLANE_PLUGIN__"
# Variables that belong to tooling around Backplane rather than to the kernel's settings.
IGNORED_ENV_PREFIXES = ("BACKPLANE_TEST_", "BACKPLANE_BENCH_")
MIN_SECRET_LENGTH = 32
SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name, not a secret
PUBLIC_VIEW = "public view"
"""Marks settings made for plugins (in ``Settings.sources``): they lead to no secret."""


class ServerSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How ``backplane serve`` listens."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    inference_timeout_s: float = 30.0
    """A V2 inference request gets at most this long to run (504 after)."""
    gc_freeze: bool = True
    """``backplane serve``: after start-up, exclude every object alive then from garbage
    collection (``gc.freeze``): full collections otherwise stall requests for tens of ms."""
    shutdown_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0
    """``backplane serve``, when stopping: how long open requests may still run before they
    are cancelled (live event streams end at once; clients reconnect)."""
    access_log: bool = True
    """One log line per request (uvicorn's access log); off saves a few percent of CPU."""
    max_request_body_bytes: int = 10 * 1024 * 1024
    """Requests with a larger body are refused with 413 (routes may set their own limit)."""
    max_json_depth: Annotated[int, msgspec.Meta(ge=1, le=256)] = 64
    """JSON bodies nesting arrays and objects deeper than this are refused with 400 before
    they are decoded (the decoder recurses per level). The kernel's deepest bodies: V2
    inference tensors sent as nested lists, 3 + rank levels (35 for the 32 dimensions a tensor
    may have), and usage event ``properties``, 4 levels before their own nesting."""


class DatabaseSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Connection pool and health-check limits for the database."""

    echo: bool = False
    pool_size: int = 10
    """Connections each process keeps open. Beyond it up to ``max_overflow`` more are opened
    under load, but each is closed again when returned: with more concurrent requests than
    ``pool_size`` every further request pays a connect (more than its query costs)."""
    max_overflow: int = 10
    connect_timeout_s: float = 5.0
    health_timeout_s: float = 2.0
    pool_timeout_s: float = 5.0
    """How long a request or task waits for a pooled connection when all are in use; past
    it the request is answered 503 with ``Retry-After`` (never a stall of every request)."""
    migration_url: str | None = None
    """Owner connection for ``backplane db`` commands (PostgreSQL); defaults to the app's URL."""
    maintenance_url: str | None = None
    """PostgreSQL: the connection of kernel work that must see every tenant (finding an API
    key's tenant, a user's memberships, operator commands, cross-tenant jobs). Its role must
    bypass row-level security (a superuser, or ``ALTER ROLE ... BYPASSRLS``); nothing a request
    session can set widens what the application role sees. Defaults to ``migration_url``, then
    to the app's URL (one role for everything: development only)."""
    maintenance_pool_size: int = 2
    maintenance_max_overflow: int = 8
    app_role: str | None = None
    """The non-owner role the application connects as; granted DML after every upgrade."""
    sqlite_busy_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=600)] = 30.0
    """SQLite only: how long a write waits for the write lock another connection holds (SQLite
    has one writer at a time, and the embedded worker's task runs hold it while they run) before
    failing with "database is locked", which a request answers 503 with ``Retry-After``. Five
    seconds (the usual default) was reached on a loaded two-CPU machine."""
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "NORMAL"
    """SQLite only (WAL mode). ``NORMAL`` does not fsync each commit: a crash of the process
    loses nothing, a power cut may lose the last commits but never corrupts the database.
    ``FULL`` fsyncs every commit (durable across power loss, several ms per commit)."""


class AuthSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Token lifetimes and identity limits."""

    issuer: str = "backplane"
    audience: str = "backplane-api"
    access_ttl_s: int = 900
    """Access tokens are short-lived: a stolen one is useful for at most this long."""
    refresh_ttl_s: int = 30 * 86_400
    leeway_s: int = 30
    keyring_reload_s: int = 60
    """How often a process re-reads the signing keyring (to see another process's rotation)."""
    api_key_touch_interval_s: int = 60
    """``last_used_at`` of an API key is written at most this often (a write per request is
    too expensive)."""
    login_max_attempts: int = 5
    login_window_s: int = 300
    """Failed logins per account and per client address allowed per window before 429."""
    password_memory_kib: int = 19_456
    password_time_cost: int = 2
    password_max_concurrency: int | None = None
    password_min_length: int = 12
    max_api_keys_per_tenant: Annotated[int, msgspec.Meta(ge=1)] = 100
    """Keys not revoked a tenant may hold; creating one more answers 409."""
    max_tenants_per_user: Annotated[int, msgspec.Meta(ge=1)] = 20
    """Tenants a user may own when creating one through the API (409 beyond); the operator's
    ``backplane tenants create`` is not limited."""
    backends: Annotated[list[str], msgspec.Meta(min_length=1)] | None = None
    """The authentication backends (``register_auth_backends``) asked, in this order; None asks
    every registered one, plugins' in plugin order, then the kernel's ``bearer``."""


class TaskSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Background task limits: worker threads, relay cadence, retry backoff."""

    threads: int = 4
    """Worker threads per process (embedded: inside ``backplane serve``)."""
    relay_interval_s: float = 0.2
    """How often committed outbox rows are handed to the broker."""
    relay_batch: int = 500
    resend_after_s: float = 600.0
    """A row handed over but not finished after this long is handed over again (the broker
    lost it); actors are idempotent, duplicates are acknowledged without running. Relays look
    for such rows every tenth of this."""
    min_backoff_ms: int = 1_000
    max_backoff_ms: int = 300_000
    scheduler_interval_s: float = 1.0
    redis_heartbeat_timeout_ms: int = 60_000
    """Redis broker: a worker silent this long is dead and its unacknowledged messages return
    to the queue."""
    poll_interval_ms: int = 500
    """How often an idle embedded worker thread looks for work (lower: faster shutdown,
    more idle CPU)."""
    shutdown_timeout_s: float = 30.0
    """How long shutdown waits for running tasks before returning them to the queue."""
    keep_finished_s: float = 7 * 86400.0
    """Finished tasks' outbox rows and past schedule periods are deleted after this long (an
    hourly kernel task). A done row is what acknowledges a redelivered duplicate without running
    it: keep this far above ``resend_after_s``. Failed tasks stay until retried or removed."""


class TrainingSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Training runs of registered trainers (``BACKPLANE_TRAINING__*``)."""

    time_limit_s: Annotated[float, msgspec.Meta(gt=0, le=86_400)] = 1800.0
    """A run (the trainer reading its data, then fit, conversion and checks) that takes
    longer is stopped: its fit process is killed and the run fails, leaving no version."""
    memory_bytes: Annotated[int, msgspec.Meta(ge=256 * 1024 * 1024)] = 4096 * 1024 * 1024
    """Address-space limit of the fit subprocess (``RLIMIT_AS``); past it the run fails."""
    holdout_fraction: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.2
    """Share of the rows held out (seeded split) for the metrics and the ONNX check."""
    seed: int = 0
    """Seed of the holdout split: the same data gives the same split."""
    min_rows: Annotated[int, msgspec.Meta(ge=2)] = 20
    """Fewer rows than this are refused: a holdout of a handful of rows measures nothing."""
    max_rows: Annotated[int, msgspec.Meta(ge=2)] = 5_000_000
    tolerance: Annotated[float, msgspec.Meta(gt=0, le=1)] = 1e-4
    """Largest absolute difference allowed between ONNX and scikit-learn outputs."""
    max_concurrent_per_tenant: Annotated[int, msgspec.Meta(ge=1, le=100)] = 2
    """Runs of one tenant queued or running at once; more are refused (429)."""
    min_schedule_interval_s: Annotated[float, msgspec.Meta(ge=60, le=31_622_400)] = 3600.0
    """A retraining schedule (cron) whose times come closer together than this is refused
    (422): each time starts a full training run."""
    importance_repeats: Annotated[int, msgspec.Meta(ge=0, le=100)] = 5
    """Shuffles of each feature for the permutation importance on the holdout that the model
    card records (0: not computed; the cost is features x repeats holdout predictions)."""
    promotion_margin: Annotated[float, msgspec.Meta(ge=0, le=1_000_000)] = 0.0
    """A trained version takes the model's ``production`` alias only when its holdout metric
    beats production's trained version by more than this (in the metric's units); the first
    trained version of a model becomes production. Uploaded versions carry no metric and are
    never replaced automatically (move the alias by hand)."""


class InferenceSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Model uploads, onnxruntime sessions and dynamic batching (``BACKPLANE_INFERENCE__*``)."""

    max_upload_bytes: int = 200 * 1024 * 1024
    """Model files larger than this are refused (413) before they are parsed."""
    max_nodes: int = 100_000
    max_nesting_depth: int = 8
    max_initializer_bytes: int = 256 * 1024 * 1024
    max_shape_elements: int = 1 << 28
    trial_timeout_s: float = 20.0
    """An upload's trial load-and-run (in a subprocess) is killed after this long (422)."""
    trial_memory_bytes: int = 2048 * 1024 * 1024
    """Address-space limit of the trial subprocess."""
    session_cache_bytes: int = 1024 * 1024 * 1024
    """Loaded sessions are kept while their model files add up to at most this (LRU)."""
    arena_max_bytes: int = 1024 * 1024 * 1024
    """Cap of the CPU memory arena all sessions share (onnxruntime's ``max_mem``)."""
    threads: int | None = None
    """Threads running ``session.run`` (each session itself runs single-threaded); default:
    the number of cores."""
    dynamic_batching: bool = True
    """Master switch; each model still needs ``max_batch_size`` > 1 and a batch dimension."""
    default_max_batch_size: int = 32
    """Batching for uploads that do not say (0 or 1 = off)."""
    default_max_queue_delay_us: int = 0
    """How long a batch waits for more requests once it has one; 0 = take what is queued."""
    batch_concurrency: Annotated[int, msgspec.Meta(ge=0)] = 1
    """Batched runs of one model in flight at once (Triton's instance count); 0 = ``threads``.
    One keeps batches full and leaves the other cores to the requests feeding them: on a
    model whose weights dwarf the caches, two concurrent batches each ran ~3x slower per row
    than one. Unbatched requests and other models still use the whole pool."""
    metering_overlap_s: float = 2.0
    """A V2 request of a tenant whose inference meters had no limit (soft or hard) in a
    metering round at most this long ago runs and is answered without waiting for its usage:
    the usage is queued and committed within ``metering_flush_ms`` (a crash loses at most
    that much; a shutdown commits it). A limit set since applies from the next round; usage
    already served is counted even past it. 0 = always commit usage first (every refusal
    comes before the run, and every answer after its usage is committed)."""
    metering_flush_ms: Annotated[float, msgspec.Meta(ge=0, le=60_000)] = 10.0
    """How long queued usage of such requests may wait before a round commits it (it is
    committed sooner when a request that must wait for its own commit arrives)."""
    metering_max_deferred: Annotated[int, msgspec.Meta(ge=0)] = 10_000
    """At most this many requests' usage waits queued (say, while the database is down);
    beyond it requests wait for their own commit again (and fail while it fails)."""
    keep_unreferenced_s: int = 86_400
    """Model files no version refers to any more (deleted models) are removed by the hourly
    retention task once they are this old (and so is an interrupted upload's temporary file)."""
    runtime: str = "onnxruntime"
    """The inference runtime (``register_inference_runtimes``) that runs uploaded models."""
    registry_cache_s: float = 2.0
    """How long a process trusts its cached view of a tenant's models (other processes' deletes
    and alias changes, rollbacks included, reach it within this; its own at once)."""
    load_check_s: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 30.0
    """How long a process trusts a plugin's answer (hook ``model_loading``) that a model it
    exposed may serve a tenant: a revocation in another process refuses calls within this."""
    max_aliases_per_model: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 20
    """Most aliases (``production``, ``candidate``, ...) one tenant model may have."""
    max_routing_key_chars: Annotated[int, msgspec.Meta(ge=1, le=4096)] = 256
    """Longest routing key (``parameters.routing_key`` or ``X-Routing-Key``) a V2 request may
    send for sticky traffic splits."""
    explain_max_rows: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 10_000
    """Largest occlusion batch a V2 request with ``parameters.explain`` may run: its rows times
    (its features + 1) (400 beyond). Those rows are what is metered on ``inference.rows``."""
    drift_sample_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.05
    """Share of requests to a trained version whose input rows are sampled into its drift
    window (chosen at random per request; 0 turns drift monitoring off). A sample costs the
    request a copy of its rows into memory, never a database round trip."""
    drift_window_rows: Annotated[int, msgspec.Meta(ge=10, le=1_000_000)] = 2000
    """The sliding window: the last this many sampled rows per (tenant, model, version), in
    this process (fewer for a very wide input: a window holds at most 2**20 values)."""
    drift_min_rows: Annotated[int, msgspec.Meta(ge=10, le=1_000_000)] = 500
    """PSI is computed only once the window holds this many rows (or is full)."""
    drift_check_rows: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 100
    """PSI is recomputed after this many newly sampled rows (from the window's bin counts:
    features x bins, microseconds)."""
    drift_psi_threshold: Annotated[float, msgspec.Meta(gt=0, le=100)] = 0.2
    """A feature whose population stability index is above this has drifted (the common
    convention: < 0.1 stable, 0.1-0.2 moderate, > 0.2 significant); the version then gets a
    ``model.drift_detected`` event and audit row."""
    drift_cooldown_s: Annotated[float, msgspec.Meta(ge=0, le=30 * 86_400)] = 3600.0
    """At most one drift alert per version this often (across processes: the version row keeps
    the last one's time). Within it, a process alerts again only after the PSI dropped back
    below the threshold and crossed it anew, or once the cooldown passed while it stayed above."""


class StorageSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Where stored objects live (``BACKPLANE_STORAGE__*``)."""

    backend: str = "local"
    """A backend registered through ``register_storage_backends``: ``local`` (the data
    directory) by default."""


class FilesSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Tenant files: uploads, downloads and signed URLs (``BACKPLANE_FILES__*``)."""

    backend: str = "local"
    """Where tenant files live: a backend registered through ``register_storage_backends``
    that stores files (``local``: ``<data dir>/files``)."""
    max_upload_bytes: Annotated[int, msgspec.Meta(ge=1)] = 1024 * 1024 * 1024
    """A larger upload is refused with 413 (while it streams: nothing of it is kept)."""
    signed_url_ttl_s: Annotated[int, msgspec.Meta(ge=1)] = 300
    """How long a signed download URL works when the caller does not say."""
    signed_url_max_ttl_s: Annotated[int, msgspec.Meta(ge=1, le=7 * 86_400)] = 3600
    """The longest a caller may ask a signed URL to work (400 beyond)."""
    max_ranges: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 16
    """A ``Range`` header with more ranges than this is ignored (the whole file is sent):
    many tiny or overlapping ranges cost the server far more than they save (RFC 9110 14.2)."""
    keep_deleted_s: Annotated[int, msgspec.Meta(ge=0)] = 3600
    """Objects of deleted files, and objects no file row names (an upload that died before
    its commit), are removed by the hourly retention task once they are this old."""


class WebhookSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Billing webhook delivery (``BACKPLANE_WEBHOOKS__*``)."""

    timeout_s: float = 10.0
    """One attempt (connect, send, and read the answer) gets at most this long; keep it under
    90 s (the delivery task's own time limit is 120 s)."""
    max_attempts: int = 8
    """After this many failed attempts a delivery is ``failed`` (retry it through the API)."""
    backoff_s: float = 30.0
    """Wait before the second attempt; it doubles after each further failure ..."""
    max_backoff_s: float = 6 * 3600.0
    """... up to this (defaults: 30 s, 1, 2, 4, 8, 16, 32 min: about an hour in all)."""
    max_response_body_bytes: int = 1024
    """How much of a receiver's answer is read and kept in the delivery history."""
    max_endpoints: int = 16
    """Endpoints per tenant."""
    dispatch_batch: int = 200
    """Due deliveries the periodic dispatcher queues per run."""
    keep_history_s: float = 30 * 86400.0
    """Finished deliveries (succeeded or failed) and their events are deleted after this long."""
    allow_http: bool = False
    """Development only: accept ``http://`` endpoint URLs (otherwise HTTPS is required)."""
    allow_private_addresses: bool = False
    """Development and tests only: accept URLs resolving to loopback or private addresses."""


PerWindow = Annotated[int, msgspec.Meta(ge=1)]


class LimitSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Per-tenant rate limits of expensive actions (``BACKPLANE_LIMITS__*``; see
    :mod:`backplane.ratelimit`): beyond them 429 with ``Retry-After``. Counted in each process,
    or across processes when ``redis_url`` is set."""

    webhook_tests_per_minute: PerWindow = 10
    """``POST /api/billing/webhooks/{id}/test``: each sends an HTTP request to the tenant's URL."""
    webhook_retries_per_minute: PerWindow = 30
    """``POST /api/billing/webhooks/deliveries/{id}/retry``: each starts a delivery's attempts
    (up to ``webhooks.max_attempts`` HTTP requests) again."""
    webhook_url_checks_per_minute: PerWindow = 30
    """Endpoint URLs given to ``POST``/``PATCH /api/billing/webhooks``: each check resolves a
    host name the tenant chose."""
    model_uploads_per_hour: PerWindow = 60
    """``POST /api/models``: each upload is parsed, checked and trial-run in a subprocess."""


class BillingSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Plans, usage events and invoices (``BACKPLANE_BILLING__*``)."""

    default_plan: str | None = "free"
    """Plan code new tenants are subscribed to; the kernel creates an empty ``free`` plan
    (no fee, no charges, no limits) on first use if no plan with this code exists. ``None``
    leaves new tenants without a subscription (nothing is billed or limited)."""
    currency: str = "USD"
    """Currency of the built-in free plan (ISO 4217)."""
    provider: str = "ledger"
    """The billing provider finalized invoices are handed to (``register_billing_providers``)."""
    max_batch_events: int = 1000
    """Events per ``POST /api/billing/events`` request (larger batches are refused with 413)."""
    max_future_skew_s: int = 300
    """Event timestamps further ahead of the server's clock than this are refused."""
    close_grace_s: int = 3600
    """A period is closed into an invoice this long after it ends (late events still count)."""
    entitlement_cache_s: float = 2.0
    """How long a process trusts its cached view of a tenant's boolean entitlements."""


class PrivacySettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Data rights: exports and erasures (``BACKPLANE_PRIVACY__*``)."""

    max_subject_export_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 64 * 1024 * 1024
    """One person's export (``POST /api/privacy/export``) is built in a temporary file and
    sent in the response; past this many bytes (before compression) it is refused with 413,
    and the operator exports the whole tenant with ``backplane tenants export`` instead."""


class AuditSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The audit trail (``BACKPLANE_AUDIT__*``)."""

    page_size: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 50
    """Rows per ``GET /api/audit`` page when the request names no ``limit``."""
    max_page_size: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 500
    """The largest ``limit`` ``GET /api/audit`` accepts (400 beyond)."""
    max_details_bytes: Annotated[int, msgspec.Meta(ge=256, le=1_048_576)] = 8192
    """A plugin's ``kernel.audit.record(details=...)``, JSON-encoded, is refused beyond this."""


class MailSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Outgoing mail (``BACKPLANE_MAIL__*``; see :mod:`backplane.mail`) and the account mail
    flows' links and lifetimes."""

    transport: str = "files"
    """A transport registered through ``register_mail_transports``: ``files`` (``.eml`` files
    under ``<data dir>/mail``, for development) or ``smtp``."""
    default_from: Annotated[str, msgspec.Meta(min_length=3, max_length=320)] = (
        "Backplane <no-reply@backplane.localhost>"
    )
    """From of tenants without a sender identity; its domain is always allowed as a tenant's
    From domain (besides those with a DKIM key)."""
    smtp_host: str = "localhost"
    smtp_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 587
    smtp_tls: Literal["starttls", "tls", "none"] = "starttls"
    """``starttls`` (submission, port 587) upgrades the connection and refuses a server that
    cannot; ``tls`` (port 465) speaks TLS from the start; ``none`` only for a local relay."""
    smtp_ca_file: Path | None = None
    """A CA bundle (PEM) that verifies the server's certificate instead of the system's (a
    private CA); the certificate and its host name are always verified."""
    smtp_username: str | None = None
    smtp_password: str | None = None
    """A secret: never logged, and absent from the settings plugins receive."""
    smtp_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=300)] = 30.0
    """One SMTP command (connect, each reply) gets at most this long."""
    attempt_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=600)] = 120.0
    """A whole delivery attempt gets at most this long; a claim on a message lapses this long
    (plus a margin) after the attempt began, when a dead worker's message may be looked at again."""
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=100)] = 6
    """After this many failed attempts a message is ``failed`` (with the last reason)."""
    backoff_s: Annotated[float, msgspec.Meta(ge=0)] = 60.0
    """Wait before the second attempt; it doubles after each further failure ..."""
    max_backoff_s: Annotated[float, msgspec.Meta(ge=0)] = 3600.0
    """... up to this (defaults: 1, 2, 4, 8, 16 min: about half an hour in all)."""
    max_per_minute: Annotated[int, msgspec.Meta(ge=1)] = 60
    """Messages a tenant may hand to the transport per minute; beyond it they wait (shared
    across processes when ``redis_url`` is set)."""
    max_recipients: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 50
    max_message_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 5 * 1024 * 1024
    """A composed message larger than this is refused by ``kernel.mail.send``."""
    dispatch_batch: Annotated[int, msgspec.Meta(ge=1)] = 500
    """Due messages the periodic dispatcher queues per run."""
    delivery_batch: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 50
    """Due messages of a tenant one delivery task claims together (one transaction) and hands
    over through one transport connection (SMTP: one connection, a transaction per message)."""
    keep_history_s: Annotated[float, msgspec.Meta(ge=3600)] = 30 * 86400.0
    """Finished messages (sent, failed, unconfirmed), used or expired account links and old
    invitations are deleted after this long (an hourly kernel task)."""
    dkim_selector: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")] = "backplane"
    """Selector of new DKIM keys (``backplane mail dkim-key``): ``<selector>._domainkey``."""
    link_base_url: str = "http://127.0.0.1:8000"
    """Where links in account mails (invites, password resets, verification) point."""
    invite_ttl_s: Annotated[int, msgspec.Meta(ge=60)] = 7 * 86400
    reset_ttl_s: Annotated[int, msgspec.Meta(ge=60)] = 3600
    verify_ttl_s: Annotated[int, msgspec.Meta(ge=60)] = 2 * 86400
    reset_interval_s: Annotated[int, msgspec.Meta(ge=0)] = 60
    """At most one password reset mail per account this often (however many requests come):
    the reset request is public, so it must not become a way to flood someone's mailbox."""

    def __post_init__(self) -> None:
        address = self.default_from.rpartition("<")[2].rstrip(">").strip()
        if "." not in address.rpartition("@")[2] or not address.isascii():
            raise ValueError(f"default_from needs a plain address at a domain, got {address!r}")
        if not self.link_base_url.startswith(("https://", "http://")):
            raise ValueError(f"link_base_url must be an http(s) URL, got {self.link_base_url!r}")


class LiveSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Live events (``GET /api/events``, ``kernel.live``; ``BACKPLANE_LIVE__*``)."""

    redis_url: str | None = None
    """Redis that carries live events between processes and keeps their history (its own
    streams, under ``backplane:live:``); unset: ``redis_url``, and without either, this
    process's memory (events published in a ``backplane worker`` then reach no client)."""
    history_events: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1000
    """Events kept per stream (a tenant's, a user's) for ``Last-Event-ID`` resumption."""
    history_s: Annotated[float, msgspec.Meta(gt=0, le=7 * 86400)] = 300.0
    """How long published events stay available for resumption."""
    max_event_bytes: Annotated[int, msgspec.Meta(ge=256, le=1024 * 1024)] = 64 * 1024
    """An event's encoded size above which ``publish`` refuses it."""
    max_streams_per_tenant: Annotated[int, msgspec.Meta(ge=1)] = 200
    """Open streams of one tenant in one server process (429 beyond)."""
    max_streams_per_user: Annotated[int, msgspec.Meta(ge=1)] = 5
    """Open streams of one user (or API key) in one server process (429 beyond)."""
    keepalive_s: Annotated[float, msgspec.Meta(gt=0, le=300)] = 15.0
    """A comment line is sent after this long without events (proxies close idle streams)."""
    max_stream_s: Annotated[float, msgspec.Meta(gt=0, le=86400)] = 3600.0
    """A stream ends after this long (and when its access token expires); clients reconnect
    with ``Last-Event-ID`` and miss nothing."""
    backlog_events: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1000
    """Events waiting to be sent to one slow client; beyond, its stream ends and the client
    resumes from the history."""
    retry_ms: Annotated[int, msgspec.Meta(ge=0, le=600_000)] = 2000
    """The reconnection delay told to clients (the SSE ``retry`` field)."""


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Everything the kernel needs to start. Build it with :func:`load_settings`."""

    data_dir: Path = Path("var")
    database_url: str | None = None
    plugins: list[str] | None = None
    """Plugin names to load; ``None`` loads every installed plugin, ``[]`` loads none."""
    strict_plugins: bool = False
    """Turn any skipped plugin into a start-up error."""
    secret_key: str | None = None
    """Signing secret shared by every process; generated once into the data directory if unset."""
    demo_data: bool = True
    """Whether ``backplane demo seed`` (run by ``make run``) adds demo rows on first start."""
    broker_url: str | None = None
    """``amqp://`` (RabbitMQ), ``redis://`` (Redis), or unset: an in-process worker."""
    tasks: TaskSettings = msgspec.field(default_factory=TaskSettings)
    redis_url: str | None = None
    """Redis for login throttling and rate limits shared across processes (optional)."""
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    db: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    inference: InferenceSettings = msgspec.field(default_factory=InferenceSettings)
    training: TrainingSettings = msgspec.field(default_factory=TrainingSettings)
    storage: StorageSettings = msgspec.field(default_factory=StorageSettings)
    files: FilesSettings = msgspec.field(default_factory=FilesSettings)
    webhooks: WebhookSettings = msgspec.field(default_factory=WebhookSettings)
    billing: BillingSettings = msgspec.field(default_factory=BillingSettings)
    limits: LimitSettings = msgspec.field(default_factory=LimitSettings)
    privacy: PrivacySettings = msgspec.field(default_factory=PrivacySettings)
    audit: AuditSettings = msgspec.field(default_factory=AuditSettings)
    mail: MailSettings = msgspec.field(default_factory=MailSettings)
    live: LiveSettings = msgspec.field(default_factory=LiveSettings)
    plugin_settings: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    """Raw per-plugin sections, validated by :mod:`backplane.plugins` with each plugin's struct."""
    sources: dict[str, str] = msgspec.field(default_factory=dict)
    """Where each non-default value came from (a variable name or ``file:key``), for messages."""

    def __repr__(self) -> str:
        shown = {
            "data_dir": str(self.data_dir),
            "database_url": redact_url(self.resolved_database_url()),
            "plugins": self.plugins,
            "strict_plugins": self.strict_plugins,
            "secret_key": "***" if self.secret_key else None,
        }
        return f"Settings({shown})"

    def public(self) -> Settings:
        """These settings as plugins see them: no secret key, no credentials in any URL."""

        def redacted(struct: Any, *fields: str) -> dict[str, str | None]:
            values = {field: getattr(struct, field) for field in fields}
            return {field: redact_url(v) if v else None for field, v in values.items()}

        return msgspec.structs.replace(
            self,
            sources={**self.sources, PUBLIC_VIEW: "the kernel's settings without secrets"},
            secret_key=None,
            **redacted(self, "database_url", "broker_url", "redis_url"),
            db=msgspec.structs.replace(
                self.db, **redacted(self.db, "migration_url", "maintenance_url")
            ),
            mail=msgspec.structs.replace(self.mail, smtp_password=None),
            live=msgspec.structs.replace(self.live, **redacted(self.live, "redis_url")),
        )

    def resolved_database_url(self) -> str:
        """The SQLAlchemy async URL; SQLite in the data directory unless configured."""
        if not self.database_url:
            return f"sqlite+aiosqlite:///{self.data_dir / 'backplane.sqlite3'}"
        return normalise_database_url(self.database_url, self.sources.get("database_url"))

    def resolved_maintenance_url(self) -> str:
        """The URL of kernel maintenance sessions (see ``db.maintenance_url``)."""
        if self.db.maintenance_url:
            where = self.sources.get("db.maintenance_url", "BACKPLANE_DB__MAINTENANCE_URL")
            return normalise_database_url(self.db.maintenance_url, where)
        return self.resolved_migration_url()

    def resolved_migration_url(self) -> str:
        """The URL migrations run with: the table owner's, when one is configured."""
        if self.db.migration_url:
            where = self.sources.get("db.migration_url", "BACKPLANE_DB__MIGRATION_URL")
            return normalise_database_url(self.db.migration_url, where)
        return self.resolved_database_url()


def redact_url(url: str) -> str:
    """Hide the password of a database or broker URL so it can be logged."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def normalise_database_url(url: str, source: str | None = None) -> str:
    """Map plain ``postgresql://`` and ``sqlite://`` URLs onto the async drivers we ship."""
    where = source or "BACKPLANE_DATABASE_URL"
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise SettingsError(f"{where}: expected a URL such as postgresql://host/db, got {url!r}")
    driverless = {
        "postgresql": "postgresql+asyncpg",
        "postgres": "postgresql+asyncpg",
        "sqlite": "sqlite+aiosqlite",
    }
    scheme = driverless.get(scheme, scheme)
    if scheme not in ("postgresql+asyncpg", "sqlite+aiosqlite"):
        raise SettingsError(
            f"{where}: unsupported database scheme {scheme!r}; expected postgresql:// or sqlite://"
        )
    return f"{scheme}://{rest}"


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read settings from ``BACKPLANE_CONFIG`` (TOML), then ``BACKPLANE_*`` variables.

    ``overrides`` (keyword arguments named like the struct fields) win over both; tests and
    embedding applications use them instead of mutating ``os.environ``.
    """
    env = os.environ if environ is None else environ
    schema = _kernel_schema()
    given: dict[Key, Given] = {}
    sources: dict[str, str] = {}
    plugin_sections: dict[str, dict[str, Any]] = {}
    config_path = env.get(CONFIG_ENV)
    if config_path:
        given |= _read_file(Path(config_path), schema, plugin_sections, sources)
    given |= _read_environment(env, plugin_sections, sources)
    given |= {(key,): Given(value, f"argument {key}") for key, value in overrides.items()}
    # A whole section given as an argument replaces what the file and environment set in it.
    given = {k: v for k, v in given.items() if not any(k[:d] in given for d in range(1, len(k)))}

    settings = schema.build(given)
    settings.plugin_settings = plugin_sections
    settings.sources = sources | {".".join(key): item.where for key, item in given.items()}
    settings.data_dir = settings.data_dir.expanduser().resolve()
    settings.resolved_database_url()  # validate the URL now, not at first query
    if settings.secret_key is not None and len(settings.secret_key) < MIN_SECRET_LENGTH:
        where = settings.sources.get("secret_key", "BACKPLANE_SECRET_KEY")
        raise SettingsError(
            f"{where}: the secret signs API keys and seals token keys; use at least "
            f"{MIN_SECRET_LENGTH} random characters (or leave it unset to generate one)"
        )
    return settings


@functools.cache
def _kernel_schema() -> Schema[Settings]:
    """Built once: walking the structs' type hints takes about a millisecond."""
    return Schema(Settings, variable_name, skip=("plugin_settings", "sources"))


def variable_name(key: Key, plugin: str | None = None) -> str:
    """The environment variable setting ``key`` of the kernel's or of ``plugin``'s settings."""
    prefix = ENV_PREFIX if plugin is None else f"{PLUGIN_ENV_PREFIX}{plugin.upper()}__"
    return prefix + "__".join(key).upper()


def _read_file(
    path: Path,
    schema: Schema[Settings],
    plugin_sections: dict[str, dict[str, Any]],
    sources: dict[str, str],
) -> dict[Key, Given]:
    """The file's kernel settings; its ``[plugins.<name>]`` tables go to ``plugin_sections``."""
    try:
        content = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SettingsError(f"{CONFIG_ENV}: no such file {str(path)!r}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{CONFIG_ENV}: cannot read {str(path)!r}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{CONFIG_ENV}: {str(path)!r} is not valid TOML: {exc}") from None
    sections = content.pop("plugins", {})
    if not isinstance(sections, dict) or not all(isinstance(v, dict) for v in sections.values()):
        raise SettingsError(f"{path}: [plugins.<name>] sections must be tables")
    plugin_sections.update(sections)
    sources.update((key, f"{path}: {key}") for key in _dotted_keys(sections, "plugins"))
    return schema.from_table(content, lambda key: f"{path}: {'.'.join(key)}")


def _dotted_keys(table: Mapping[str, Any], parent: str) -> Iterator[str]:
    """Every key of a nested table, spelled like ``plugins.name.field``."""
    for name, value in table.items():
        yield f"{parent}.{name}"
        if isinstance(value, dict):
            yield from _dotted_keys(value, f"{parent}.{name}")


def _read_environment(
    env: Mapping[str, str], plugin_sections: dict[str, dict[str, Any]], sources: dict[str, str]
) -> dict[Key, Given]:
    """``BACKPLANE_*`` variables by key; plugin variables go to ``plugin_sections``."""
    given: dict[Key, Given] = {}
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        if name.startswith(IGNORED_ENV_PREFIXES):
            continue
        if not name.startswith(PLUGIN_ENV_PREFIX):
            given[tuple(name[len(ENV_PREFIX) :].lower().split("__"))] = Given(env[name], name)
            continue
        plugin, _, rest = name[len(PLUGIN_ENV_PREFIX) :].lower().partition("__")
        if not plugin or not rest:
            raise SettingsError(f"{name}: expected BACKPLANE_PLUGIN__<PLUGIN>__<FIELD>=value")
        *parents, field = rest.split("__")
        table = plugin_sections.setdefault(plugin, {})
        for part in parents:
            if not isinstance(table.get(part), dict):
                table[part] = {}
            table = table[part]
        table[field] = env[name]
        sources[".".join(("plugins", plugin, *parents, field))] = name
    return given
