"""The audit trail: an append-only, hash-chained record of each tenant's security-relevant
actions.

- :mod:`~backplane.audit.models`: the rows and each tenant's chain head;
- :mod:`~backplane.audit.chain`: the canonical hash and appending under the head's lock;
- :mod:`~backplane.audit.record`: :func:`record`, the one way rows are written, and the
  kernel's action codes; :mod:`~backplane.audit.service` is ``kernel.audit`` for plugins;
- :mod:`~backplane.audit.actor`: who acted (the request's caller, the CLI operator, the system);
- :mod:`~backplane.audit.verify`: checking the chains (``backplane audit verify``);
- :mod:`~backplane.audit.erase`: removing a deleted tenant's trail (kernel-internal);
- :mod:`~backplane.audit.routes`: ``GET /api/audit``.

Where the kernel records (all in the acting transaction): logins and login failures
(:mod:`backplane.identity.routes`), refresh-token reuse (:mod:`backplane.identity.sessions`),
tenants, members, API keys and plugin switches (:mod:`backplane.identity`), model uploads
and deletions (:mod:`backplane.inference.registry`), plan changes
(:mod:`backplane.billing.subscriptions`). A failed login for an email no account has belongs
to no tenant: it goes to the ``backplane.audit`` log only.

Nothing is imported here: ``backplane.audit.actor`` is imported by every CLI command and
must stay light (no SQLAlchemy).
"""
