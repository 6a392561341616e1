"""The plugin's one table: tenant-owned rows."""

from __future__ import annotations

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from backplane import Base, TenantScoped


class BenchItem(TenantScoped, Base):
    __tablename__ = "bench_auth_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
