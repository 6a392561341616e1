"""Benchmark plugin for ``bench/tasks``: one no-op task on its own queue, no tables."""
