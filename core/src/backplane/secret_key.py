"""The server's signing secret (kernel-internal: never on what plugins receive).

It signs API keys (an HMAC); the token keyring, webhook secrets and DKIM keys are sealed with
keys derived from it (:func:`sealing_key`). It comes from
``secret_key`` in the settings, or from ``<data dir>/secret_key``, generated once. The settings a
plugin's kernel carries have no secret key, and nothing public returns one.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import os
import secrets
import tempfile

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from backplane.settings import PUBLIC_VIEW, SECRET_KEY_FILE, Settings


def secret_key(settings: Settings) -> str:
    """The configured secret, or the one kept in the data directory (created once); refused
    for the settings a kernel hands plugins, which have none.

    Written to a private temporary file and published with ``os.link``, which fails if the
    file exists: concurrently starting workers all end up reading the one complete value.
    """
    if PUBLIC_VIEW in settings.sources:
        raise PermissionError("settings handed to plugins carry no secret key")
    if settings.secret_key:
        return settings.secret_key
    path = settings.data_dir / SECRET_KEY_FILE
    if path.exists():
        return path.read_text().strip()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=settings.data_dir, prefix=".secret_key.")
    try:
        with os.fdopen(fd, "w") as handle:  # mkstemp creates the file with mode 0600
            handle.write(secrets.token_urlsafe(48))
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
    return path.read_text().strip()


@functools.lru_cache(maxsize=32)
def sealing_key(app_secret: str, purpose: str) -> Fernet:
    """The Fernet key that seals one kind of secret at rest (the signing keyring, webhook
    secrets, DKIM keys): HKDF-SHA256 of the installation's ``secret_key`` with ``purpose`` as
    the salt, so each kind's key is independent of the others and a database dump alone opens
    none of them."""
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=purpose.encode(), info=b"fernet v1"
    ).derive(app_secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


class DeploymentKey:
    """An Ed25519 key pair of this deployment for one plugin and purpose
    (:meth:`backplane.Kernel.deployment_key`): it signs, and shows its public half; the
    private half never leaves it.

    Derived with HKDF-SHA256 from the installation's ``secret_key`` (generated once in the data
    directory, or configured), with the plugin and purpose as the salt: every process of the
    deployment holds the same key without storing it anywhere else, each plugin's and
    purpose's key is independent of the others, and changing ``secret_key`` rotates them all.
    """

    __slots__ = ("_private", "public_key")

    def __init__(self, app_secret: str, plugin: str, purpose: str) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        seed = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=f"deployment-key:{plugin}:{purpose}".encode(),
            info=b"ed25519 v1",
        ).derive(app_secret.encode())
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        raw = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_key: str = base64.b64encode(raw).decode()
        """The public key: standard base64 of its 32 raw bytes (what others pin)."""

    def sign(self, message: bytes) -> str:
        """The Ed25519 signature of ``message``: standard base64 of its 64 raw bytes."""
        return base64.b64encode(self._private.sign(message)).decode()

    def __repr__(self) -> str:
        return f"DeploymentKey(public_key={self.public_key!r})"


@functools.lru_cache(maxsize=32)
def deployment_key(app_secret: str, plugin: str, purpose: str) -> DeploymentKey:
    """The :class:`DeploymentKey` of ``plugin`` for ``purpose`` (cached: derivation is cheap,
    but signing often is the point)."""
    return DeploymentKey(app_secret, plugin, purpose)
