"""``db check`` compares the tables of the kernel and of loaded plugins only: plugins share one
``MetaData``, so an installed plugin that is not enabled (here the documents plugin, whose
models a test imported) has tables there that the database rightly lacks."""

from __future__ import annotations

from pathlib import Path

from backplane.db.base import Base
from backplane.db.migrations import alembic_config, foreign_tables
from backplane.loading import load_plugins
from tests.conftest import make_settings


def test_tables_of_plugins_that_are_not_loaded_are_left_out(data_dir: Path) -> None:
    import backplane_documents.models  # noqa: F401 - its tables join the shared metadata

    only_sink = load_plugins(make_settings(data_dir, {"BACKPLANE_PLUGINS": "kitchen_sink"}))
    foreign = foreign_tables(only_sink, [Base.metadata])
    assert "documents_templates" in foreign
    assert "kitchen_sink_notes" not in foreign  # a loaded plugin's
    assert "backplane_tenants" not in foreign  # the kernel's
    assert alembic_config(only_sink).attributes["foreign_tables"] == foreign
    both = load_plugins(make_settings(data_dir, {"BACKPLANE_PLUGINS": "kitchen_sink,documents"}))
    assert "documents_templates" not in foreign_tables(both, [Base.metadata])
