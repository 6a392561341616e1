"""Settings structs filled from flat sources, each value converted on its own.

A settings struct is a tree: *sections* (fields holding a nested struct) and *leaves* (every
other field). Each source names one key of that tree: an environment variable
(``BACKPLANE_SERVER__PORT`` is ``("server", "port")``), a TOML key (``server.port``), a keyword
argument. Converting each leaf by itself with :func:`msgspec.convert` means a failure is known
by the source that gave it, and so are unknown and missing fields: no error text is read back
to find out which value was wrong. The checked values are then assembled into the struct.

Values are converted as msgspec's lax mode does (``strict=False``: ``"8000"`` is an int,
``"true"``/``"1"``/``"false"``/``"0"`` a bool, ``"0.5"`` a float). Text it refuses gets two
more readings, because environment variables can only hold text: a comma list where a list is
expected (``"a, b,,c"`` is ``["a", "b", "c"]`` and the empty text is ``[]``), and the empty
text is ``None`` where a field is optional but takes no text (``BACKPLANE_INFERENCE__THREADS=``).
Otherwise the empty text is just that: a valid string, or an error naming the variable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import msgspec

Key = tuple[str, ...]
"""Field names from the root struct down to one field: ``("server", "port")``."""

S = TypeVar("S")


class SettingsError(ValueError):
    """A setting is missing, unknown or invalid; the message names where it came from."""


@dataclasses.dataclass(frozen=True, slots=True)
class Given:
    """One value from one source, and how the user spelled it (for messages)."""

    value: Any
    where: str


class Schema(Generic[S]):
    """The sections and leaves of a msgspec struct type, by key.

    ``name`` spells a key as the variable a user would set: messages use it for a required
    field nobody set and for the list of known fields beside an unknown one. ``skip`` names
    top-level fields no source sets (the caller fills them in).
    """

    def __init__(
        self, struct: type[S], name: Callable[[Key], str], skip: Iterable[str] = ()
    ) -> None:
        if not (isinstance(struct, type) and issubclass(struct, msgspec.Struct)):
            raise SettingsError(f"settings type {struct!r} is not a msgspec.Struct")
        self.name = name
        self.fields: dict[Key, msgspec.structs.FieldInfo] = {}
        self.sections: dict[Key, type[msgspec.Struct]] = {(): struct}
        self._add((), frozenset(skip))

    def _add(self, parent: Key, skip: frozenset[str]) -> None:
        for field in msgspec.structs.fields(self.sections[parent]):
            if field.name in skip:
                continue
            key = (*parent, field.name)
            self.fields[key] = field
            if isinstance(field.type, type) and issubclass(field.type, msgspec.Struct):
                self.sections[key] = field.type
                self._add(key, frozenset())

    def from_table(
        self, table: Mapping[str, Any], where: Callable[[Key], str], parent: Key = ()
    ) -> dict[Key, Given]:
        """Flatten a (TOML) table, walking every table but the value of a field that takes one."""
        given: dict[Key, Given] = {}
        for field, value in table.items():
            key = (*parent, field)
            if isinstance(value, dict) and not self._takes_table(key):
                given |= self.from_table(value, where, key)
            else:
                given[key] = Given(value, where(key))
        return given

    def build(self, given: Mapping[Key, Given]) -> S:
        """Convert every given value, then assemble the struct (defaults for the rest).

        A value given for a whole section (a keyword argument) replaces the values given
        beneath it. Every problem is reported at once, each naming its source.
        """
        problems: list[str] = []
        values: dict[Key, Any] = {}
        for key, item in given.items():
            if key not in self.fields:
                problems.append(f"{item.where}: {self._unknown(key)}")
                continue
            if key in self.sections and isinstance(item.value, str | int | float):
                problems.append(f"{item.where}: a section, not a value (known: {self._known(key)})")
                continue
            kind = self.fields[key].type
            try:
                values[key] = _convert(item.value, kind)
            except msgspec.ValidationError as exc:
                problems.append(f"{item.where}: {exc}{_choices(kind)}")
        result = self._assemble((), values, given, problems)
        if problems:
            raise SettingsError("; ".join(problems))
        return cast(S, result)

    def _takes_table(self, key: Key) -> bool:
        """Whether ``key`` is a leaf whose type accepts a table (a dict, a struct, anything)."""
        if key not in self.fields or key in self.sections:
            return False
        return any(isinstance(o, _TABLES) for o in _options(self.fields[key].type))

    def _unknown(self, key: Key) -> str:
        """Why ``key`` names no field. Refused whatever the struct's ``forbid_unknown_fields``
        (a plugin's settings struct may lack it): a variable or file key that names nothing is
        a typo, and a typo ignored leaves the default silently in force."""
        depth = next(d for d in range(1, len(key) + 1) if key[:d] not in self.fields)
        parent = key[: depth - 1]
        if parent not in self.sections:
            return f"{self.name(parent)} is a single value, not a section"
        return f"unknown setting {key[depth - 1]!r} (known: {self._known(parent)})"

    def _known(self, parent: Key) -> str:
        """The fields of the section at ``parent``, as a user would set them."""
        return ", ".join(sorted(self.name(k) for k in self.fields if k[:-1] == parent))

    def _assemble(
        self,
        parent: Key,
        values: Mapping[Key, Any],
        given: Mapping[Key, Given],
        problems: list[str],
    ) -> Any:
        """The struct at ``parent`` (None once there are ``problems``: required fields unset)."""
        if parent in values:
            return values[parent]
        arguments: dict[str, Any] = {}
        for key, field in self.fields.items():
            if key[:-1] != parent:
                continue
            beneath = any(k[: len(key)] == key for k in values)
            if key in self.sections and (beneath or field.required):
                arguments[field.name] = self._assemble(key, values, given, problems)
            elif key in values:
                arguments[field.name] = values[key]
            elif field.required and key not in given:  # given but invalid: reported already
                problems.append(f"{self.name(key)}: required, not set")
        if problems:
            return None
        try:
            return self.sections[parent](**arguments)
        except (TypeError, ValueError) as exc:  # a struct's own __post_init__ check
            # Named by what the user set in that section (a variable, a file key), not by the
            # section: that is what they can change.
            wheres = {item.where for key, item in given.items() if key[: len(parent)] == parent}
            where = ", ".join(sorted(wheres)) or (self.name(parent) if parent else "settings")
            raise SettingsError(f"{where}: {exc}") from None


def _convert(value: Any, kind: Any) -> Any:
    """``value`` as ``kind``, with the readings of text described in the module docstring."""
    try:
        return msgspec.convert(value, kind, strict=False, dec_hook=_decode_extra)
    except msgspec.ValidationError:
        if not isinstance(value, str):
            raise
        options = _options(kind)
        if any(isinstance(o, _LISTS) for o in options):
            items = [item.strip() for item in value.split(",") if item.strip()]
            return msgspec.convert(items, kind, strict=False, dec_hook=_decode_extra)
        if value == "" and any(isinstance(o, msgspec.inspect.NoneType) for o in options):
            return None
        raise


_TABLES = (
    msgspec.inspect.AnyType,
    msgspec.inspect.DictType,
    msgspec.inspect.StructType,
    msgspec.inspect.TypedDictType,
    msgspec.inspect.DataclassType,
)
_LISTS = (
    msgspec.inspect.ListType,
    msgspec.inspect.SetType,
    msgspec.inspect.FrozenSetType,
    msgspec.inspect.VarTupleType,
)


def _options(kind: Any) -> list[msgspec.inspect.Type]:
    """The alternatives ``kind`` accepts (one, unless it is a union), without metadata."""
    info = msgspec.inspect.type_info(kind)
    options = info.types if isinstance(info, msgspec.inspect.UnionType) else (info,)
    return [o.type if isinstance(o, msgspec.inspect.Metadata) else o for o in options]


def _choices(kind: Any) -> str:
    """`` (one of: ...)`` for a literal or enum type, so the message lists what is allowed."""
    for option in _options(kind):
        if isinstance(option, msgspec.inspect.LiteralType):
            return f" (one of: {', '.join(map(str, option.values))})"
        if isinstance(option, msgspec.inspect.EnumType):
            return f" (one of: {', '.join(str(m.value) for m in option.cls)})"
    return ""


def _decode_extra(kind: type, value: Any) -> Any:
    """Types msgspec does not convert itself: paths, given as text (TypeError: invalid value)."""
    if kind is Path and isinstance(value, str):
        return Path(value)
    raise TypeError(f"Expected `{kind.__name__}`, got `{type(value).__name__}`")
