"""Every plugin's tenant tables are covered by the data-rights hooks (issue 19).

A ``TenantScoped`` table of a loaded plugin (the kernel, the sample plugins) must belong to a
plugin implementing ``export_tenant_data`` or ``erase_subject``, and reference its tenant with
a cascading foreign key: a plugin that forgets either fails here, named with its table.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import ForeignKeyConstraint, Integer, MetaData
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backplane import TenantScoped, hookimpl
from backplane.loading import load_plugins
from backplane.plugins import PluginRecord, PluginSet
from backplane.privacy.tables import coverage_problems, tenant_scoped_classes, tenant_tables
from tests.conftest import make_settings


@pytest.fixture
def plugins(data_dir: Path) -> PluginSet:
    return load_plugins(make_settings(data_dir))


def test_every_loaded_plugins_tenant_tables_are_covered(plugins: PluginSet) -> None:
    owners = {(owner, table.name) for owner, _cls, table in tenant_scoped_classes(plugins)}
    # The walk finds the kernel's tables and the sample plugin's (it must not find nothing).
    assert ("core", "backplane_memberships") in owners
    assert ("kitchen_sink", "kitchen_sink_notes") in owners
    assert ("kitchen_sink", "kitchen_sink_task_log") in owners
    assert coverage_problems(plugins) == []


def test_tenant_tables_come_children_first(plugins: PluginSet) -> None:
    from backplane.privacy.tables import registered_metadata

    order = [t.name for t in tenant_tables(registered_metadata(plugins))]
    assert order.index("backplane_webhook_deliveries") < order.index("backplane_webhook_events")
    assert order.index("backplane_invoice_lines") < order.index("backplane_invoices")
    assert "backplane_tenants" not in order
    assert "backplane_users" not in order


class _Base(DeclarativeBase):
    """A metadata of the test's own: the shared one must not gain tables other tests see."""

    metadata = MetaData()


class _Orphan(TenantScoped, _Base):
    """A table of a plugin that implements neither hook, nor references its tenant."""

    __tablename__ = "privacy_orphans"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)


class _Referencing(TenantScoped, _Base):
    __tablename__ = "privacy_referencing"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["backplane_tenants.id"], ondelete="CASCADE"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)


def _with_plugin(plugins: PluginSet, name: str, module: Any) -> None:
    """Register ``module`` as loaded plugin ``name``, owning this test module's tables."""
    plugins.manager.register(module, name=name)
    plugins.records[name] = PluginRecord(name=name, module=__name__, status="loaded")
    plugins.order.append(name)


def test_a_plugin_implementing_neither_hook_fails(plugins: PluginSet) -> None:
    module = types.ModuleType("careless")

    @hookimpl
    def register_migrations(register: Any) -> None:
        register(Path(__file__).parent, branch="careless", metadata=_Base.metadata)

    module.register_migrations = register_migrations  # type: ignore[attr-defined]
    _with_plugin(plugins, "careless", module)
    problems = coverage_problems(plugins)
    assert (
        "privacy_orphans (plugin careless): the plugin implements neither "
        "export_tenant_data nor erase_subject" in problems
    )
    assert (
        "privacy_orphans (plugin careless): tenant_id has no foreign key to "
        "backplane_tenants.id with ondelete='CASCADE'" in problems
    )
    assert not [p for p in problems if p.startswith("privacy_referencing") and "foreign" in p]

    @hookimpl
    def erase_subject(kernel: Any, subject: Any) -> None:
        return None

    module.erase_subject = erase_subject  # type: ignore[attr-defined]
    plugins.manager.unregister(module)
    plugins.manager.register(module, name="careless")
    assert [p for p in coverage_problems(plugins) if "neither" in p] == []
