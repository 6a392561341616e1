"""No kernel module takes part in an import cycle, imports inside functions included.

Issue 16 found 26 kernel modules in one cycle (plugins -> defaults -> billing <-> identity): a
lazy import inside a function hides a cycle from Python, not from the design. The layers
themselves are import-linter's contract (``[tool.importlinter]`` in pyproject.toml,
``lint-imports`` in ``tox -e lint``); this test needs no configuration.
"""

from __future__ import annotations

import grimp


def test_no_module_is_part_of_an_import_cycle() -> None:
    graph = grimp.build_graph(
        "backplane", include_external_packages=False, exclude_type_checking_imports=True
    )
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back is not None:
                cycles.append(" -> ".join((module, *back)))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
