"""The segment filter language: a JSON tree of ``and``/``or``/``not`` over conditions on
attributes, fields, tags, list membership and activity, decoded into msgspec tagged unions
(every node names its ``type``) and compiled into one SQLAlchemy boolean expression over
``marketing_contacts``: segments are counted and listed by the database, never row by row in
Python.

Examples::

    {"type": "attribute", "key": "score", "op": "gt", "value": 70}
    {"type": "and", "all": [{"type": "tag", "tag": "vip"},
                            {"type": "not", "filter": {"type": "list", "list_id": "..."}}]}
    {"type": "activity", "event": "clicked", "within_days": 30, "where": {"link": "pricing"}}
    {"type": "score", "op": "gt", "value": 70}

A condition on a value a contact does not have is false (and its ``not`` true): every leaf
is ``present AND comparison``, never SQL's unknown.
"""

from __future__ import annotations

import operator
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal, Union

import msgspec
from sqlalchemy import ColumnElement, and_, exists, false, func, not_, or_, select, true

from backplane_marketing.attributes import Definition
from backplane_marketing.errors import MarketingError
from backplane_marketing.models import Contact, ContactEvent, ContactTag, Subscription
from backplane_marketing.scoring.models import ContactScore

Op = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "exists", "contains"]
Scalar = str | int | float | bool


class And(msgspec.Struct, tag="and", forbid_unknown_fields=True):
    all: list[Filter]


class Or(msgspec.Struct, tag="or", forbid_unknown_fields=True):
    any: list[Filter]


class Not(msgspec.Struct, tag="not", forbid_unknown_fields=True):
    filter: Filter


class AttributeCondition(msgspec.Struct, tag="attribute", forbid_unknown_fields=True):
    """``score > 70``: a custom attribute compared as its definition's type."""

    key: str
    op: Op
    value: Scalar | list[Scalar] | None = None


class FieldCondition(msgspec.Struct, tag="field", forbid_unknown_fields=True):
    """A built-in field: ``email``, ``email_domain``, ``name``, ``consent``."""

    field: Literal["email", "email_domain", "name", "consent"]
    op: Literal["eq", "ne", "in"]
    value: str | list[str]


class HasTag(msgspec.Struct, tag="tag", forbid_unknown_fields=True):
    tag: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class InList(msgspec.Struct, tag="list", forbid_unknown_fields=True):
    list_id: uuid.UUID
    status: Literal["subscribed", "unsubscribed"] = "subscribed"


class Activity(msgspec.Struct, tag="activity", forbid_unknown_fields=True):
    """At least ``min_count`` events ``event`` in the last ``within_days`` days whose data
    has every ``where`` value (``clicked`` with ``{"link": "pricing"}``)."""

    event: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    within_days: Annotated[int, msgspec.Meta(ge=1, le=36500)]
    min_count: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1
    where: dict[str, str] = msgspec.field(default_factory=dict)


class ScoreCondition(msgspec.Struct, tag="score", forbid_unknown_fields=True):
    """``score > 70``: the contact's lead score (``marketing_scores``); none yet is false."""

    op: Literal["gt", "gte", "lt", "lte", "eq", "ne"]
    value: float


Filter = Union[  # noqa: UP007
    And, Or, Not, AttributeCondition, FieldCondition, HasTag, InList, Activity, ScoreCondition
]
"""One node of the tree (``type`` picks the kind)."""

COMPARE = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
COMPARISONS = set(COMPARE)
OPS_BY_TYPE = {
    "number": COMPARISONS | {"in", "exists"},
    "date": COMPARISONS | {"in", "exists"},
    "string": {"eq", "ne", "in", "exists"},
    "boolean": {"eq", "ne", "exists"},
    "list": {"contains", "exists"},
}


def decode_filter(raw: Any, max_depth: int, max_nodes: int) -> Filter:
    """The filter tree from JSON-like data; 400 naming the problem (msgspec's path included)."""
    try:
        tree: Filter = msgspec.convert(raw, Filter)
    except msgspec.ValidationError as error:
        raise MarketingError(f"bad filter: {error}") from None
    nodes = 0

    def walk(node: Filter, depth: int) -> None:
        nonlocal nodes
        nodes += 1
        if depth > max_depth:
            raise MarketingError(
                f"filter nested deeper than {max_depth} (setting max_segment_depth)"
            )
        if nodes > max_nodes:
            raise MarketingError(
                f"filter has more than {max_nodes} conditions (setting max_segment_nodes)"
            )
        children = node.all if isinstance(node, And) else node.any if isinstance(node, Or) else []
        if isinstance(node, Not):
            children = [node.filter]
        for child in children:
            walk(child, depth + 1)

    walk(tree, 1)
    return tree


class Compiler:
    """Compiles one tree for one tenant's attribute definitions on one dialect."""

    def __init__(
        self, definitions: dict[str, Definition], dialect: str, now: datetime | None = None
    ) -> None:
        self.definitions, self.dialect = definitions, dialect
        self.now = now or datetime.now(UTC)

    def compile(self, node: Filter) -> ColumnElement[bool]:  # noqa: PLR0911 - one per kind
        if isinstance(node, And):
            return and_(true(), *(self.compile(n) for n in node.all))
        if isinstance(node, Or):
            return or_(false(), *(self.compile(n) for n in node.any))
        if isinstance(node, Not):
            return not_(self.compile(node.filter))
        if isinstance(node, AttributeCondition):
            return self._attribute(node)
        if isinstance(node, FieldCondition):
            return self._field(node)
        if isinstance(node, HasTag):
            return exists(
                select(ContactTag.contact_id).where(
                    ContactTag.tenant_id == Contact.tenant_id,
                    ContactTag.contact_id == Contact.id,
                    ContactTag.tag == node.tag,
                )
            )
        if isinstance(node, InList):
            return exists(
                select(Subscription.contact_id).where(
                    Subscription.tenant_id == Contact.tenant_id,
                    Subscription.contact_id == Contact.id,
                    Subscription.list_id == node.list_id,
                    Subscription.status == node.status,
                )
            )
        if isinstance(node, ScoreCondition):
            return exists(
                select(ContactScore.contact_id).where(
                    ContactScore.tenant_id == Contact.tenant_id,
                    ContactScore.contact_id == Contact.id,
                    COMPARE[node.op](ContactScore.score, node.value),
                )
            )
        return self._activity(node)

    def _attribute(self, node: AttributeCondition) -> ColumnElement[bool]:
        definition = self.definitions.get(node.key)
        if definition is None:
            raise MarketingError(f"filter: unknown attribute {node.key!r}", 422)
        if node.op not in OPS_BY_TYPE[definition.type]:
            allowed = ", ".join(sorted(OPS_BY_TYPE[definition.type]))
            raise MarketingError(
                f"filter: {node.op!r} does not apply to {definition.type} attribute "
                f"{node.key!r} (use {allowed})",
                422,
            )
        path = Contact.attributes[node.key]
        present = (
            path.as_string().is_not(None) if self.dialect != "postgresql" else path.is_not(None)
        )
        if node.op == "exists":
            return present
        if definition.type == "list":
            item = self._value(node, str)
            if self.dialect == "postgresql":
                return and_(present, path.op("@>")(func.jsonb_build_array(item)))
            each = func.json_each(Contact.attributes, f"$.{node.key}").table_valued("value")
            return and_(present, exists(select(each.c.value).where(each.c.value == item)))
        if definition.type == "number":
            column: Any = path.as_float()
            kind: Any = float
        elif definition.type == "boolean":
            column, kind = path.as_boolean(), bool
        else:
            column, kind = path.as_string(), str
        return and_(present, self._compare(column, node.op, node, kind, definition.type))

    def _value(self, node: AttributeCondition, kind: Any, value: Any = ..., type_: str = "") -> Any:
        value = node.value if value is ... else value
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok:
            raise MarketingError(
                f"filter: attribute {node.key!r} compares with a "
                f"{type_ or kind.__name__}, not {value!r}",
                422,
            )
        if type_ == "date":
            try:
                return date.fromisoformat(value).isoformat()
            except ValueError:
                raise MarketingError(f"filter: {value!r} is not a date (YYYY-MM-DD)", 422) from None
        return value

    def _compare(
        self, column: Any, op: str, node: AttributeCondition, kind: Any, type_: str
    ) -> Any:
        if op == "in":
            if not isinstance(node.value, list) or not node.value:
                raise MarketingError(f"filter: 'in' on {node.key!r} needs a non-empty list", 422)
            return column.in_([self._value(node, kind, v, type_) for v in node.value])
        value = self._value(node, kind, type_=type_)
        return COMPARE[op](column, value)

    def _field(self, node: FieldCondition) -> ColumnElement[bool]:
        values = node.value if isinstance(node.value, list) else [node.value]
        if node.op != "in" and isinstance(node.value, list):
            raise MarketingError(f"filter: {node.op!r} on {node.field} needs one value", 422)
        if node.field == "email_domain":
            column: Any = func.substr(Contact.email, func.instr(Contact.email, "@") + 1)
            if self.dialect == "postgresql":
                column = func.split_part(Contact.email, "@", 2)
            values = [v.lower() for v in values]
        elif node.field == "email":
            column, values = Contact.email, [v.strip().lower() for v in values]
        else:
            column = getattr(Contact, node.field)
        if node.op == "in":
            return column.in_(values)  # type: ignore[no-any-return]
        return (column == values[0]) if node.op == "eq" else (column != values[0])  # type: ignore[no-any-return]

    def _activity(self, node: Activity) -> ColumnElement[bool]:
        since = self.now - timedelta(days=node.within_days)
        conditions = [
            ContactEvent.tenant_id == Contact.tenant_id,
            ContactEvent.contact_id == Contact.id,
            ContactEvent.type == node.event,
            ContactEvent.occurred_at >= since,
            *(ContactEvent.data[k].as_string() == v for k, v in node.where.items()),
        ]
        if node.min_count == 1:
            return exists(select(ContactEvent.id).where(*conditions))
        count = select(func.count(ContactEvent.id)).where(*conditions).scalar_subquery()
        return count >= node.min_count
