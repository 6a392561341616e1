"""The kernel's tables and their migrations."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from backplane.hookspecs import hookimpl


@hookimpl
def register_migrations(register: Any) -> None:
    import backplane.accounts.models
    import backplane.billing.models
    import backplane.billing.plan_models
    import backplane.billing.webhooks.models
    import backplane.db.models
    import backplane.files.models
    import backplane.identity.models
    import backplane.inference.alias_models
    import backplane.inference.models
    import backplane.inference.schedule_models
    import backplane.inference.training_runs
    import backplane.mail.models
    import backplane.tasks.models  # noqa: F401
    from backplane.db.base import Base

    register(files("backplane") / "migrations" / "versions", branch="core", metadata=Base.metadata)
