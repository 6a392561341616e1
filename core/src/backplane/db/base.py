"""The declarative base shared by the kernel and plugins.

One ``MetaData`` with a naming convention, so constraint names are stable across SQLite and
PostgreSQL and alembic autogenerate (``backplane db check``) compares like with like.
"""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Subclass this for tables; prefix table names with your plugin name."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
