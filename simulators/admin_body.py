"""Strict reading of the simulators' admin request bodies (and their few query parameters).

Both admin APIs (``simulators/dataverse/admin_routes.py``, ``simulators/marketo/admin_api.py``)
take JSON objects. A value of the wrong JSON type is refused, never coerced: the string
``"false"`` is not false (Python's truthiness would make it true), ``"3"`` is not 3 and ``true``
is not 1. A field the endpoint does not know is refused too (a misspelt switch would otherwise
do nothing, silently). A refusal (:class:`BadField`, answered 400) names the field and what it
must be, and every endpoint reads its whole body before it changes anything.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

_MISSING: Any = object()


class BadField(ValueError):
    """A field of an admin request that is missing or of the wrong type or range."""

    def __init__(self, name: str, must: str, value: object = _MISSING) -> None:
        got = "" if value is _MISSING else f", not {shown(value)}"
        super().__init__(f"{name}: must be {must}{got}")
        self.name = name


def shown(value: object) -> str:
    """A JSON value as a person would name it: ``the string "false"``, ``true``, ``a list``."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, str):
        return f"the string {json.dumps(value)}"
    if isinstance(value, int | float):
        return f"the number {value}"
    return "a list" if isinstance(value, list) else "an object"


def is_whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class Body:
    """An admin request's JSON object, its fields read by type."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data

    @classmethod
    def parse(cls, raw: bytes, allowed: Iterable[str] | None = None) -> Body:
        """``raw`` as a JSON object (empty: ``{}``); ``allowed``: its only fields."""
        try:
            data = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise BadField("body", "a JSON object") from None
        if not isinstance(data, dict):
            raise BadField("body", "a JSON object", data)
        if allowed is not None:
            known = sorted(allowed)
            for name in data:
                if name not in known:
                    raise BadField(name, f"left out: this endpoint takes {', '.join(known) or 'no fields'}")
        return cls(data)

    def __contains__(self, name: str) -> bool:
        return name in self.data

    def _take(self, name: str, default: Any, ok: Callable[[Any], bool], must: str, nullable: bool) -> Any:
        if name not in self.data:
            if default is _MISSING:
                raise BadField(name, f"given: {must}")
            return default
        value = self.data[name]
        if (value is None and nullable) or (value is not None and ok(value)):
            return value
        raise BadField(name, must + (" or null" if nullable else ""), value)

    def flag(self, name: str, default: bool = _MISSING) -> bool:
        return bool(self._take(name, default, lambda v: isinstance(v, bool), "true or false", False))

    def whole(self, name: str, default: int = _MISSING, *, minimum: int | None = None) -> int:
        value: int = self._take(name, default, _whole_at_least(minimum), _whole_must(minimum), False)
        return value

    def whole_or_none(
        self, name: str, default: int | None = None, *, minimum: int | None = None
    ) -> int | None:
        value: int | None = self._take(name, default, _whole_at_least(minimum), _whole_must(minimum), True)
        return value

    def number(self, name: str, default: float = _MISSING, *, minimum: float | None = None) -> float:
        def ok(v: Any) -> bool:
            return is_number(v) and (minimum is None or v >= minimum)

        must = "a number" + ("" if minimum is None else f" of at least {minimum}")
        return float(self._take(name, default, ok, must, False))

    def text(self, name: str, default: str = _MISSING, *, choices: Iterable[str] = ()) -> str:
        allowed = tuple(choices)
        must = f"one of {', '.join(json.dumps(c) for c in allowed)}" if allowed else "a string"
        value: str = self._take(
            name, default, lambda v: isinstance(v, str) and (not allowed or v in allowed), must, False
        )
        return value

    def text_or_none(self, name: str, default: str | None = None) -> str | None:
        value: str | None = self._take(name, default, lambda v: isinstance(v, str), "a string", True)
        return value

    def texts(self, name: str, default: list[str] = _MISSING) -> list[str]:
        return (
            self._list(name, default, lambda v: isinstance(v, str), "a list of strings", nullable=False) or []
        )

    def wholes(self, name: str, default: list[int] = _MISSING) -> list[int]:
        return self._list(name, default, is_whole, "a list of whole numbers", nullable=False) or []

    def wholes_or_none(self, name: str, default: list[int] | None = None) -> list[int] | None:
        return self._list(name, default, is_whole, "a list of whole numbers", nullable=True)

    def obj(self, name: str, default: dict[str, Any] = _MISSING) -> dict[str, Any]:
        value: dict[str, Any] = self._take(name, default, lambda v: isinstance(v, dict), "an object", False)
        return value

    def objects(self, name: str, default: list[dict[str, Any]] = _MISSING) -> list[dict[str, Any]]:
        value = self._list(name, default, lambda v: isinstance(v, dict), "a list of objects", nullable=False)
        return value or []

    def _list(
        self, name: str, default: Any, each: Callable[[Any], bool], must: str, *, nullable: bool
    ) -> list[Any] | None:
        def ok(v: Any) -> bool:
            return isinstance(v, list) and all(each(x) for x in v)

        value: list[Any] | None = self._take(name, default, ok, must, nullable)
        return None if value is None else list(value)


def _whole_at_least(minimum: int | None) -> Callable[[Any], bool]:
    return lambda v: is_whole(v) and (minimum is None or v >= minimum)


def _whole_must(minimum: int | None) -> str:
    return "a whole number" + ("" if minimum is None else f" of at least {minimum}")


def query_number(params: Mapping[str, str], name: str, default: float) -> float:
    """A number in the query string (``?timeout=5``)."""
    raw = params.get(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise BadField(name, "a number", raw) from None


def settings(kind: type[Any], body: Body, names: Mapping[str, str]) -> dict[str, Any]:
    """The fields of a settings dataclass (``kind``) that ``body`` gives, by attribute name,
    each checked against the field's declared type; ``names``: JSON name -> attribute name."""
    hints = typing.get_type_hints(kind)
    declared = {f.name for f in dataclasses.fields(kind)}
    changes: dict[str, Any] = {}
    for json_name, attribute in names.items():
        if json_name not in body or attribute not in declared:
            continue
        hint = hints[attribute]
        if hint is int:
            changes[attribute] = body.whole(json_name, minimum=0)
        elif hint is float:
            changes[attribute] = body.number(json_name, minimum=0)
        elif hint == int | None:
            changes[attribute] = body.whole_or_none(json_name, minimum=0)
        elif hint is bool:
            changes[attribute] = body.flag(json_name)
        elif hint == frozenset[str]:
            changes[attribute] = frozenset(body.texts(json_name))
        else:  # pragma: no cover - a settings field of a type this reader does not know yet
            raise TypeError(f"{kind.__name__}.{attribute}: {hint} has no strict reader")
    return changes


__all__ = ["BadField", "Body", "query_number", "settings", "shown"]
