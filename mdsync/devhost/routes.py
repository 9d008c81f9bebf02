"""HTTP route templates as the Functions host reads them (ASP.NET Core route syntax).

Supported: literal segments (matched case-insensitively), ``{name}``, optional ``{name?}``,
defaults ``{name=value}``, constraints ``{name:int}``, ``{name:int:min(1)}``,
``{name:regex(^a{{2}}$)}`` (``{{``/``}}`` escape braces), catch-all ``{*rest}``/``{**rest}``,
and complex segments such as ``{file}.{ext}``. A value that breaks its constraint means "no
match" (404), as in ASP.NET. Values are percent-decoded; ``%2F`` stays a literal slash inside a
value. An unknown constraint name is a start-up error.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote

from shared.errors import ConfigurationError

Check = Callable[[str], bool]

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_INTEGER = re.compile(r"[+-]?\d+")


def _integer_in(low: int, high: int) -> Check:
    return lambda value: bool(_INTEGER.fullmatch(value)) and low <= int(value) <= high


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return value.strip() == value and value.lower() not in {"nan", "inf", "-inf", "+inf"}


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _numbers(args: tuple[str, ...], count: int, name: str) -> list[int]:
    if len(args) != count or not all(_INTEGER.fullmatch(a.strip()) for a in args):
        raise ConfigurationError(f"route constraint '{name}' needs {count} integer argument(s)")
    return [int(a) for a in args]


def _length(args: tuple[str, ...]) -> Check:
    if len(args) == 1:
        (exact,) = _numbers(args, 1, "length")
        return lambda value: len(value) == exact
    low, high = _numbers(args, 2, "length")
    return lambda value: low <= len(value) <= high


def _min(args: tuple[str, ...]) -> Check:
    (low,) = _numbers(args, 1, "min")
    return lambda value: bool(_INTEGER.fullmatch(value)) and int(value) >= low


def _max(args: tuple[str, ...]) -> Check:
    (high,) = _numbers(args, 1, "max")
    return lambda value: bool(_INTEGER.fullmatch(value)) and int(value) <= high


def _range(args: tuple[str, ...]) -> Check:
    low, high = _numbers(args, 2, "range")
    return _integer_in(low, high)


def _minlength(args: tuple[str, ...]) -> Check:
    (low,) = _numbers(args, 1, "minlength")
    return lambda value: len(value) >= low


def _maxlength(args: tuple[str, ...]) -> Check:
    (high,) = _numbers(args, 1, "maxlength")
    return lambda value: len(value) <= high


def _regex(args: tuple[str, ...]) -> Check:
    try:
        pattern = re.compile(",".join(args), re.IGNORECASE)
    except re.error as exc:
        raise ConfigurationError(f"route constraint regex({','.join(args)}) is invalid: {exc}") from exc
    return lambda value: pattern.search(value) is not None


def _no_args(check: Check) -> Callable[[tuple[str, ...]], Check]:
    def build(args: tuple[str, ...]) -> Check:
        if args:
            raise ConfigurationError("this route constraint takes no arguments")
        return check

    return build


_CONSTRAINTS: dict[str, Callable[[tuple[str, ...]], Check]] = {
    "int": _no_args(_integer_in(*_INT32)),
    "long": _no_args(_integer_in(*_INT64)),
    "bool": _no_args(lambda v: v.lower() in {"true", "false"}),
    "guid": _no_args(_is_guid),
    "datetime": _no_args(_is_datetime),
    "decimal": _no_args(_is_number),
    "double": _no_args(_is_number),
    "float": _no_args(_is_number),
    "alpha": _no_args(lambda v: v.isascii() and v.isalpha()),
    "required": _no_args(lambda v: v != ""),
    "nonfile": _no_args(lambda v: "." not in v),
    "file": _no_args(lambda v: "." in v),
    "length": _length,
    "min": _min,
    "max": _max,
    "range": _range,
    "minlength": _minlength,
    "maxlength": _maxlength,
    "regex": _regex,
}


@dataclass(frozen=True)
class Parameter:
    name: str
    constraints: tuple[str, ...]
    optional: bool
    default: str | None
    catch_all: bool
    checks: tuple[Check, ...]

    def accepts(self, value: str) -> bool:
        return all(check(value) for check in self.checks)


Part = str | Parameter  # a segment is literal text and parameters


def _scan_segment(segment: str, template: str) -> list[Part]:
    """Split one segment into literal text and ``{...}`` parameter bodies."""
    parts: list[Part] = []
    text: list[str] = []
    i = 0
    while i < len(segment):
        char = segment[i]
        if char in "{}" and segment[i : i + 2] in ("{{", "}}"):
            text.append(char)
            i += 2
        elif char == "{":
            body, i = _read_parameter(segment, i + 1, template)
            if text:
                parts.append("".join(text))
                text = []
            parts.append(_parse_parameter(body, template))
        elif char == "}":
            raise ConfigurationError(f"route '{template}': unmatched '}}'")
        else:
            text.append(char)
            i += 1
    if text:
        parts.append("".join(text))
    return parts


def _read_parameter(segment: str, start: int, template: str) -> tuple[str, int]:
    body: list[str] = []
    i = start
    while i < len(segment):
        if segment[i : i + 2] in ("{{", "}}"):
            body.append(segment[i])
            i += 2
        elif segment[i] == "}":
            return "".join(body), i + 1
        else:
            body.append(segment[i])
            i += 1
    raise ConfigurationError(f"route '{template}': unterminated '{{'")


def _split_constraints(body: str) -> list[str]:
    """Split ``name:c1:c2(a:b)`` on colons outside parentheses."""
    pieces: list[str] = []
    current: list[str] = []
    depth = 0
    for char in body:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == ":" and depth == 0:
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
    pieces.append("".join(current))
    return pieces


def _parse_parameter(body: str, template: str) -> Parameter:
    catch_all = body.startswith("*")
    body = body.lstrip("*")
    default: str | None = None
    optional = False
    head, *constraints = _split_constraints(body)
    # The default and the optional marker follow the last piece: name, or the last constraint.
    tail = constraints[-1] if constraints else head
    if tail.endswith("?"):
        optional, tail = True, tail[:-1]
    equals = tail.find("=", tail.rfind(")") + 1)  # an '=' inside regex(...) is not a default
    if equals >= 0:
        tail, default = tail[:equals], tail[equals + 1 :]
    if constraints:
        constraints[-1] = tail
    else:
        head = tail
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", head):
        raise ConfigurationError(f"route '{template}': invalid parameter name '{head}'")
    checks = tuple(_constraint(c, template) for c in constraints)
    return Parameter(head, tuple(constraints), optional, default, catch_all, checks)


def _constraint(text: str, template: str) -> Check:
    match = re.fullmatch(r"([A-Za-z]+)(?:\((.*)\))?", text, re.DOTALL)
    if not match or match.group(1).lower() not in _CONSTRAINTS:
        raise ConfigurationError(f"route '{template}': unknown constraint '{text}'")
    args = tuple(match.group(2).split(",")) if match.group(2) is not None else ()
    if match.group(1).lower() == "regex" and match.group(2) is not None:
        args = (match.group(2),)
    try:
        return _CONSTRAINTS[match.group(1).lower()](args)
    except ConfigurationError as exc:
        raise ConfigurationError(f"route '{template}': {exc}") from None


class RouteTemplate:
    """A compiled route template; :meth:`match` returns the route parameters or None."""

    def __init__(self, template: str) -> None:
        self.template = template.strip().strip("/")
        self._segments = (
            [_scan_segment(segment, template) for segment in self.template.split("/") if segment]
            if self.template
            else []
        )
        self.parameters = [p for seg in self._segments for p in seg if isinstance(p, Parameter)]
        self._check_shape(template)
        self._regex = re.compile(self._pattern(), re.IGNORECASE | re.DOTALL)

    def _check_shape(self, template: str) -> None:
        names = [p.name.lower() for p in self.parameters]
        if len(names) != len(set(names)):
            raise ConfigurationError(f"route '{template}': a parameter name appears twice")
        for index, segment in enumerate(self._segments):
            for part in segment:
                if isinstance(part, Parameter) and part.catch_all and index != len(self._segments) - 1:
                    raise ConfigurationError(f"route '{template}': a catch-all must be last")

    def _pattern(self) -> str:
        pattern = ""
        for segment in self._segments:
            only = segment[0] if len(segment) == 1 else None
            if isinstance(only, Parameter) and (only.optional or only.default is not None or only.catch_all):
                body = ".*" if only.catch_all else "[^/]+"
                pattern += f"(?:/(?P<p{self.parameters.index(only)}>{body}))?"
                continue
            pattern += "/" + "".join(self._part_pattern(part) for part in segment)
        return "^" + pattern + "/?$"

    def _part_pattern(self, part: Part) -> str:
        if isinstance(part, str):
            return re.escape(part)
        body = ".*" if part.catch_all else "[^/]+"  # greedy: ASP.NET reads complex segments right to left
        group = f"(?P<p{self.parameters.index(part)}>{body})"
        return f"{group}?" if part.optional else group

    def match(self, path: str) -> dict[str, str] | None:
        """``path`` is the raw (percent-encoded) path after the route prefix, with a leading '/'."""
        found = self._regex.match(path if path.startswith("/") else "/" + path)
        if found is None:
            return None
        values: dict[str, str] = {}
        for index, parameter in enumerate(self.parameters):
            raw = found.group(f"p{index}")
            if raw is None or raw == "":
                if parameter.default is not None:
                    values[parameter.name] = parameter.default
                continue
            value = unquote(raw)
            if not parameter.accepts(value):
                return None
            values[parameter.name] = value
        return values

    @property
    def precedence(self) -> tuple[int, ...]:
        """Lower sorts first: literal segments beat parameters, constrained beat free ones,
        optional and catch-all come last (ASP.NET's route precedence, simplified)."""
        return tuple(_segment_rank(segment) for segment in self._segments)


def _segment_rank(segment: list[Part]) -> int:
    if all(isinstance(p, str) for p in segment):
        return 1
    if len(segment) > 1:
        return 2
    parameter = segment[0]
    assert isinstance(parameter, Parameter)
    if parameter.catch_all:
        return 6
    if parameter.optional or parameter.default is not None:
        return 5
    return 3 if parameter.constraints else 4
