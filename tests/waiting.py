"""Waiting for something another thread or process does: the one polling loop of the tests."""

from __future__ import annotations

import reprlib
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    *,
    message: str,
    timeout: float = 20.0,
    interval: float = 0.1,
    retry_on: tuple[type[Exception], ...] = (),
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns something true; return it.

    ``message`` says what is awaited: after ``timeout`` seconds the AssertionError names it,
    with the last value (or exception) seen. Exceptions in ``retry_on`` mean "not yet" (a
    server that is not listening); any other propagates at once, so a predicate can assert that
    what it waits on is still alive.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except retry_on as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if value:
                return value
            last = reprlib.repr(value)
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout:g} s for {message}; last seen: {last}")
        time.sleep(interval)
