"""Benchmark plugin for ``bench/auth``: a tenant-scoped table read by one authenticated GET."""
