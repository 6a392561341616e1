"""Argon2id password hashing off the event loop, and the password policy.

Why it looks like this:

- **Argon2id** through argon2-cffi (the reference C implementation), with parameters that are
  explicit settings rather than a library default that may change under us. The defaults are
  OWASP's recommended Argon2id configuration (19 MiB, 2 passes, 1 lane).
- **Off the event loop, bounded.** A hash costs tens of milliseconds of CPU and
  ``memory_cost`` KiB of RAM, so it runs on a dedicated pool of ``max_concurrency`` threads
  (argon2-cffi releases the GIL): a login storm queues instead of allocating unbounded memory
  or starving the loop. Unlike an ``asyncio.Semaphore``, the pool is bound to no event loop.
- **The same work for unknown users.** ``verify(None, password)`` verifies against a dummy hash
  made once with the same parameters and returns ``False``, so response time does not reveal
  whether an e-mail has an account.
- **Policy** follows NIST SP 800-63B: a length floor (12 here), a generous ceiling only to
  bound work, a list of common passwords, and nothing derived from the account's e-mail; no
  composition rules (they push people toward ``Password1!``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import string
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files
from typing import Final, TypeVar, TypeVarTuple

import msgspec
from argon2 import PasswordHasher as _Argon2Hasher
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["PasswordHasher", "PasswordSettings", "check_password_policy", "common_passwords"]

logger = logging.getLogger(__name__)
_Ts = TypeVarTuple("_Ts")
_R = TypeVar("_R")

DEFAULT_MIN_LENGTH: Final = 12
DEFAULT_MAX_LENGTH: Final = 1024
_DUMMY_PASSWORD: Final = "backplane dummy password for unknown accounts"  # noqa: S105
_AFFIX_CHARACTERS: Final = string.digits + string.punctuation + " "
_MIN_COMMON_BASE: Final = 4


class PasswordSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Argon2id cost, concurrency bound and policy limits. Raising a cost later is safe: login
    re-hashes what :meth:`PasswordHasher.needs_rehash` reports."""

    time_cost: int = 2
    """Argon2 passes over memory (OWASP: 2 with 19 MiB)."""
    memory_cost_kib: int = 19_456
    """Memory per hash in KiB (OWASP: 19 MiB). Peak use is this times ``max_concurrency``."""
    parallelism: int = 1
    hash_len: int = 32
    salt_len: int = 16
    max_concurrency: int | None = None
    """Hashes computed at once in this process; ``None`` means the number of CPU cores."""
    min_length: int = DEFAULT_MIN_LENGTH
    max_length: int = DEFAULT_MAX_LENGTH
    """Characters; longer passwords are refused by the policy and never hashed."""

    def __post_init__(self) -> None:
        if min(self.time_cost, self.parallelism) < 1 or self.memory_cost_kib < 8 * self.parallelism:
            raise ValueError("argon2 needs time_cost >= 1, parallelism >= 1, memory >= 8 KiB/lane")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if not 1 <= self.min_length <= self.max_length:
            raise ValueError("need 1 <= min_length <= max_length")

    def resolved_concurrency(self) -> int:
        return self.max_concurrency or os.cpu_count() or 1


class PasswordHasher:
    """Hash and verify passwords with Argon2id on a bounded thread pool; one per process
    (``close()`` it on shutdown)."""

    def __init__(self, settings: PasswordSettings | None = None) -> None:
        self.settings = settings or PasswordSettings()
        self._argon2 = _Argon2Hasher(
            time_cost=self.settings.time_cost,
            memory_cost=self.settings.memory_cost_kib,
            parallelism=self.settings.parallelism,
            hash_len=self.settings.hash_len,
            salt_len=self.settings.salt_len,
            type=Type.ID,
        )
        self.max_concurrency = self.settings.resolved_concurrency()
        self._executor = ThreadPoolExecutor(
            max_workers=self.max_concurrency, thread_name_prefix="argon2"
        )
        self._dummy_hash: str | None = None
        self._dummy_lock = threading.Lock()

    def __repr__(self) -> str:
        s = self.settings
        return (
            f"PasswordHasher(argon2id m={s.memory_cost_kib} KiB, t={s.time_cost}, "
            f"p={s.parallelism}, max_concurrency={self.max_concurrency})"
        )

    async def hash(self, password: str) -> str:
        """An encoded Argon2id hash; refuses passwords over ``max_length`` (check the policy)."""
        if len(password) > self.settings.max_length:
            raise ValueError(f"password longer than {self.settings.max_length} characters")
        return await self._run(self._argon2.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored_hash``. ``None`` (no such user) does the same
        work against a dummy hash and never matches; a corrupt hash is logged and a mismatch.
        Over-long passwords fail at once: none is stored, and the work an attacker asks for
        stays bounded."""
        if len(password) > self.settings.max_length:
            return False
        return await self._run(self._verify_sync, stored_hash, password)

    def needs_rehash(self, stored_hash: str) -> bool:
        """Whether ``stored_hash`` (or an unparseable one) was made with other parameters than
        the current ones; cheap (parses the header only)."""
        try:
            return self._argon2.check_needs_rehash(stored_hash)
        except (InvalidHashError, ValueError):
            return True

    async def warm_up(self) -> None:
        """Compute the dummy hash now (at start-up) rather than on the first unknown login."""
        await self._run(self._get_dummy_hash)

    def close(self) -> None:
        """Stop the worker threads (pending work is finished first)."""
        self._executor.shutdown(wait=True)

    async def _run(self, function: Callable[[*_Ts], _R], *args: *_Ts) -> _R:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def _get_dummy_hash(self) -> str:
        with self._dummy_lock:
            if self._dummy_hash is None:
                self._dummy_hash = self._argon2.hash(_DUMMY_PASSWORD)
            return self._dummy_hash

    def _verify_sync(self, stored_hash: str | None, password: str) -> bool:
        if stored_hash is None:
            self._check(self._get_dummy_hash(), password)
            return False
        return self._check(stored_hash, password)

    def _check(self, stored_hash: str, password: str) -> bool:
        try:
            return self._argon2.verify(stored_hash, password)
        except VerifyMismatchError:
            return False
        except (InvalidHashError, VerificationError, ValueError) as exc:
            logger.warning("stored password hash cannot be verified: %s", type(exc).__name__)
            # Keep the timing of a normal mismatch even for a corrupt row.
            with contextlib.suppress(VerificationError):
                self._argon2.verify(self._get_dummy_hash(), password)
            return False

    def check_policy(self, password: str, *, email: str | None = None) -> list[str]:
        """:func:`check_password_policy` with this hasher's length limits."""
        return check_password_policy(
            password,
            email=email,
            min_length=self.settings.min_length,
            max_length=self.settings.max_length,
        )


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list (lower-case), read once on first use: start-up does not pay for it."""
    text = files(__package__).joinpath("common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def check_password_policy(
    password: str,
    *,
    email: str | None = None,
    min_length: int = DEFAULT_MIN_LENGTH,
    max_length: int = DEFAULT_MAX_LENGTH,
) -> list[str]:
    """Every reason ``password`` is refused, as sentences to show the user; empty if none."""
    problems: list[str] = []
    length = len(password)
    if length < min_length:
        problems.append(f"Use at least {min_length} characters (this one has {length}).")
    if length > max_length:
        problems.append(f"Use at most {max_length} characters.")
        return problems  # no further work on a huge input
    lowered = password.lower()
    common = common_passwords()
    base = lowered.strip(_AFFIX_CHARACTERS)
    if lowered in common:
        problems.append("This is one of the most common passwords; choose another.")
    elif base != lowered and len(base) >= _MIN_COMMON_BASE and base in common:
        problems.append("This is a common password with digits or symbols added; choose another.")
    elif _repeated_unit(lowered, common):
        problems.append("This repeats a short or common sequence; choose another.")
    if email:
        problems.extend(_email_problems(lowered, email))
    return problems


def _repeated_unit(lowered: str, common: frozenset[str]) -> bool:
    """``abcabcabcabc`` or ``dragondragon``: a short or common unit repeated."""
    for size in range(1, len(lowered) // 2 + 1):
        if len(lowered) % size == 0:
            unit = lowered[:size]
            if unit * (len(lowered) // size) == lowered:
                return size <= 3 or unit in common
    return False


def _email_problems(lowered: str, email: str) -> list[str]:
    address = email.strip().lower()
    local = address.partition("@")[0].partition("+")[0]
    if address and address in lowered:
        return ["Do not use your e-mail address in your password."]
    if len(local) >= 3 and local in lowered:
        return ["Do not use the name of your e-mail address in your password."]
    return []
