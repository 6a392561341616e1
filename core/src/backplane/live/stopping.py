"""Ending open streams as soon as the server is asked to stop.

uvicorn, on SIGTERM or SIGINT, stops accepting connections and then waits for open responses
to finish before the application's shutdown runs; an event stream never finishes by itself,
so that wait would last until ``server.shutdown_timeout_s`` cuts it. The handler uvicorn
installed is wrapped: the hub ends every stream (clients reconnect elsewhere with their
``Last-Event-ID``), then uvicorn's own handler runs. Only in the main thread, where signal
handlers live (a test client runs the application in another thread: nothing to wrap).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from backplane.live.hub import LiveHub

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def drain_on_exit_signals(hub: LiveHub) -> Callable[[], None]:
    """Wrap the current SIGINT/SIGTERM handlers; returns what puts them back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}

    def handle(sig: int, frame: Any) -> None:
        hub.drain()
        handler = previous[signal.Signals(sig)]
        if callable(handler):
            handler(sig, frame)
        elif handler == signal.SIG_DFL:  # what the signal would have done
            signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)

    for sig in SIGNALS:
        signal.signal(sig, handle)

    def restore() -> None:
        for sig, handler in previous.items():
            if signal.getsignal(sig) is handle:
                signal.signal(sig, handler)

    return restore
