"""What a kernel test may look at inside a running application: its rails (the services the
kernel facade is a view of). Plugin code never gets these; kernel tests check them."""

from __future__ import annotations

from typing import Any

from backplane.kernel import Rails
from backplane.state import RAILS


def rails(app: Any) -> Rails:
    """The rails of a Litestar app built by ``create_app``."""
    found: Rails = app.state[RAILS]
    return found
