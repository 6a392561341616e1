"""A task function (wrapped into a dramatiq actor by the kernel once tasks land)."""

from __future__ import annotations


def count_notes() -> int:
    return 0
