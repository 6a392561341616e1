"""Statement validation: the rules of xAPI 1.0.3 Part Two a type alone cannot state.

Every failure raises :class:`XapiError` with status 400 and a message naming the property, so a
client learns what to fix (the specification asks the LRS to reject, not to repair).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import msgspec

from backplane_education.xapi import schemas

VOIDED = "http://adlnet.gov/expapi/verbs/voided"
IFI_KEYS = ("mbox", "mbox_sha1sum", "openid", "account")
INTERACTION_TYPES = frozenset(
    {
        "true-false",
        "choice",
        "fill-in",
        "long-fill-in",
        "matching",
        "performance",
        "sequencing",
        "likert",
        "numeric",
        "other",
    }
)
_COMPONENT_LISTS = ("choices", "scale", "source", "target", "steps")
_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s]*$")
_LANG = re.compile(r"^(?:[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*|\*)$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_SHA1 = re.compile(r"^[0-9a-fA-F]{40}$")
_SHA2 = re.compile(r"^[0-9a-fA-F]{56}$|^[0-9a-fA-F]{64}$|^[0-9a-fA-F]{96}$|^[0-9a-fA-F]{128}$")
_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?$"
)
_DURATION = re.compile(
    r"^P(?!$)(?:\d+(?:\.\d+)?Y)?(?:\d+(?:\.\d+)?M)?(?:\d+(?:\.\d+)?W)?(?:\d+(?:\.\d+)?D)?"
    r"(?:T(?=\d)(?:\d+(?:\.\d+)?H)?(?:\d+(?:\.\d+)?M)?(?:\d+(?:\.\d+)?S)?)?$"
)
_VERSION = re.compile(r"^(?:1\.0(?:\.\d+)?|2\.0(?:\.\d+)?)$")


class XapiError(Exception):
    """A request the LRS refuses, with the specification's status for it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad(message: str) -> XapiError:
    return XapiError(400, message)


def is_uuid(value: Any) -> bool:
    return isinstance(value, str) and _UUID.match(value) is not None


def check_iri(value: Any, where: str) -> None:
    if not isinstance(value, str) or not _IRI.match(value):
        raise bad(f"{where} must be an IRI, got {value!r}")


def check_language_map(value: Any, where: str) -> None:
    for tag in value:
        if not _LANG.match(tag):
            raise bad(f"{where}: {tag!r} is not an RFC 5646 language tag")


def check_extensions(value: Any, where: str) -> None:
    for key in value:
        check_iri(key, f"{where} key")


def check_timestamp(value: str, where: str) -> None:
    if not _TIMESTAMP.match(value) or value.endswith("-00:00") or value.endswith("-0000"):
        raise bad(f"{where} must be an ISO 8601 timestamp, got {value!r}")


def _convert(value: Any, kind: type[Any], where: str) -> Any:
    if not isinstance(value, dict):
        raise bad(f"{where} must be a JSON object")
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as error:
        raise bad(f"{where}: {error}") from None


def agent_ifi(agent: dict[str, Any]) -> str | None:
    """The canonical identifier of an Agent or identified Group (``mbox=mailto:a@b``), the key
    the store indexes and documents are filed under; None for an anonymous Group."""
    for key in IFI_KEYS:
        if key in agent:
            value = agent[key]
            if key == "account":
                return f"account={value.get('homePage')}|{value.get('name')}"
            return f"{key}={value}"
    return None


def _check_ifi(struct: Any, where: str, *, required: bool) -> None:
    present = [k for k in IFI_KEYS if getattr(struct, k) is not msgspec.UNSET]
    if len(present) > 1:
        raise bad(f"{where} has more than one inverse functional identifier: {present}")
    if required and not present:
        raise bad(f"{where} needs exactly one of mbox, mbox_sha1sum, openid, account")
    if struct.mbox is not msgspec.UNSET and not re.match(r"^mailto:[^@\s]+@[^@\s]+$", struct.mbox):
        raise bad(f"{where}.mbox must be a mailto: IRI, got {struct.mbox!r}")
    if struct.mbox_sha1sum is not msgspec.UNSET and not _SHA1.match(struct.mbox_sha1sum):
        raise bad(f"{where}.mbox_sha1sum must be 40 hexadecimal digits")
    if struct.openid is not msgspec.UNSET:
        check_iri(struct.openid, f"{where}.openid")
    if struct.account is not msgspec.UNSET:
        check_iri(struct.account.homePage, f"{where}.account.homePage")


def check_agent(value: Any, where: str, *, groups: bool = True) -> None:
    """An Agent, or (where ``groups``) a Group whose members are Agents."""
    if isinstance(value, dict) and value.get("objectType") == "Group":
        if not groups:
            raise bad(f"{where} must be an Agent, not a Group")
        group = _convert(value, schemas.Group, where)
        members = [] if group.member is msgspec.UNSET else group.member
        _check_ifi(group, where, required=not members)
        for index, member in enumerate(members):
            check_agent(member, f"{where}.member[{index}]", groups=False)
        return
    agent = _convert(value, schemas.Agent, where)
    if agent.objectType not in (msgspec.UNSET, "Agent"):
        raise bad(f"{where}.objectType must be Agent or Group, got {agent.objectType!r}")
    _check_ifi(agent, where, required=True)


def check_activity(value: Any, where: str) -> None:
    activity = _convert(value, schemas.Activity, where)
    if activity.objectType not in (msgspec.UNSET, "Activity"):
        raise bad(f"{where}.objectType must be Activity")
    check_iri(activity.id, f"{where}.id")
    if activity.definition is not msgspec.UNSET:
        _check_definition(activity.definition, f"{where}.definition")


def _check_definition(definition: schemas.ActivityDefinition, where: str) -> None:
    for name in ("name", "description"):
        if getattr(definition, name) is not msgspec.UNSET:
            check_language_map(getattr(definition, name), f"{where}.{name}")
    if definition.type is not msgspec.UNSET:
        check_iri(definition.type, f"{where}.type")
    if definition.moreInfo is not msgspec.UNSET:
        check_iri(definition.moreInfo, f"{where}.moreInfo")
    if definition.extensions is not msgspec.UNSET:
        check_extensions(definition.extensions, f"{where}.extensions")
    interaction = definition.interactionType
    if interaction is not msgspec.UNSET and interaction not in INTERACTION_TYPES:
        raise bad(f"{where}.interactionType {interaction!r} is not one of xAPI's")
    for name in (*_COMPONENT_LISTS, "correctResponsesPattern"):
        if getattr(definition, name) is not msgspec.UNSET and interaction is msgspec.UNSET:
            raise bad(f"{where}.{name} needs an interactionType")
    _check_components(definition, where)


def _check_components(definition: schemas.ActivityDefinition, where: str) -> None:
    for name in _COMPONENT_LISTS:
        components = getattr(definition, name)
        if components is msgspec.UNSET:
            continue
        ids = [c.id for c in components]
        if len(set(ids)) != len(ids):
            raise bad(f"{where}.{name} repeats an id")
        for component in components:
            if component.description is not msgspec.UNSET:
                check_language_map(component.description, f"{where}.{name}")


def check_object(value: Any, where: str, *, sub: bool) -> None:
    """The statement's object, by its ``objectType`` (absent: an Activity)."""
    if not isinstance(value, dict):
        raise bad(f"{where} must be a JSON object")
    kind = value.get("objectType", "Activity")
    if kind == "Activity":
        check_activity(value, where)
    elif kind in ("Agent", "Group"):
        check_agent(value, where)
    elif kind == "StatementRef":
        ref = _convert(value, schemas.StatementRef, where)
        if not is_uuid(ref.id):
            raise bad(f"{where}.id must be a UUID")
    elif kind == "SubStatement":
        if sub:
            raise bad(f"{where}: a SubStatement cannot contain a SubStatement")
        check_statement(value, where=where, sub=True)
    else:
        raise bad(f"{where}.objectType {kind!r} is not one of xAPI's")


def _activity_list(value: Any, where: str) -> None:
    for index, activity in enumerate(value if isinstance(value, list) else [value]):
        check_activity(activity, f"{where}[{index}]")


def check_context(context: schemas.Context, object_kind: str, where: str) -> None:
    if context.registration is not msgspec.UNSET and not is_uuid(context.registration):
        raise bad(f"{where}.registration must be a UUID")
    if context.instructor is not msgspec.UNSET:
        check_agent(context.instructor, f"{where}.instructor")
    if context.team is not msgspec.UNSET:
        if context.team.get("objectType") != "Group":
            raise bad(f"{where}.team must be a Group")
        check_agent(context.team, f"{where}.team")
    if context.contextActivities is not msgspec.UNSET:
        for name in ("parent", "grouping", "category", "other"):
            value = getattr(context.contextActivities, name)
            if value is not msgspec.UNSET:
                _activity_list(value, f"{where}.contextActivities.{name}")
    if object_kind != "Activity":
        for name in ("revision", "platform"):
            if getattr(context, name) is not msgspec.UNSET:
                raise bad(f"{where}.{name} is only allowed when the object is an Activity")
    _check_context_rest(context, where)


def _check_context_rest(context: schemas.Context, where: str) -> None:
    if context.language is not msgspec.UNSET and not _LANG.match(context.language):
        raise bad(f"{where}.language must be an RFC 5646 language tag")
    statement = context.statement
    if statement is not msgspec.UNSET and (
        statement.objectType != "StatementRef" or not is_uuid(statement.id)
    ):
        raise bad(f"{where}.statement must be a StatementRef with a UUID id")
    if context.extensions is not msgspec.UNSET:
        check_extensions(context.extensions, f"{where}.extensions")
    for index, entry in enumerate(context.contextAgents or []):
        if not isinstance(entry, dict) or "agent" not in entry:
            raise bad(f"{where}.contextAgents[{index}] needs an agent")
        check_agent(entry["agent"], f"{where}.contextAgents[{index}].agent", groups=False)
    for index, entry in enumerate(context.contextGroups or []):
        if not isinstance(entry, dict) or "group" not in entry:
            raise bad(f"{where}.contextGroups[{index}] needs a group")
        check_agent(entry["group"], f"{where}.contextGroups[{index}].group")


def check_result(result: schemas.Result, where: str) -> None:
    score = result.score
    if score is not msgspec.UNSET:
        if score.scaled is not msgspec.UNSET and not -1 <= score.scaled <= 1:
            raise bad(f"{where}.score.scaled must be between -1 and 1")
        low = None if score.min is msgspec.UNSET else score.min
        high = None if score.max is msgspec.UNSET else score.max
        if low is not None and high is not None and low >= high:
            raise bad(f"{where}.score.min must be less than max")
        raw = None if score.raw is msgspec.UNSET else score.raw
        if raw is not None and (
            (low is not None and raw < low) or (high is not None and raw > high)
        ):
            raise bad(f"{where}.score.raw must lie between min and max")
    if result.duration is not msgspec.UNSET and not _DURATION.match(result.duration):
        raise bad(f"{where}.duration must be an ISO 8601 duration")
    if result.extensions is not msgspec.UNSET:
        check_extensions(result.extensions, f"{where}.extensions")


def check_statement(raw: Any, *, where: str = "statement", sub: bool = False) -> None:
    """Raise :class:`XapiError` (400) unless ``raw`` is a valid statement (or SubStatement)."""
    kind: type[Any] = schemas.SubStatement if sub else schemas.Statement
    statement = _convert(raw, kind, where)
    if sub and statement.objectType != "SubStatement":
        raise bad(f"{where}.objectType must be SubStatement")
    if not sub:
        _check_top_level(statement, where)
    check_agent(statement.actor, f"{where}.actor")
    check_iri(statement.verb.id, f"{where}.verb.id")
    if statement.verb.display is not msgspec.UNSET:
        check_language_map(statement.verb.display, f"{where}.verb.display")
    check_object(statement.object, f"{where}.object", sub=sub)
    object_kind = statement.object.get("objectType", "Activity")
    if statement.verb.id == VOIDED and object_kind != "StatementRef":
        raise bad(f"{where}: a voiding statement's object must be a StatementRef")
    if statement.result is not msgspec.UNSET:
        check_result(statement.result, f"{where}.result")
    if statement.context is not msgspec.UNSET:
        check_context(statement.context, object_kind, f"{where}.context")
    if statement.timestamp is not msgspec.UNSET:
        check_timestamp(statement.timestamp, f"{where}.timestamp")
    _check_attachments(statement.attachments or [], where)


def _check_top_level(statement: schemas.Statement, where: str) -> None:
    """What only a statement (not a SubStatement) has."""
    if statement.objectType is not msgspec.UNSET:
        raise bad(f"{where}.objectType is not a statement property")
    if statement.id is not msgspec.UNSET and not is_uuid(statement.id):
        raise bad(f"{where}.id must be a UUID")
    if statement.version is not msgspec.UNSET and not _VERSION.match(statement.version):
        raise bad(f"{where}.version {statement.version!r} is not a supported xAPI version")
    if statement.stored is not msgspec.UNSET:
        check_timestamp(statement.stored, f"{where}.stored")
    if statement.authority is not msgspec.UNSET:
        check_authority(statement.authority, f"{where}.authority")


def _check_attachments(attachments: list[schemas.AttachmentInfo], where: str) -> None:
    for index, attachment in enumerate(attachments):
        check_iri(attachment.usageType, f"{where}.attachments[{index}].usageType")
        check_language_map(attachment.display, f"{where}.attachments[{index}].display")
        if not _SHA2.match(attachment.sha2):
            raise bad(f"{where}.attachments[{index}].sha2 must be a SHA-2 hex digest")
        if attachment.fileUrl is not msgspec.UNSET:
            check_iri(attachment.fileUrl, f"{where}.attachments[{index}].fileUrl")


def check_authority(value: Any, where: str) -> None:
    """An Agent, or a Group of exactly two Agents (the OAuth consumer and user)."""
    check_agent(value, where)
    if value.get("objectType") == "Group" and len(value.get("member", [])) != 2:
        raise bad(f"{where}: a Group authority has exactly two members")


def new_statement_id() -> str:
    return str(uuid.uuid4())
