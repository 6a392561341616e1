"""xAPI 1.0.3 statement shapes as msgspec structs (Part Two, "Statements").

Why structs and not a JSON schema: msgspec refuses unknown (case-sensitive) properties and
``null`` where the specification allows neither, in one C pass; :mod:`.validation` adds the
rules a type cannot say (one inverse functional identifier, IRIs, score ranges, ...). The
stored statement is the client's JSON as given (plus what the LRS sets), never re-serialised
from these structs, so ``format=exact`` returns what was sent.

The object of a statement is polymorphic and its ``objectType`` may be absent (an Activity), so
it stays a mapping here and :func:`backplane_education.xapi.validation.check_object` picks the
struct by ``objectType``.
"""

# The property names are xAPI's wire names (camelCase, case-sensitive), kept as they are.
# ruff: noqa: N815

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

LanguageMap = dict[str, str]
Extensions = dict[str, Any]


class _Strict(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Unknown properties are a 400: the specification lists every property of every object."""


class Account(_Strict):
    homePage: str
    name: str


class Agent(_Strict):
    objectType: str | UnsetType = UNSET
    name: str | UnsetType = UNSET
    mbox: str | UnsetType = UNSET
    mbox_sha1sum: str | UnsetType = UNSET
    openid: str | UnsetType = UNSET
    account: Account | UnsetType = UNSET


class Group(_Strict):
    objectType: str
    name: str | UnsetType = UNSET
    mbox: str | UnsetType = UNSET
    mbox_sha1sum: str | UnsetType = UNSET
    openid: str | UnsetType = UNSET
    account: Account | UnsetType = UNSET
    member: list[dict[str, Any]] | UnsetType = UNSET


class Verb(_Strict):
    id: str
    display: LanguageMap | UnsetType = UNSET


class InteractionComponent(_Strict):
    id: str
    description: LanguageMap | UnsetType = UNSET


class ActivityDefinition(_Strict):
    name: LanguageMap | UnsetType = UNSET
    description: LanguageMap | UnsetType = UNSET
    type: str | UnsetType = UNSET
    moreInfo: str | UnsetType = UNSET
    extensions: Extensions | UnsetType = UNSET
    interactionType: str | UnsetType = UNSET
    correctResponsesPattern: list[str] | UnsetType = UNSET
    choices: list[InteractionComponent] | UnsetType = UNSET
    scale: list[InteractionComponent] | UnsetType = UNSET
    source: list[InteractionComponent] | UnsetType = UNSET
    target: list[InteractionComponent] | UnsetType = UNSET
    steps: list[InteractionComponent] | UnsetType = UNSET


class Activity(_Strict):
    id: str
    objectType: str | UnsetType = UNSET
    definition: ActivityDefinition | UnsetType = UNSET


class StatementRef(_Strict):
    objectType: str
    id: str


class Score(_Strict):
    scaled: float | UnsetType = UNSET
    raw: float | UnsetType = UNSET
    min: float | UnsetType = UNSET
    max: float | UnsetType = UNSET


class Result(_Strict):
    score: Score | UnsetType = UNSET
    success: bool | UnsetType = UNSET
    completion: bool | UnsetType = UNSET
    response: str | UnsetType = UNSET
    duration: str | UnsetType = UNSET
    extensions: Extensions | UnsetType = UNSET


ActivityList = list[dict[str, Any]] | dict[str, Any]


class ContextActivities(_Strict):
    parent: ActivityList | UnsetType = UNSET
    grouping: ActivityList | UnsetType = UNSET
    category: ActivityList | UnsetType = UNSET
    other: ActivityList | UnsetType = UNSET


class Context(_Strict):
    registration: str | UnsetType = UNSET
    instructor: dict[str, Any] | UnsetType = UNSET
    team: dict[str, Any] | UnsetType = UNSET
    contextActivities: ContextActivities | UnsetType = UNSET
    revision: str | UnsetType = UNSET
    platform: str | UnsetType = UNSET
    language: str | UnsetType = UNSET
    statement: StatementRef | UnsetType = UNSET
    extensions: Extensions | UnsetType = UNSET
    contextAgents: list[dict[str, Any]] | UnsetType = UNSET
    """xAPI 2.0 (IEEE 9274.1.1), accepted: it extends 1.0.3 compatibly."""
    contextGroups: list[dict[str, Any]] | UnsetType = UNSET


class AttachmentInfo(_Strict):
    usageType: str
    display: LanguageMap
    contentType: str
    length: int
    sha2: str
    description: LanguageMap | UnsetType = UNSET
    fileUrl: str | UnsetType = UNSET


class SubStatement(_Strict):
    objectType: str
    actor: dict[str, Any]
    verb: Verb
    object: dict[str, Any]
    result: Result | UnsetType = UNSET
    context: Context | UnsetType = UNSET
    timestamp: str | UnsetType = UNSET
    attachments: list[AttachmentInfo] | UnsetType = UNSET


class Statement(_Strict):
    actor: dict[str, Any]
    verb: Verb
    object: dict[str, Any]
    id: str | UnsetType = UNSET
    result: Result | UnsetType = UNSET
    context: Context | UnsetType = UNSET
    timestamp: str | UnsetType = UNSET
    stored: str | UnsetType = UNSET
    authority: dict[str, Any] | UnsetType = UNSET
    version: str | UnsetType = UNSET
    attachments: list[AttachmentInfo] | UnsetType = UNSET
    objectType: str | UnsetType = UNSET


class AgentParam(_Strict):
    """The ``agent`` query parameter: an Agent or identified Group, as JSON."""

    objectType: str | UnsetType = UNSET
    name: str | UnsetType = UNSET
    mbox: str | UnsetType = UNSET
    mbox_sha1sum: str | UnsetType = UNSET
    openid: str | UnsetType = UNSET
    account: Account | UnsetType = UNSET
    member: list[dict[str, Any]] | UnsetType = UNSET


class About(msgspec.Struct):
    version: list[str]
    extensions: dict[str, Any] = msgspec.field(default_factory=dict)


class StatementResult(msgspec.Struct):
    statements: list[Any]
    more: str = ""
