"""Where kernel code running in a request finds the process's services (kernel-internal).

The application keeps one :class:`backplane.kernel.Rails` in its state; route handlers and
guards of the kernel reach it through :func:`rails_of`, plugins only through their kernel view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from backplane.kernel import Rails

RAILS = "backplane"
"""The key of the application's state under which its rails are kept."""


def rails_of(connection: Any) -> Rails:
    """The rails of the application serving ``connection`` (a request or a websocket)."""
    rails: Rails = connection.app.state[RAILS]
    return rails
