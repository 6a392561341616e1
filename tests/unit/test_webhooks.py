"""Billing webhooks without a server: the signature scheme, the address rules, pinned
requests, backoff, and sealed secrets."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from datetime import timedelta

import pytest

from backplane.billing.webhooks import InvalidSignatureError, sign, signature_header
from backplane.billing.webhooks import verify_signature as verify
from backplane.billing.webhooks.delivery import backoff
from backplane.billing.webhooks.sealing import SealError, seal, unseal
from backplane.billing.webhooks.sender import pinned_request
from backplane.billing.webhooks.urls import UrlRefusedError, check_url, is_public, parse_url
from backplane.settings import WebhookSettings, load_settings

SECRET = "whsec_test"


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"id":"1"}'
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1700000000, body) == expected
    assert signature_header(SECRET, body, 1700000000) == f"t=1700000000,v1={expected}"
    verify(SECRET, f"t=1700000000,v1={expected}", body, now=1700000100)
    verify(SECRET, f"t=1700000000,v1=00,v1={expected}", body.decode(), now=1700000000)


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (None, "missing"),
        ("", "missing"),
        ("garbage", "malformed"),
        ("t=abc,v1=00", "not an integer"),
        ("v1=00", "no timestamp"),
        ("t=1700000000", "no v1 signature"),
        ("t=1700000000,v1=00", "no signature matches"),
        ("t=1600000000,v1=00", "tolerance"),
    ],
)
def test_verify_names_the_problem(header: str | None, problem: str) -> None:
    with pytest.raises(InvalidSignatureError, match=problem):
        verify(SECRET, header, b"{}", 300, now=1700000000)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.31.255.255", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("255.255.255.255", False),
        ("224.0.0.251", False),
        ("192.0.2.1", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("::ffff:93.184.216.34", True),
        ("2002:7f00:1::1", False),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),
        ("64:ff9b::7f00:1", False),
    ],
)
def test_only_globally_routable_unicast_addresses_are_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


def test_static_url_rules() -> None:
    strict = WebhookSettings()
    assert parse_url("https://hooks.example.org/x?y=1", strict).port == 443
    for url, rule in [
        ("http://hooks.example.org/", "must use https"),
        ("ftp://hooks.example.org/", "must use https"),
        ("https:///nohost", "no host"),
        ("https://user:pw@hooks.example.org/", "credentials"),
        ("https://hooks.example.org/#frag", "fragment"),
        ("https://hooks.example.org:99999/", "not a valid URL"),
        ("https://hooks.example.org/" + "a" * 2100, "longer than"),
    ]:
        with pytest.raises(UrlRefusedError, match=rule):
            parse_url(url, strict)
    assert parse_url("http://h.example/", WebhookSettings(allow_http=True)).port == 80


async def test_private_literals_pass_only_with_the_development_setting() -> None:
    with pytest.raises(UrlRefusedError, match="non-public address ::1"):
        await check_url("https://[::1]/", WebhookSettings())
    target = await check_url("https://[::1]:8443/", WebhookSettings(allow_private_addresses=True))
    assert target.addresses == ("::1",)


def test_pinned_request_targets_the_address_and_keeps_the_name() -> None:
    target = parse_url("https://hooks.example.org:8443/in?x=1", WebhookSettings())
    request = pinned_request(target, "93.184.216.34", b"{}", {"X-A": "1"})
    assert str(request.url) == "https://93.184.216.34:8443/in?x=1"
    assert request.headers["host"] == "hooks.example.org:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.org"
    v6 = pinned_request(parse_url("https://h.example/", WebhookSettings()), "2606:4700::1", b"", {})
    assert str(v6.url) == "https://[2606:4700::1]/"
    assert v6.headers["host"] == "h.example"


def test_backoff_doubles_up_to_the_cap() -> None:
    config = WebhookSettings(backoff_s=30, max_backoff_s=300)
    assert [backoff(config, n) for n in (1, 2, 3, 4, 5, 9)] == [
        timedelta(seconds=s) for s in (30, 60, 120, 240, 300, 300)
    ]


def test_sealed_secrets_need_the_same_installation_secret() -> None:
    sealed = seal(SECRET, "a" * 40)
    assert SECRET not in sealed
    assert unseal(sealed, "a" * 40) == SECRET
    with pytest.raises(SealError, match="BACKPLANE_SECRET_KEY"):
        unseal(sealed, "b" * 40)


def test_settings_come_from_the_environment() -> None:
    settings = load_settings(
        environ={
            "BACKPLANE_WEBHOOKS__ALLOW_PRIVATE_ADDRESSES": "true",
            "BACKPLANE_WEBHOOKS__MAX_ATTEMPTS": "4",
        }
    )
    assert settings.webhooks.allow_private_addresses is True
    assert settings.webhooks.max_attempts == 4
    assert settings.webhooks.allow_http is False
