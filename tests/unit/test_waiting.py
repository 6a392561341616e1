"""The tests' one polling helper: returns what came true, or says what never did."""

from __future__ import annotations

import itertools

import pytest

from tests.waiting import wait_for


def test_returns_the_first_true_value() -> None:
    answers = iter([None, [], ["done"]])
    assert wait_for(lambda: next(answers), message="a list", interval=0) == ["done"]


def test_a_timeout_names_what_was_awaited_and_the_last_value() -> None:
    with pytest.raises(AssertionError, match=r"waited 0.05 s for the moon; last seen: 0$"):
        wait_for(lambda: 0, message="the moon", timeout=0.05, interval=0.01)


def test_retried_exceptions_mean_not_yet_and_others_propagate() -> None:
    calls = itertools.count()

    def listening_on_the_third_call() -> int:
        if next(calls) < 2:
            raise ConnectionRefusedError("not listening")
        return 7

    def down() -> int:
        raise ConnectionRefusedError("down")

    found = wait_for(listening_on_the_third_call, message="a server", retry_on=(OSError,))
    assert found == 7
    with pytest.raises(AssertionError, match=r"last seen: ConnectionRefusedError: down$"):
        wait_for(down, message="a server", timeout=0.05, interval=0.01, retry_on=(OSError,))
    with pytest.raises(ZeroDivisionError):
        wait_for(lambda: 1 / 0, message="arithmetic", retry_on=(OSError,))
