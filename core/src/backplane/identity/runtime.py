"""The identity services of one running application, built at start-up and kept on app.state."""

from __future__ import annotations

import time

from backplane.db.engine import Database
from backplane.identity.auth import Authenticator
from backplane.identity.keystore import load_or_create_keyring
from backplane.identity.provision import hasher_for
from backplane.identity.throttle import Throttle, ThrottleSettings, make_throttle
from backplane.identity.tokens import TokenService
from backplane.secret_key import secret_key
from backplane.settings import Settings

IP_ATTEMPTS_FACTOR = 10
"""Per client address, allow this many times the per-account attempts (offices share NAT)."""


class Identity:
    """Tokens, password hashing, login throttles and the authenticator, wired to settings."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        tokens: TokenService,
        role_permissions: dict[str, frozenset[str]],
        platform_permissions: frozenset[str] = frozenset(),
    ) -> None:
        auth = settings.auth
        self.settings = settings
        self.database = database
        self.tokens = tokens
        self.secret = secret_key(settings)
        self.hasher = hasher_for(settings)

        def throttle(attempts: int) -> Throttle:
            limits = ThrottleSettings(max_attempts=attempts, window_s=auth.login_window_s)
            return make_throttle(settings.redis_url, limits)

        self.account_throttle = throttle(auth.login_max_attempts)
        self.address_throttle = throttle(auth.login_max_attempts * IP_ATTEMPTS_FACTOR)
        self.authenticator = Authenticator(
            settings, tokens, database, role_permissions, platform_permissions
        )
        self.authenticator.reload_keyring = lambda: self.refresh_keyring(force=True)
        self._keyring_read = time.monotonic()

    @classmethod
    async def start(
        cls,
        settings: Settings,
        database: Database,
        role_permissions: dict[str, frozenset[str]],
        platform_permissions: frozenset[str] = frozenset(),
    ) -> Identity:
        await database.check_roles()
        keyring = await load_or_create_keyring(database.sessions, secret_key(settings))
        auth = settings.auth
        tokens = TokenService(
            issuer=auth.issuer,
            audience=auth.audience,
            keyring=keyring,
            access_ttl_s=auth.access_ttl_s,
            leeway_s=auth.leeway_s,
        )
        identity = cls(settings, database, tokens, role_permissions, platform_permissions)
        await identity.hasher.warm_up()  # else the first unknown login takes visibly longer
        return identity

    async def refresh_keyring(self, force: bool = False) -> None:
        """Re-read the keyring if it is older than ``auth.keyring_reload_s`` (or ``force``)."""
        age = time.monotonic() - self._keyring_read
        # Even forced re-reads (unknown kid) happen at most once a second: forged tokens with
        # random kids must not turn into a database query each.
        if age < (1.0 if force else self.settings.auth.keyring_reload_s):
            return
        self.tokens.update_keyring(
            await load_or_create_keyring(self.database.sessions, self.secret)
        )
        self._keyring_read = time.monotonic()

    async def close(self) -> None:
        for throttle in (self.account_throttle, self.address_throttle):
            await throttle.aclose()
        self.hasher.close()

    def __repr__(self) -> str:
        return f"Identity(tokens={self.tokens!r})"
