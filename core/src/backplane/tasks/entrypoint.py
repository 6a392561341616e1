"""Module imported by each ``dramatiq`` worker process that ``backplane worker`` starts.

dramatiq's own CLI owns processes, threads, queue selection, signals and graceful shutdown
(in-flight messages finish or return to the queue); this module only builds the runtime and
hooks its loop, relay and scheduler to the worker's lifecycle.
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

from backplane.kernel import Rails
from backplane.loading import load_plugins
from backplane.mounts import claim_paths
from backplane.settings import load_settings
from backplane.tasks.runtime import TaskRuntime


class _RuntimeLifecycle(Middleware):
    def __init__(self, runtime: TaskRuntime) -> None:
        self.runtime = runtime

    def before_worker_boot(self, broker: Any, worker: Any) -> None:
        self.runtime.start(relay=True, scheduler=True)

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        self.runtime.stop()


_settings = load_settings()
_plugins = load_plugins(_settings)
claim_paths(_plugins)  # skips what the server skips: a plugin refused for its paths
runtime = Rails.build(_settings, _plugins).tasks
runtime.broker.add_middleware(_RuntimeLifecycle(runtime))
dramatiq.set_broker(runtime.broker)
broker = runtime.broker
