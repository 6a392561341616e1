"""Privileges for the application's database role on PostgreSQL.

Production runs two roles: migrations run as the owner of the tables, the application connects as
``db.app_role``, which owns nothing and cannot bypass row-level security. After every upgrade the
kernel grants that role exactly the DML it needs on every table and sequence, so a plugin's new
tables are usable without hand-written grants.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import text

_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}\Z")


def grant_app_role(connection: Any, role: str) -> None:
    """Grant DML on all tables and usage on all sequences in ``public`` to ``role``."""
    if connection.dialect.name != "postgresql":
        return
    if not _ROLE_NAME.match(role):
        raise ValueError(f"BACKPLANE_DB__APP_ROLE: {role!r} is not a plain PostgreSQL role name")
    connection.execute(
        text(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"')
    )
    connection.execute(text(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}"'))
