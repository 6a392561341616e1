"""Recording an audited action: the checks every row passes, whoever writes it.

The kernel's actions are a fixed list (:data:`KERNEL_ACTIONS`); a plugin's start with its
name and a dot (``helpdesk.ticket_deleted``), as its event types do. Details are JSON (what is
hashed is what is stored: they are encoded and decoded once first) and bounded in size. The row
joins the caller's transaction: an action that rolls back leaves no row.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from backplane.audit.actor import Actor, current_actor
from backplane.audit.chain import AuditEntry, append
from backplane.db.tenancy import BYPASS_KEY, TenantIsolationError, session_tenant
from backplane.plugins import KERNEL_PLUGIN

log = logging.getLogger("backplane.audit")

KERNEL_ACTIONS: dict[str, str] = {
    "auth.login": "A user logged in, or switched to this tenant (target: the user; details: "
    "method, password or switch_tenant)",
    "auth.login_failed": "A wrong password (or a disabled account) for a known user, recorded "
    "in the tenant the login asked for if the user belongs to it, else the user's first tenant",
    "auth.refresh_reuse": "A used refresh token was presented again; its session was revoked "
    "(target: the session)",
    "auth.password_changed": "A user changed their password, ending all their sessions "
    "(recorded in each of their tenants)",
    "tenant.created": "A tenant was created with its owner (target: the tenant)",
    "member.added": "A user became a member (target: the user; details: role)",
    "member.role_changed": "A member's role changed (details: from, to)",
    "member.removed": "A member was removed; their API keys were revoked (details)",
    "apikey.created": "An API key was created (target: the key; details: role, scopes)",
    "apikey.revoked": "An API key was revoked (target: the key)",
    "plugin.enabled": "A plugin was switched on for the tenant (target: the plugin)",
    "plugin.disabled": "A plugin was switched off for the tenant (target: the plugin)",
    "model.uploaded": "A model version was uploaded (target: name/version; details: sha256)",
    "model.training_requested": "A training run of a registered trainer was requested (target: "
    "the model's name; details: run id, trainer)",
    "model.trained": "A training run registered a new version (target: name/version; details: "
    "run id, trainer, sha256, metrics)",
    "model.deleted": "A model version was deleted (target: name/version)",
    "model.training_scheduled": "A model's retraining schedule was set, replaced or removed "
    "(target: the model's name; details: cron, null when removed, and trainer)",
    "model.drift_detected": "The inputs of a trained version drifted from its training data "
    "(target: name/version; details: threshold, window rows, drifted features' PSI)",
    "model.alias_changed": "A model alias was set, moved, split, deleted, rolled back or "
    "promoted (target: name@alias; details: action, from, to)",
    "plan.changed": "The tenant's plan changed (target: the new plan; details: from)",
    "data.exported": "The tenant's data, or a person's, was exported (details: what)",
    "data.erased": "A person's data was erased or pseudonymised (details: whom)",
}
"""Every action the kernel records, with what it means."""

ACTION_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+\Z")
MAX_ACTION = 100
MAX_TARGET_TYPE = 64
MAX_TEXT = 200
DEFAULT_MAX_DETAILS_BYTES = 8192


class AuditActionError(ValueError):
    """An action code that is malformed, or not the recording plugin's (or kernel's) to use."""


def check_action(action: str, plugin: str) -> str:
    """``action`` if ``plugin`` may record it, else :class:`AuditActionError` saying why."""
    if len(action) > MAX_ACTION or not ACTION_PATTERN.match(action):
        raise AuditActionError(
            f"audit action {action!r} must be lower-case dotted words (area.what_happened), "
            f"at most {MAX_ACTION} characters"
        )
    if plugin == KERNEL_PLUGIN:
        if action not in KERNEL_ACTIONS:
            raise AuditActionError(f"{action!r} is not one of the kernel's audit actions")
    elif not action.startswith(f"{plugin}.") or action in KERNEL_ACTIONS:
        raise AuditActionError(
            f"plugin {plugin!r} records audit actions named {plugin}.<what_happened>, "
            f"not {action!r}"
        )
    return action


def _text(value: object, limit: int, what: str) -> str | None:
    if value is None:
        return None
    text = str(value)
    if len(text) > limit:
        raise ValueError(f"audit {what} is longer than {limit} characters")
    return text


def _details(details: dict[str, Any] | None, max_bytes: int) -> dict[str, Any]:
    try:
        encoded = msgspec.json.encode(details or {})
    except (TypeError, msgspec.EncodeError) as exc:
        raise ValueError(f"audit details must be JSON-serialisable: {exc}") from None
    if len(encoded) > max_bytes:
        raise ValueError(f"audit details take {len(encoded)} bytes; at most {max_bytes}")
    decoded: dict[str, Any] = msgspec.json.decode(encoded)
    return decoded


def _tenant(session: AsyncSession, tenant_id: uuid.UUID | None) -> uuid.UUID:
    """The tenant whose chain gets the row: the session's own, or one named by kernel code on
    a session that sees every tenant."""
    bound = session_tenant(session)
    crossing = bool(getattr(session, "sync_session", session).info.get(BYPASS_KEY))
    if tenant_id is None:
        if bound is None:
            raise TenantIsolationError("an audit row needs a tenant: bind the session")
        return bound
    if tenant_id != bound and not crossing:
        raise TenantIsolationError("an audit row can only be added to the session's own tenant")
    return tenant_id


async def record(
    session: AsyncSession,
    action: str,
    *,
    tenant_id: uuid.UUID | None = None,
    target: tuple[str, object] | None = None,
    details: dict[str, Any] | None = None,
    actor: Actor | None = None,
    plugin: str = KERNEL_PLUGIN,
    max_details_bytes: int = DEFAULT_MAX_DETAILS_BYTES,
) -> AuditEntry:
    """Append ``action`` to the audit trail of ``tenant_id`` (default: the session's tenant) in
    the session's transaction. ``target`` is ``(type, id)``; ``actor`` defaults to whoever is
    acting (:func:`backplane.audit.actor.current_actor`)."""
    check_action(action, plugin)
    target_type, target_id = target if target is not None else (None, None)
    return await append(
        session,
        _tenant(session, tenant_id),
        action=action,
        actor=actor or current_actor(),
        target_type=_text(target_type, MAX_TARGET_TYPE, "target type"),
        target_id=_text(target_id, MAX_TEXT, "target id"),
        details=_details(details, max_details_bytes),
        plugin=plugin,
    )
