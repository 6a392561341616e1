"""The task runtime's time limit (asyncio.timeout's behaviour, without asking for the loop)."""

from __future__ import annotations

import asyncio

import pytest

from backplane.tasks.loop import TimeLimit


async def _limited(seconds: float, work: float) -> str:
    with TimeLimit(asyncio.get_running_loop(), seconds):
        await asyncio.sleep(work)
    return "done"


def test_work_within_the_limit_returns() -> None:
    assert asyncio.run(_limited(1.0, 0.01)) == "done"


def test_work_past_the_limit_raises_timeout_error() -> None:
    with pytest.raises(TimeoutError):
        asyncio.run(_limited(0.02, 5.0))


def test_the_task_carries_on_after_a_timeout() -> None:
    async def main() -> str:
        with pytest.raises(TimeoutError):
            await _limited(0.02, 5.0)
        await asyncio.sleep(0.01)  # no cancellation left pending on the task
        current = asyncio.current_task()
        assert current is not None
        assert current.cancelling() == 0
        return "after"

    assert asyncio.run(main()) == "after"


def test_an_outer_cancellation_is_not_turned_into_a_timeout() -> None:
    async def main() -> None:
        task = asyncio.create_task(_limited(0.05, 5.0))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_an_outer_cancellation_after_expiry_still_cancels() -> None:
    async def main() -> None:
        async def victim() -> None:
            with TimeLimit(asyncio.get_running_loop(), 0.01):
                try:
                    await asyncio.sleep(5.0)
                finally:
                    await asyncio.sleep(0.05)  # the limit expires; then the outer cancel comes

        task = asyncio.create_task(victim())
        await asyncio.sleep(0.03)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
