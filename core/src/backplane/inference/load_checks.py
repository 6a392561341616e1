"""Checks a plugin makes before a model it exposed serves a tenant (hook ``model_loading``).

A model a plugin made one of a tenant's models (``kernel.models.expose_artifact``, source
``marketplace``, say) may stop being servable for reasons only that plugin knows: the
marketplace verifies its publisher's signature, and refuses it once the signing key is revoked.
The kernel already verifies the bytes against their SHA-256 whenever it reads them; this adds
the plugin's word. Before such a model serves a tenant (V2 inference, metadata and readiness,
``kernel.models.infer``), the kernel calls every plugin's ``model_loading(kernel, model)`` with
a read session of the tenant; a hook refuses by raising :class:`ModelRefused`, which the caller
gets as a clear 409. The answer, either way, is kept for ``inference.load_check_s`` per
(tenant, model, version, artifact) in the process, so the hot path pays a dictionary lookup;
``kernel.models.recheck()`` drops what this process keeps (after a revocation, say), and other
processes ask again within ``inference.load_check_s``. Concurrent first calls share one check.
Shipped models and the tenant's own uploads are never checked.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

from backplane._contract import ModelRef

UNCHECKED_SOURCES = frozenset({"kernel", "plugin", "upload"})
"""Sources no plugin vouches for: shipped models and the tenant's own uploads."""

MAX_ENTRIES = 10_000
"""More answers than this and the process forgets them all (they are cheap to ask again)."""

Key = tuple[uuid.UUID, str, str, str]


class ModelRefused(Exception):  # noqa: N818 - named like ModelRejected, its upload-time sibling
    """A plugin refuses to let the model it exposed serve (raised in hook ``model_loading``):
    the message says why; the caller gets ``status_code`` (409) with it."""

    status_code = 409


class LoadChecks:
    """The cached answers of ``check(tenant_id, ref)`` (raises :class:`ModelRefused`)."""

    def __init__(
        self, check: Callable[[uuid.UUID, ModelRef], Awaitable[None]], keep_s: float
    ) -> None:
        self._check = check
        self._keep_s = keep_s
        self._answers: dict[Key, tuple[float, str | None]] = {}
        """key -> (trusted until, the refusal's reason or None)."""
        self._pending: dict[Key, asyncio.Future[str | None]] = {}
        self._generation = 0
        """Moved on by :meth:`forget`: an answer asked for before it is not kept."""

    async def admit(self, tenant_id: uuid.UUID, ref: ModelRef) -> None:
        """Nothing if ``ref`` may serve ``tenant_id``; :class:`ModelRefused` otherwise."""
        if ref.source in UNCHECKED_SOURCES:
            return
        key = (tenant_id, ref.name, ref.version, ref.key)
        answer = self._answers.get(key)
        if answer is not None and answer[0] > time.monotonic():
            reason = answer[1]
        else:
            pending = self._pending.get(key)
            if pending is None or pending.get_loop() is not asyncio.get_running_loop():
                pending = asyncio.ensure_future(self._ask(key, tenant_id, ref, self._generation))
                self._pending[key] = pending
            reason = await asyncio.shield(pending)
        if reason is not None:
            raise ModelRefused(f"model {ref.name!r} version {ref.version!r} is refused: {reason}")

    async def _ask(
        self, key: Key, tenant_id: uuid.UUID, ref: ModelRef, generation: int
    ) -> str | None:
        try:
            await self._check(tenant_id, ref)
            reason = None
        except ModelRefused as refused:
            reason = str(refused) or "refused by the plugin that exposed it"
        finally:
            if self._pending.get(key) is asyncio.current_task():  # not a newer one's
                del self._pending[key]
        if generation != self._generation:
            return reason  # forgotten meanwhile: good for this call only
        if len(self._answers) >= MAX_ENTRIES:
            self._answers.clear()
        self._answers[key] = (time.monotonic() + self._keep_s, reason)
        return reason

    def forget(self, artifact: str | None = None) -> None:
        """Ask again next time: for models of ``artifact`` (a SHA-256), or every model."""
        self._generation += 1
        self._pending.clear()  # checks in flight answer their own callers, unkept
        if artifact is None:
            self._answers.clear()
        else:
            for key in [k for k in self._answers if k[3] == artifact]:
                self._answers.pop(key, None)
