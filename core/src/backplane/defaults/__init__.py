"""The kernel's own contributions, one module a concern, registered through the same hooks a
plugin would use (datasette's ``default_*`` modules are the model).

Because the defaults are ordinary hook implementations, a plugin can add to or replace any of
them (an auth backend, an inference runtime, a storage backend, a billing provider), and the
contract is exercised by the kernel itself on every start. They are all plugin ``core``: their
routes mount under ``/api``, their tasks are named ``core.<function>``.
"""

from __future__ import annotations

CONCERNS = (
    "database",
    "identity",
    "billing",
    "inference",
    "storage",
    "files",
    "tasks",
    "health",
    "mail",
    "live",
    "audit",
    "privacy",
    "training",
)
"""The default modules, registered in this order as ``core.<concern>``."""
