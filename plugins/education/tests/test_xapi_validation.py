"""Statement validation and the pure parts of the LRS: schemas, query parameters, multipart,
documents' concurrency and merge rules, formats, signatures."""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from backplane_education.xapi import documents, multipart, query, shape, signatures
from backplane_education.xapi.validation import XapiError, check_statement

BASE: dict[str, Any] = {
    "actor": {"mbox": "mailto:ada@example.org", "name": "Ada"},
    "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en-US": "completed"}},
    "object": {"id": "http://example.org/course/1", "definition": {"name": {"en-US": "One"}}},
}


def variant(**changes: Any) -> dict[str, Any]:
    statement = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is None:
            statement.pop(key, None)
        else:
            statement[key] = value
    return statement


def rejects(statement: Any, fragment: str) -> None:
    with pytest.raises(XapiError) as caught:
        check_statement(statement)
    assert caught.value.status == 400
    assert fragment in caught.value.message


def test_a_plain_statement_is_valid() -> None:
    check_statement(BASE)
    check_statement(variant(id="0e4a1b8e-8c1f-4b5e-9d7e-1c2a3b4c5d6e", version="1.0.3"))


@pytest.mark.parametrize(
    ("statement", "fragment"),
    [
        (variant(actor=None), "actor"),
        (variant(Actor={"mbox": "mailto:a@b.c"}), "Actor"),  # keys are case-sensitive
        (variant(actor={"name": "nobody"}), "exactly one"),
        (variant(actor={"mbox": "mailto:a@b.c", "openid": "http://a.b/"}), "more than one"),
        (variant(actor={"mbox": "a@b.c"}), "mailto"),
        (variant(actor={"mbox_sha1sum": "xyz"}), "40 hexadecimal"),
        (variant(actor={"account": {"homePage": "not an iri", "name": "x"}}), "IRI"),
        (variant(actor={"mbox": "mailto:a@b.c", "objectType": "Person"}), "objectType"),
        (variant(actor={"objectType": "Group"}), "exactly one"),
        (
            variant(actor={"objectType": "Group", "member": [{"objectType": "Group"}]}),
            "not a Group",
        ),
        (variant(verb={"id": "completed"}), "verb.id"),
        (variant(verb={"id": "http://a.b/v", "display": {"not a tag!": "x"}}), "language"),
        (variant(verb={"id": "http://a.b/v", "display": None}), "display"),
        (variant(object={"id": "http://a.b/c", "objectType": "Thing"}), "objectType"),
        (variant(object={"objectType": "StatementRef", "id": "nope"}), "UUID"),
        (variant(id="not-a-uuid"), "UUID"),
        (variant(version="0.95"), "version"),
        (variant(timestamp="yesterday"), "timestamp"),
        (variant(timestamp="2024-01-01T00:00:00-00:00"), "timestamp"),
        (variant(result={"score": {"scaled": 1.5}}), "scaled"),
        (variant(result={"score": {"raw": 11, "min": 0, "max": 10}}), "raw"),
        (variant(result={"score": {"min": 5, "max": 5}}), "min"),
        (variant(result={"duration": "ten minutes"}), "duration"),
        (variant(result={"extensions": {"nokey": 1}}), "extensions"),
        (variant(context={"registration": "x"}), "registration"),
        (
            variant(
                object={"objectType": "Agent", "mbox": "mailto:b@c.d"},
                context={"platform": "web"},
            ),
            "platform",
        ),
        (variant(context={"team": {"mbox": "mailto:a@b.c"}}), "team"),
        (
            variant(verb={"id": "http://adlnet.gov/expapi/verbs/voided"}),
            "StatementRef",
        ),
        (
            variant(
                object={
                    "objectType": "SubStatement",
                    "actor": BASE["actor"],
                    "verb": BASE["verb"],
                    "object": {
                        "objectType": "SubStatement",
                        "actor": BASE["actor"],
                        "verb": BASE["verb"],
                        "object": BASE["object"],
                    },
                }
            ),
            "SubStatement",
        ),
        (
            variant(
                object={
                    "objectType": "SubStatement",
                    "id": "0e4a1b8e-8c1f-4b5e-9d7e-1c2a3b4c5d6e",
                    "actor": BASE["actor"],
                    "verb": BASE["verb"],
                    "object": BASE["object"],
                }
            ),
            "id",
        ),
        (
            variant(object={"id": "http://a.b/c", "definition": {"choices": [{"id": "a"}]}}),
            "interactionType",
        ),
        (
            variant(
                attachments=[
                    {
                        "usageType": "http://a.b/u",
                        "display": {"en": "x"},
                        "contentType": "text/plain",
                        "length": 1,
                        "sha2": "abc",
                    }
                ]
            ),
            "sha2",
        ),
        (variant(authority={"objectType": "Group", "member": [{"mbox": "mailto:a@b.c"}]}), "two"),
        ([BASE], "JSON object"),
    ],
)
def test_invalid_statements_are_refused_with_the_property_named(
    statement: Any, fragment: str
) -> None:
    rejects(statement, fragment)


def test_anonymous_groups_sub_statements_and_xapi_2_context_agents_are_valid() -> None:
    check_statement(
        variant(
            actor={"objectType": "Group", "member": [{"mbox": "mailto:a@b.c"}]},
            object={
                "objectType": "SubStatement",
                "actor": BASE["actor"],
                "verb": BASE["verb"],
                "object": BASE["object"],
            },
            context={
                "registration": "0e4a1b8e-8c1f-4b5e-9d7e-1c2a3b4c5d6e",
                "contextActivities": {"parent": {"id": "http://a.b/p"}},
                "contextAgents": [{"objectType": "contextAgent", "agent": BASE["actor"]}],
            },
            result={"score": {"scaled": 0.5, "raw": 5, "min": 0, "max": 10}, "duration": "PT1M"},
        )
    )


def test_query_parameters() -> None:
    parsed = query.parse_statement_query(
        {
            "agent": '{"mbox": "mailto:ada@example.org"}',
            "verb": "http://a.b/v",
            "limit": "5000",
            "since": "2024-01-01T00:00:00Z",
            "related_agents": "true",
        },
        max_limit=500,
    )
    assert parsed.agent == "mbox=mailto:ada@example.org"
    assert parsed.limit == 500
    assert parsed.related_agents
    assert parsed.since is not None
    assert query.parse_statement_query({}, max_limit=100).limit == 100
    for params, fragment in [
        ({"statementId": "0e4a1b8e-8c1f-4b5e-9d7e-1c2a3b4c5d6e", "verb": "http://a"}, "combined"),
        ({"statementId": "x"}, "UUID"),
        ({"agent": "{}"}, "exactly one"),
        ({"agent": "mailto:x"}, "JSON"),
        ({"limit": "-1"}, "limit"),
        ({"format": "pretty"}, "format"),
        ({"ascending": "yes"}, "true or false"),
        ({"since": "2024-01-01T00:00:00"}, "time zone"),
        ({"colour": "red"}, "unknown"),
    ]:
        with pytest.raises(XapiError, match=fragment):
            query.parse_statement_query(params, max_limit=100)


def test_multipart_round_trip_and_hash_checks() -> None:
    content = bytes(range(256)) * 3 + b"\r\n--x\r\n"
    sha2 = hashlib.sha256(content).hexdigest()
    statement = variant(
        attachments=[
            {
                "usageType": "http://a.b/u",
                "display": {"en": "x"},
                "contentType": "application/octet-stream",
                "length": len(content),
                "sha2": sha2,
            }
        ]
    )
    body, content_type = multipart.build_mixed(
        msgspec.json.encode(statement), [multipart.Part(sha2, "application/octet-stream", content)]
    )
    document, parts = multipart.parse_mixed(content_type, body)
    assert document == statement
    assert parts[0].content == content
    assert multipart.check_parts([document], parts) == {sha2: parts[0]}
    with pytest.raises(XapiError, match="neither a part"):
        multipart.check_parts([document], [])
    with pytest.raises(XapiError, match="not attachments"):
        multipart.check_parts([BASE], parts)
    tampered = body.replace(content, content[:-1] + b"X")
    with pytest.raises(XapiError, match="does not match"):
        multipart.parse_mixed(content_type, tampered)
    without_hash = body.replace(b"X-Experience-API-Hash", b"X-Other")
    with pytest.raises(XapiError, match="no X-Experience-API-Hash"):
        multipart.parse_mixed(content_type, without_hash)


def test_document_preconditions_and_merge() -> None:
    tag = documents.etag_of(b"{}")
    check = documents.check_preconditions
    check(if_match=tag, if_none_match=None, current_etag=tag, require_for_existing=True)
    check(if_match=None, if_none_match="*", current_etag=None, require_for_existing=True)
    check(if_match=None, if_none_match=None, current_etag=None, require_for_existing=True)
    for kwargs, status in [
        ({"if_match": '"other"', "if_none_match": None, "current_etag": tag}, 412),
        ({"if_match": "*", "if_none_match": None, "current_etag": None}, 412),
        ({"if_match": None, "if_none_match": "*", "current_etag": tag}, 412),
        ({"if_match": None, "if_none_match": None, "current_etag": tag}, 409),
    ]:
        with pytest.raises(XapiError) as caught:
            check(**kwargs, require_for_existing=True)
        assert caught.value.status == status
    merged = documents.merged(
        b'{"a": 1, "b": 2}', "application/json", b'{"b": 3}', "application/json"
    )
    assert msgspec.json.decode(merged) == {"a": 1, "b": 3}
    with pytest.raises(XapiError):
        documents.merged(b"text", "text/plain", b'{"b": 3}', "application/json")
    with pytest.raises(XapiError):
        documents.merged(None, None, b"[1]", "application/json")


def test_keys_and_formats() -> None:
    statement = variant(
        context={
            "instructor": {"mbox": "mailto:teach@example.org"},
            "contextActivities": {"parent": [{"id": "http://a.b/parent"}]},
            "registration": "0E4A1B8E-8C1F-4B5E-9D7E-1C2A3B4C5D6E",
        },
    )
    keys = shape.keys_of(statement)
    assert keys.actor == "mbox=mailto:ada@example.org"
    assert keys.object_activity == "http://example.org/course/1"
    assert keys.registration == "0e4a1b8e-8c1f-4b5e-9d7e-1c2a3b4c5d6e"
    assert keys.agents == {"mbox=mailto:ada@example.org", "mbox=mailto:teach@example.org"}
    assert keys.activities == {"http://example.org/course/1", "http://a.b/parent"}
    ids = shape.ids_format(statement)
    assert ids["actor"] == {"mbox": "mailto:ada@example.org"}
    assert ids["verb"] == {"id": BASE["verb"]["id"]}
    assert ids["object"] == {"objectType": "Activity", "id": "http://example.org/course/1"}
    canonical = shape.canonical_format(
        statement,
        {"http://example.org/course/1": {"name": {"en-US": "One", "fr": "Un"}}},
        shape.accept_languages("fr;q=0.9, de;q=0.1"),
    )
    assert canonical["object"]["definition"]["name"] == {"fr": "Un"}


def test_signature_payload_must_be_the_statement() -> None:
    from joserfc import jws
    from joserfc.jwk import OctKey, RSAKey

    key = RSAKey.generate_key(2048)
    token = jws.serialize_compact({"alg": "RS256"}, msgspec.json.encode(BASE), key).encode()
    sha2 = hashlib.sha256(token).hexdigest()
    attachment = {
        "usageType": signatures.SIGNATURE_USAGE,
        "display": {"en": "sig"},
        "contentType": "application/octet-stream",
        "length": len(token),
        "sha2": sha2,
    }
    signed = variant(attachments=[attachment], authority={"mbox": "mailto:lrs@example.org"})
    part = multipart.Part(sha2, "application/octet-stream", token)
    signatures.check_signed(signed, {sha2: part})
    changed = variant(attachments=[attachment], verb={"id": "http://a.b/other"})
    with pytest.raises(XapiError, match="does not match"):
        signatures.check_signed(changed, {sha2: part})
    weak = jws.serialize_compact(
        {"alg": "HS256"}, msgspec.json.encode(BASE), OctKey.import_key(b"k" * 32)
    ).encode()
    with pytest.raises(XapiError, match="algorithm"):
        signatures.check_signed(signed, {sha2: multipart.Part(sha2, "x", weak)})
    with pytest.raises(XapiError, match="compact JWS"):
        signatures.check_signed(signed, {sha2: multipart.Part(sha2, "x", b"garbage")})


def _certificate(key: Any) -> str:
    """A self-signed certificate of ``key`` (DER, base64) for an ``x5c`` header."""
    import base64
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "signer")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()


def test_signature_verifies_against_its_x5c_certificate() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from joserfc import jws
    from joserfc.jwk import RSAKey

    signer = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    payload = msgspec.json.encode(BASE)
    for certified, fails in ((signer, False), (other, True)):
        header = {"alg": "RS384", "x5c": [_certificate(certified)]}
        token = jws.serialize_compact(
            header, payload, RSAKey.import_key(signer), algorithms=["RS384"]
        ).encode()
        sha2 = hashlib.sha256(token).hexdigest()
        signed = variant(
            attachments=[
                {
                    "usageType": signatures.SIGNATURE_USAGE,
                    "display": {"en": "sig"},
                    "contentType": "application/octet-stream",
                    "length": len(token),
                    "sha2": sha2,
                }
            ]
        )
        parts = {sha2: multipart.Part(sha2, "application/octet-stream", token)}
        if fails:
            with pytest.raises(XapiError, match="x5c"):
                signatures.check_signed(signed, parts)
        else:
            signatures.check_signed(signed, parts)


def test_more_tokens_carry_the_query_and_position() -> None:
    from backplane_education.xapi import reader

    asked = query.parse_statement_query(
        {"since": "2024-01-01T00:00:00Z", "verb": "http://a.b/v", "ascending": "true"}, 100
    )
    position = (datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC), 42)  # (stored, seq)
    token = reader.encode_more(asked, position)
    assert reader.decode_more(token) == (asked, position)
    for forged in ("not base64!", "e30", token[:-4]):
        with pytest.raises(XapiError, match="more token"):
            reader.decode_more(forged)
