"""``Kernel.deployment_key``: an Ed25519 key derived from the installation's secret, one per
plugin and purpose, the same in every process, rotated with the secret."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from backplane.kernel import Kernel, Rails
from backplane.secret_key import DeploymentKey
from backplane.settings import Settings


def _verify(key: DeploymentKey, signature: str, message: bytes) -> None:
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(key.public_key))
    public.verify(base64.b64decode(signature), message)


def test_signatures_verify_with_the_shown_public_key_and_only_for_their_message() -> None:
    key = DeploymentKey("an installation secret", "marketplace", "catalog")
    signature = key.sign(b"the catalog")
    _verify(key, signature, b"the catalog")
    with pytest.raises(InvalidSignature):
        _verify(key, signature, b"the catalog, changed")
    assert len(base64.b64decode(key.public_key)) == 32
    assert "secret" not in repr(key)


def test_keys_are_stable_and_separate_by_plugin_purpose_and_secret() -> None:
    same = DeploymentKey("s1", "marketplace", "catalog").public_key
    assert DeploymentKey("s1", "marketplace", "catalog").public_key == same
    others = {
        DeploymentKey("s2", "marketplace", "catalog").public_key,
        DeploymentKey("s1", "other", "catalog").public_key,
        DeploymentKey("s1", "marketplace", "receipts").public_key,
    }
    assert same not in others
    assert len(others) == 3


def test_the_kernel_derives_it_from_the_data_directory_s_secret(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    rails = Rails.__new__(Rails)  # only settings are read
    rails.settings = settings
    first = Kernel(rails, "marketplace").deployment_key("catalog")
    again = Kernel(rails, "marketplace").deployment_key("catalog")
    assert first.public_key == again.public_key
    assert Kernel(rails, "other").deployment_key("catalog").public_key != first.public_key
    for bad in ("", "UPPER", "a/b", "x" * 51):
        with pytest.raises(ValueError, match="purpose"):
            Kernel(rails, "marketplace").deployment_key(bad)
    secret = (tmp_path / "secret_key").read_text().strip()
    assert DeploymentKey(secret, "marketplace", "catalog").public_key == first.public_key
