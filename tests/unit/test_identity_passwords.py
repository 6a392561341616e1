"""Argon2id hashing off the event loop and the password policy (backplane.identity.passwords)."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Iterator

import argon2
import pytest

from backplane.identity.passwords import (
    PasswordHasher,
    PasswordSettings,
    check_password_policy,
    common_passwords,
)

# Small enough to keep the suite fast on two shared cores, real Argon2id all the same.
FAST = PasswordSettings(time_cost=1, memory_cost_kib=1024, parallelism=1, max_concurrency=2)
GOOD_PASSWORD = "violet-tractor-mosaic-47"


@pytest.fixture
def hasher() -> Iterator[PasswordHasher]:
    instance = PasswordHasher(FAST)
    yield instance
    instance.close()


class Spy:
    """Wraps ``verify`` of argon2's ``PasswordHasher`` (what the kernel's hasher runs in its
    threads) to record calls and the peak concurrency."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, delay_s: float = 0.0) -> None:
        self.inner = argon2.PasswordHasher.verify
        self.delay_s = delay_s
        self.calls: list[str] = []
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()

        def verify(hasher: argon2.PasswordHasher, stored_hash: str, password: str) -> bool:
            return self.verify(hasher, stored_hash, password)

        monkeypatch.setattr(argon2.PasswordHasher, "verify", verify)

    def verify(self, hasher: argon2.PasswordHasher, stored_hash: str, password: str) -> bool:
        with self.lock:
            self.calls.append(stored_hash)
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            return self.inner(hasher, stored_hash, password)
        finally:
            with self.lock:
                self.active -= 1


# -- hashing ----------------------------------------------------------------------------------


async def test_hash_and_verify_round_trip(hasher: PasswordHasher) -> None:
    stored = await hasher.hash(GOOD_PASSWORD)
    assert stored.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert GOOD_PASSWORD not in stored
    assert await hasher.verify(stored, GOOD_PASSWORD)
    assert stored != await hasher.hash(GOOD_PASSWORD)  # salted


async def test_wrong_password_does_not_verify(hasher: PasswordHasher) -> None:
    stored = await hasher.hash(GOOD_PASSWORD)
    assert not await hasher.verify(stored, GOOD_PASSWORD + "x")
    assert not await hasher.verify(stored, "")
    assert not await hasher.verify(stored, GOOD_PASSWORD.upper())


async def test_default_parameters_are_owasps() -> None:
    settings = PasswordSettings()
    assert (settings.memory_cost_kib, settings.time_cost, settings.parallelism) == (19456, 2, 1)
    assert settings.min_length == 12
    assert settings.resolved_concurrency() >= 1


async def test_unknown_user_verifies_against_the_dummy_hash(
    hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = Spy(monkeypatch)
    assert await hasher.verify(None, GOOD_PASSWORD) is False
    assert await hasher.verify(None, GOOD_PASSWORD) is False
    assert len(spy.calls) == 2
    dummy = spy.calls[0]
    assert spy.calls[1] == dummy  # computed once
    assert dummy.startswith("$argon2id$v=19$m=1024,t=1,p=1$")  # same parameters as real hashes
    stored = await hasher.hash(GOOD_PASSWORD)
    assert await hasher.verify(stored, GOOD_PASSWORD)
    assert spy.calls[-1] == stored


async def test_unknown_and_known_users_take_comparable_time() -> None:
    """Coarse check with heavier parameters than the rest, so noise does not dominate."""
    hasher = PasswordHasher(PasswordSettings(time_cost=2, memory_cost_kib=8192, max_concurrency=1))
    try:
        stored = await hasher.hash(GOOD_PASSWORD)
        await hasher.warm_up()

        async def timed(stored_hash: str | None) -> float:
            started = time.perf_counter()
            await hasher.verify(stored_hash, "wrong password guess")
            return time.perf_counter() - started

        known, unknown = [], []
        for _ in range(5):
            known.append(await timed(stored))
            unknown.append(await timed(None))
        ratio = statistics.median(unknown) / statistics.median(known)
        assert 0.5 < ratio < 2, (known, unknown)
    finally:
        hasher.close()


async def test_corrupt_stored_hash_is_a_mismatch_with_the_same_work(
    hasher: PasswordHasher, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = Spy(monkeypatch)
    for corrupt in ("", "not a hash", "$argon2id$v=19$m=1024,t=1,p=1$garbage"):
        assert await hasher.verify(corrupt, GOOD_PASSWORD) is False
    assert len(spy.calls) == 6  # each corrupt row also verified against the dummy
    assert "cannot be verified" in caplog.text
    assert GOOD_PASSWORD not in caplog.text


async def test_over_long_passwords_are_refused_without_work(
    hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = Spy(monkeypatch)
    huge = "x" * (FAST.max_length + 1)
    assert await hasher.verify(await hasher.hash(GOOD_PASSWORD), huge) is False
    assert spy.calls == []
    with pytest.raises(ValueError, match="longer than"):
        await hasher.hash(huge)


async def test_concurrency_is_bounded(
    hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = await hasher.hash(GOOD_PASSWORD)
    spy = Spy(monkeypatch, delay_s=0.02)
    results = await asyncio.gather(
        *(hasher.verify(stored if i % 2 else None, GOOD_PASSWORD) for i in range(12))
    )
    assert results == [bool(i % 2) for i in range(12)]
    assert len(spy.calls) == 12
    assert spy.peak == FAST.max_concurrency == 2


async def test_event_loop_stays_responsive_while_hashing(
    hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = await hasher.hash(GOOD_PASSWORD)
    spy = Spy(monkeypatch, delay_s=0.1)
    work = asyncio.gather(*(hasher.verify(stored, GOOD_PASSWORD) for _ in range(4)))
    started = time.perf_counter()
    await asyncio.sleep(0.01)
    # Hashing on the loop would have held it for 4 x 0.1 s before the sleep could return.
    assert time.perf_counter() - started < 0.2
    assert all(await work)
    assert spy.peak == 2


async def test_needs_rehash_follows_the_parameters(hasher: PasswordHasher) -> None:
    stored = await hasher.hash(GOOD_PASSWORD)
    assert not hasher.needs_rehash(stored)
    stronger = PasswordHasher(PasswordSettings(time_cost=2, memory_cost_kib=1024))
    try:
        assert stronger.needs_rehash(stored)
        assert await stronger.verify(stored, GOOD_PASSWORD)  # old hashes still verify
    finally:
        stronger.close()
    assert hasher.needs_rehash("garbage")


def test_hasher_works_across_event_loops(hasher: PasswordHasher) -> None:
    """No asyncio primitive is bound to the first loop that used the hasher."""
    stored = asyncio.run(hasher.hash(GOOD_PASSWORD))
    assert asyncio.run(hasher.verify(stored, GOOD_PASSWORD))
    assert not asyncio.run(hasher.verify(None, GOOD_PASSWORD))


def test_repr_shows_parameters_only(hasher: PasswordHasher) -> None:
    assert repr(hasher) == "PasswordHasher(argon2id m=1024 KiB, t=1, p=1, max_concurrency=2)"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"time_cost": 0},
        {"memory_cost_kib": 4},
        {"parallelism": 0},
        {"max_concurrency": 0},
        {"min_length": 0},
        {"min_length": 20, "max_length": 10},
    ],
)
def test_settings_are_validated(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        PasswordSettings(**kwargs)


# -- policy -----------------------------------------------------------------------------------


def test_a_good_password_passes() -> None:
    assert check_password_policy(GOOD_PASSWORD, email="alice@example.com") == []
    assert check_password_policy("correct horse battery staple") == []


def test_short_passwords_are_refused() -> None:
    assert check_password_policy("Xk9#mQ2vLp8") == ["Use at least 12 characters (this one has 11)."]
    assert check_password_policy("Xk9#mQ2vLp8", min_length=8) == []
    assert check_password_policy("Xk9#mQ2vLp8$") == []


def test_too_long_passwords_are_refused() -> None:
    problems = check_password_policy("ab" * 600)
    assert problems == ["Use at most 1024 characters."]
    assert check_password_policy("Xk9#mQ2vLp8$" * 10, max_length=100) == [
        "Use at most 100 characters."
    ]


@pytest.mark.parametrize("password", ["1234567890qwertyuiop", "1q2w3e4r5t6y", "1QAZ2WSX3EDC4RFV"])
def test_common_passwords_are_refused_case_insensitively(password: str) -> None:
    assert check_password_policy(password) == [
        "This is one of the most common passwords; choose another."
    ]


@pytest.mark.parametrize("password", ["Iloveyou2024!!", "qwertyuiop123456", "!!Sunshine1987"])
def test_common_passwords_with_digits_and_symbols_added_are_refused(password: str) -> None:
    assert check_password_policy(password) == [
        "This is a common password with digits or symbols added; choose another."
    ]


@pytest.mark.parametrize("password", ["abcabcabcabc", "dragondragondragon", "zzzzzzzzzzzz"])
def test_repeated_sequences_are_refused(password: str) -> None:
    assert check_password_policy(password) == [
        "This repeats a short or common sequence; choose another."
    ]


def test_email_derived_passwords_are_refused() -> None:
    email = "Alice.Liddell+shop@example.com"
    assert check_password_policy("alice.liddell!rocks", email=email) == [
        "Do not use the name of your e-mail address in your password."
    ]
    assert check_password_policy("ALICE.LIDDELL1234", email=email) == [
        "Do not use the name of your e-mail address in your password."
    ]
    assert check_password_policy("x alice.liddell+shop@example.com", email=email) == [
        "Do not use your e-mail address in your password."
    ]
    # A very short local part would match nearly anything, so it is not checked.
    assert check_password_policy(GOOD_PASSWORD, email="vi@example.com") == []


def test_several_problems_are_all_reported() -> None:
    problems = check_password_policy("bob123", email="bob@example.com")
    assert len(problems) == 3
    assert problems[0].startswith("Use at least 12")
    assert "most common" in problems[1]
    assert "e-mail" in problems[2]


def test_hasher_policy_uses_its_settings() -> None:
    hasher = PasswordHasher(PasswordSettings(memory_cost_kib=1024, min_length=16))
    try:
        assert hasher.check_policy("Xk9#mQ2vLp8$wR") == [
            "Use at least 16 characters (this one has 14)."
        ]
    finally:
        hasher.close()


def test_common_list_is_shipped_loaded_once_and_large() -> None:
    common_passwords.cache_clear()
    first = common_passwords()
    assert first is common_passwords()
    assert len(first) > 30_000
    assert sum(1 for p in first if len(p) >= 12) >= 300
    assert all(p == p.lower() and not p.startswith("#") for p in first)
    assert {"password", "iloveyou", "1qaz2wsx3edc", "1q2w3e4r5t6y7u8i"} <= first
