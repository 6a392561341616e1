"""Test seeding comes from the public pytest plugin, as plugin authors use it."""

from __future__ import annotations

from backplane.testing import CHEAP_PASSWORD_HASHING as TEST_PASSWORD_ENV
from backplane.testing import TEST_PASSWORD as PASSWORD
from backplane.testing import SeededTenant as Seeded
from backplane.testing import seed_tenant

__all__ = ["PASSWORD", "TEST_PASSWORD_ENV", "Seeded", "seed_tenant"]
