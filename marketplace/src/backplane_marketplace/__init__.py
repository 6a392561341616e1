"""Backplane's model marketplace: publishers with Ed25519 signing keys, reviewed by platform
operators (see ``plugin.py`` for the hooks and the README for what is built so far)."""
