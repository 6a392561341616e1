"""What a stored statement is indexed by, and how it is returned in each ``format``.

Indexing keys are computed once at write time so every query filter is a SQL predicate on an
indexed column (actor, object, verb, registration) or on the related-keys table (related agents
and activities, including those inside a SubStatement).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import msgspec

from backplane_education.xapi.validation import IFI_KEYS, VOIDED, agent_ifi

_LANGUAGE_MAPS_IN_DEFINITION = ("name", "description")
_COMPONENT_LISTS = ("choices", "scale", "source", "target", "steps")


class Keys(msgspec.Struct, kw_only=True):
    """A statement's index keys."""

    verb: str
    actor: str | None
    object_agent: str | None
    object_activity: str | None
    registration: str | None
    voids: str | None
    """The statement this one voids (a voiding statement's StatementRef), lower-case."""
    agents: set[str]
    """Related agents: actor, object, authority, instructor, team (and in a SubStatement)."""
    activities: set[str]
    """Related activities: the object and every context activity (and in a SubStatement)."""


def context_activities(context: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    groups = context.get("contextActivities", {})
    for name in ("parent", "grouping", "category", "other"):
        value = groups.get(name, [])
        yield from value if isinstance(value, list) else [value]


def _related(statement: Mapping[str, Any], agents: set[str], activities: set[str]) -> None:
    target = statement["object"]
    kind = target.get("objectType", "Activity")
    for agent in (statement.get("actor"), statement.get("authority")):
        if agent and (ifi := agent_ifi(agent)):
            agents.add(ifi)
    context = statement.get("context", {})
    for agent in (context.get("instructor"), context.get("team")):
        if agent and (ifi := agent_ifi(agent)):
            agents.add(ifi)
    if kind == "Activity":
        activities.add(target["id"])
    elif kind in ("Agent", "Group") and (ifi := agent_ifi(target)):
        agents.add(ifi)
    elif kind == "SubStatement":
        _related(target, agents, activities)
    activities.update(activity["id"] for activity in context_activities(context))


def keys_of(statement: Mapping[str, Any]) -> Keys:
    target = statement["object"]
    kind = target.get("objectType", "Activity")
    agents: set[str] = set()
    activities: set[str] = set()
    _related(statement, agents, activities)
    registration = statement.get("context", {}).get("registration")
    voiding = statement["verb"]["id"] == VOIDED
    return Keys(
        verb=statement["verb"]["id"],
        actor=agent_ifi(statement["actor"]),
        object_agent=agent_ifi(target) if kind in ("Agent", "Group") else None,
        object_activity=target["id"] if kind == "Activity" else None,
        registration=registration.lower() if registration else None,
        voids=target["id"].lower() if voiding else None,
        agents=agents,
        activities=activities,
    )


def activity_definitions(statement: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(activity id, definition)`` of every activity in the statement that carries one."""
    found = [statement["object"], *context_activities(statement.get("context", {}))]
    target = statement["object"]
    if target.get("objectType") == "SubStatement":
        found += [target["object"], *context_activities(target.get("context", {}))]
    for activity in found:
        if activity.get("objectType", "Activity") == "Activity" and "definition" in activity:
            yield activity["id"], activity["definition"]


def activity_key(activity_id: str) -> str:
    """The indexed key of an activity id (IRIs can be longer than an index entry may be)."""
    return hashlib.sha256(activity_id.encode("utf-8")).hexdigest()


# -- formats -------------------------------------------------------------------------------------
def _ids_agent(agent: dict[str, Any]) -> dict[str, Any]:
    out = {k: agent[k] for k in ("objectType", *IFI_KEYS) if k in agent}
    if agent.get("objectType") == "Group" and agent_ifi(agent) is None:
        out["member"] = [_ids_agent(member) for member in agent.get("member", [])]
    return out


def _walk(
    statement: dict[str, Any], agent: Callable[[Any], Any], act: Callable[[Any], Any]
) -> None:
    statement["actor"] = agent(statement["actor"])
    if "authority" in statement:
        statement["authority"] = agent(statement["authority"])
    target = statement["object"]
    kind = target.get("objectType", "Activity")
    if kind == "Activity":
        statement["object"] = act(target)
    elif kind in ("Agent", "Group"):
        statement["object"] = agent(target)
    elif kind == "SubStatement":
        _walk(target, agent, act)
    context = statement.get("context")
    if context:
        for name in ("instructor", "team"):
            if name in context:
                context[name] = agent(context[name])
        groups = context.get("contextActivities", {})
        for name, value in groups.items():
            many = value if isinstance(value, list) else [value]
            groups[name] = [act(activity) for activity in many]


def ids_format(statement: dict[str, Any]) -> dict[str, Any]:
    """Agents and Groups by identifier only, Activities and Verbs by id only."""
    out = copy.deepcopy(statement)
    out["verb"] = {"id": out["verb"]["id"]}
    _walk(out, _ids_agent, lambda activity: {"objectType": "Activity", "id": activity["id"]})
    return out


def pick_language(value: dict[str, str], languages: list[str]) -> dict[str, str]:
    """One entry of a language map: the first of ``languages`` (Accept-Language order, then its
    primary subtag) it has, else its first entry."""
    lowered = {tag.lower(): tag for tag in value}
    for wanted in languages:
        for candidate in (wanted.lower(), wanted.lower().split("-")[0]):
            if candidate in lowered:
                return {lowered[candidate]: value[lowered[candidate]]}
        if wanted == "*":
            break
    first = next(iter(value), None)
    return {} if first is None else {first: value[first]}


def canonical_definition(definition: dict[str, Any], languages: list[str]) -> dict[str, Any]:
    out = copy.deepcopy(definition)
    for name in _LANGUAGE_MAPS_IN_DEFINITION:
        if name in out:
            out[name] = pick_language(out[name], languages)
    for name in _COMPONENT_LISTS:
        for component in out.get(name, []):
            if "description" in component:
                component["description"] = pick_language(component["description"], languages)
    return out


def canonical_format(
    statement: dict[str, Any], definitions: Mapping[str, dict[str, Any]], languages: list[str]
) -> dict[str, Any]:
    """Activities with the LRS's canonical definition, language maps cut to one language."""
    out = copy.deepcopy(statement)

    def act(activity: dict[str, Any]) -> dict[str, Any]:
        found = definitions.get(activity["id"], activity.get("definition"))
        result = {"objectType": "Activity", "id": activity["id"]}
        if found:
            result["definition"] = canonical_definition(found, languages)
        return result

    _walk(out, lambda agent: agent, act)
    if "display" in out["verb"]:
        out["verb"]["display"] = pick_language(out["verb"]["display"], languages)
    return out


def accept_languages(header: str | None) -> list[str]:
    """``Accept-Language`` tags by descending quality."""
    ranked = []
    for index, item in enumerate((header or "").split(",")):
        tag, _, params = item.strip().partition(";")
        if not tag:
            continue
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, index, tag.strip()))
    return [tag for _, _, tag in sorted(ranked)]
