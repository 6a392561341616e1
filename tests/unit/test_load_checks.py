"""``backplane.inference.load_checks``: a plugin's answer about serving a model it exposed is
asked once per (tenant, model, version, artifact), shared by concurrent first calls, kept for
``inference.load_check_s``, forgotten on ``recheck``; shipped models and uploads are never
asked about."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from backplane import ModelRef, ModelRefused
from backplane.inference.load_checks import LoadChecks

TENANT = uuid.uuid4()


def ref(source: str = "marketplace", key: str = "a" * 64, name: str = "m") -> ModelRef:
    return ModelRef(name=name, version="1", source=source, key=key)


def test_answers_are_shared_kept_and_forgotten() -> None:
    asked: list[str] = []
    refusing: set[str] = set()

    async def check(tenant: uuid.UUID, model: ModelRef) -> None:
        asked.append(model.key)
        await asyncio.sleep(0.01)
        if model.key in refusing:
            raise ModelRefused("its signing key was revoked")

    async def scenario() -> None:
        checks = LoadChecks(check, keep_s=60)
        await asyncio.gather(*(checks.admit(TENANT, ref()) for _ in range(10)))
        assert asked == ["a" * 64]  # ten concurrent first calls, one question
        await checks.admit(TENANT, ref())
        assert len(asked) == 1  # kept
        await checks.admit(uuid.uuid4(), ref())
        assert len(asked) == 2  # another tenant is asked about on its own
        for source in ("kernel", "plugin", "upload"):
            await checks.admit(TENANT, ref(source))
        assert len(asked) == 2
        refusing.add("a" * 64)
        await checks.admit(TENANT, ref())  # the kept answer still holds ...
        checks.forget("b" * 64)
        await checks.admit(TENANT, ref())  # ... forgetting another artifact changes nothing
        checks.forget("a" * 64)
        with pytest.raises(ModelRefused, match="'m' version '1' is refused: its signing key"):
            await checks.admit(TENANT, ref())
        with pytest.raises(ModelRefused):  # the refusal is kept too
            await checks.admit(TENANT, ref())
        assert len(asked) == 3

    asyncio.run(scenario())


def test_an_answer_expires_after_keep_s() -> None:
    asked = 0

    async def check(tenant: uuid.UUID, model: ModelRef) -> None:
        nonlocal asked
        asked += 1

    async def scenario() -> None:
        checks = LoadChecks(check, keep_s=0)
        await checks.admit(TENANT, ref())
        await checks.admit(TENANT, ref())

    asyncio.run(scenario())
    assert asked == 2


def test_an_answer_asked_before_forget_is_not_kept() -> None:
    release = asyncio.Event()
    asked = 0

    async def check(tenant: uuid.UUID, model: ModelRef) -> None:
        nonlocal asked
        asked += 1
        if asked == 1:
            await release.wait()  # the state it read may be stale by the time it answers

    async def scenario() -> None:
        checks = LoadChecks(check, keep_s=60)
        first = asyncio.ensure_future(checks.admit(TENANT, ref()))
        await asyncio.sleep(0)
        checks.forget()
        release.set()
        await first
        await checks.admit(TENANT, ref())
        assert asked == 2

    asyncio.run(scenario())
