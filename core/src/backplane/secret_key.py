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
