"""The OData query subset Dataverse accepts: ``$filter``, ``$select``, ``$orderby``, key segments.

The filter is parsed into a small tree first (so an unknown column or a bad literal is a 400
even when the table is empty), then evaluated per row through a ``getter``. String comparisons
ignore case, as Dataverse's SQL collation does; ``contains``/``startswith``/``endswith`` honour
the SQL LIKE wildcards ``% _ [] [^]``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from simulators.dataverse.faults import DataverseFault, odata_error

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})?)?$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_WORD = re.compile(r"[A-Za-z0-9_.:+\-@$]+")
_OPERATORS = {"eq", "ne", "gt", "ge", "lt", "le"}
_OP_NAMES = {
    "eq": "Equal",
    "ne": "NotEqual",
    "gt": "GreaterThan",
    "ge": "GreaterThanOrEqual",
    "lt": "LessThan",
    "le": "LessThanOrEqual",
}

# Kinds a property or literal can have, and their Edm names for error messages.
EDM = {
    "string": "Edm.String",
    "int": "Edm.Int32",
    "long": "Edm.Int64",
    "decimal": "Edm.Decimal",
    "bool": "Edm.Boolean",
    "guid": "Edm.Guid",
    "datetime": "Edm.DateTimeOffset",
    "enum": "Edm.Enum",
    "any": "Edm.Untyped",
}
NUMERIC = {"int", "long", "decimal"}


@dataclass(frozen=True)
class Token:
    kind: str  # string, dstring, word, enum, punct, end
    text: str
    value: Any
    pos: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "(),[]=/":
            tokens.append(Token("punct", ch, ch, i))
            i += 1
        elif ch == "'":
            value, end = _read_quoted(text, i)
            tokens.append(Token("string", text[i:end], value, i))
            i = end
        elif ch == '"':
            value, end = _read_json_string(text, i)
            tokens.append(Token("dstring", text[i:end], value, i))
            i = end
        else:
            match = _WORD.match(text, i)
            if match is None:
                raise odata_error(f"Syntax error: character '{ch}' is not valid at position {i} in '{text}'.")
            word = match.group(0)
            end = match.end()
            if end < len(text) and text[end] == "'" and _IDENT.match(word):
                value, quote_end = _read_quoted(text, end)
                tokens.append(Token("enum", text[i:quote_end], (word, value), i))
                i = quote_end
                continue
            tokens.append(Token("word", word, word, i))
            i = end
    tokens.append(Token("end", "", None, len(text)))
    return tokens


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    """A single-quoted literal; ``''`` inside stands for one quote."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        if text[i] == "'":
            if i + 1 < len(text) and text[i + 1] == "'":
                out.append("'")
                i += 2
                continue
            return "".join(out), i + 1
        out.append(text[i])
        i += 1
    raise odata_error(f"There is an unterminated string literal at position {start} in '{text}'.")


def _read_json_string(text: str, start: int) -> tuple[str, int]:
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            try:
                return str(json.loads(text[start : i + 1])), i + 1
            except ValueError as exc:
                raise odata_error(f"Invalid string literal at position {start} in '{text}'.") from exc
        i += 1
    raise odata_error(f"There is an unterminated string literal at position {start} in '{text}'.")


# --- the tree -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    kind: str  # string, int, decimal, bool, null, guid, datetime, enum
    value: Any


@dataclass(frozen=True)
class Prop:
    path: tuple[str, ...]
    kind: str


@dataclass(frozen=True)
class Call:
    """tolower/toupper applied to a property."""

    name: str
    arg: Prop


Operand = Literal | Prop | Call


@dataclass(frozen=True)
class Compare:
    op: str
    left: Operand
    right: Operand


@dataclass(frozen=True)
class Match:
    func: str  # contains, startswith, endswith
    prop: Operand
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class InList:
    prop: Prop
    values: tuple[str, ...]
    negate: bool

    @functools.cached_property
    def folded(self) -> frozenset[str]:
        # Folded once per query, not once per row: a 250-GUID In() is checked against every row.
        return frozenset(_fold(v) for v in self.values)


@dataclass(frozen=True)
class BoolOp:
    op: str  # and, or
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Compare | Match | InList | BoolOp | Not

# Resolves a property path to its kind, or raises the "could not find a property" fault.
PropertyCheck = Callable[[tuple[str, ...]], str]
Getter = Callable[[Any, tuple[str, ...]], Any]


def parse_literal(token: Token, text: str) -> Literal:
    if token.kind == "string":
        return Literal("string", token.value)
    if token.kind == "enum":
        return Literal("enum", token.value[1])
    word = str(token.text)
    if word == "null":
        return Literal("null", None)
    if word in ("true", "false"):
        return Literal("bool", word == "true")
    if _GUID.match(word):
        return Literal("guid", word.lower())
    if _DATETIME.match(word):
        return Literal("datetime", parse_datetime(word))
    if _NUMBER.match(word):
        if "." in word or "e" in word.lower():
            return Literal("decimal", float(word))
        return Literal("int", int(word))
    raise odata_error(f"Syntax error at position {token.pos} in '{text}'.")


def parse_datetime(word: str) -> datetime:
    if "T" not in word:
        day = date.fromisoformat(word)
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    value = datetime.fromisoformat(word.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class _Parser:
    def __init__(self, text: str, check: PropertyCheck) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.check = check

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def expect(self, text: str) -> Token:
        token = self.take()
        if token.text != text or token.kind not in ("punct", "word"):
            raise odata_error(f"Syntax error: '{text}' expected at position {token.pos} in '{self.text}'.")
        return token

    def is_word(self, *words: str) -> bool:
        token = self.peek()
        return token.kind == "word" and token.text in words

    def parse(self) -> Node:
        node = self.parse_or()
        if self.peek().kind != "end":
            token = self.peek()
            raise odata_error(f"Syntax error at position {token.pos} in '{self.text}'.")
        return node

    def parse_or(self) -> Node:
        items = [self.parse_and()]
        while self.is_word("or"):
            self.take()
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def parse_and(self) -> Node:
        items = [self.parse_not()]
        while self.is_word("and"):
            self.take()
            items.append(self.parse_not())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def parse_not(self) -> Node:
        if self.is_word("not"):
            self.take()
            return Not(self.parse_not())
        return self.parse_primary()

    def parse_primary(self) -> Node:
        token = self.peek()
        if token.kind == "punct" and token.text == "(":
            self.take()
            node = self.parse_or()
            self.expect(")")
            return node
        if token.kind == "word" and self.tokens[self.i + 1].text == "(":
            name = token.text
            if name in ("contains", "startswith", "endswith"):
                return self.parse_match()
            if name in ("Microsoft.Dynamics.CRM.In", "Microsoft.Dynamics.CRM.NotIn"):
                return self.parse_in()
            if name not in ("tolower", "toupper"):
                raise odata_error(
                    f"The query function '{name}' is not supported by this simulator.", status=501
                )
        left = self.parse_operand()
        op_token = self.take()
        if op_token.kind != "word" or op_token.text not in _OPERATORS:
            raise odata_error(f"Syntax error at position {op_token.pos} in '{self.text}'.")
        right = self.parse_operand()
        _check_types(op_token.text, left, right)
        return Compare(op_token.text, left, right)

    def parse_operand(self) -> Operand:
        token = self.take()
        if token.kind == "word" and token.text in ("tolower", "toupper"):
            self.expect("(")
            arg = self.parse_operand()
            self.expect(")")
            if not isinstance(arg, Prop):
                raise odata_error(f"'{token.text}' needs a property at position {token.pos}.")
            return Call(token.text, arg)
        if (
            token.kind == "word"
            and _IDENT.match(token.text)
            and token.text
            not in (
                "null",
                "true",
                "false",
            )
        ):
            path = [token.text]
            while self.peek().text == "/" and self.peek().kind == "punct":
                self.take()
                segment = self.take()
                if segment.kind != "word":
                    raise odata_error(f"Syntax error at position {segment.pos} in '{self.text}'.")
                path.append(segment.text)
            key = tuple(path)
            return Prop(key, self.check(key))
        if token.kind in ("string", "enum", "word"):
            return parse_literal(token, self.text)
        raise odata_error(f"Syntax error at position {token.pos} in '{self.text}'.")

    def parse_match(self) -> Node:
        func = self.take().text
        self.expect("(")
        prop = self.parse_operand()
        self.expect(",")
        literal_token = self.take()
        self.expect(")")
        if literal_token.kind != "string":
            raise odata_error(f"The second argument of '{func}' must be a string literal in '{self.text}'.")
        kind = _kind(prop)
        if kind not in ("string", "any"):
            raise odata_error(
                f"No function signature for the function with name '{func}' matches the specified "
                f"arguments. The function signatures considered are: {func}(Edm.String Nullable=true,"
                " Edm.String Nullable=true)."
            )
        value = str(literal_token.value)
        pattern = {"contains": f"%{value}%", "startswith": f"{value}%", "endswith": f"%{value}"}[func]
        return Match(func, prop, like_pattern(pattern))

    def parse_in(self) -> Node:
        func = self.take().text
        self.expect("(")
        params: dict[str, Any] = {}
        while True:
            name = self.take()
            self.expect("=")
            if self.peek().text == "[":
                params[name.text] = self.parse_values()
            else:
                params[name.text] = self.take()
            if self.peek().text == ",":
                self.take()
                continue
            self.expect(")")
            break
        prop_token = params.get("PropertyName")
        values = params.get("PropertyValues")
        if not isinstance(prop_token, Token) or prop_token.kind != "string" or values is None:
            raise odata_error(
                f"'{func}' needs PropertyName='<column>' and PropertyValues=[...] in '{self.text}'."
            )
        path = (str(prop_token.value),)
        prop = Prop(path, self.check(path))
        if prop.kind == "guid":
            # Each value is converted to the column's type: one that is not a GUID fails the query.
            for value in values:
                if not _GUID.match(value):
                    raise odata_error(
                        "Guid should contain 32 digits with 4 dashes "
                        f"(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx). Value: '{value}'"
                    )
        return InList(prop, tuple(values), negate=func.endswith("NotIn"))

    def parse_values(self) -> list[str]:
        self.expect("[")
        values: list[str] = []
        while self.peek().text != "]":
            token = self.take()
            if token.kind not in ("string", "dstring"):
                raise odata_error(
                    f"Cannot convert the literal '{token.text}' to the expected type 'Edm.String'."
                )
            values.append(str(token.value))
            if self.peek().text == ",":
                self.take()
        self.expect("]")
        return values


def _kind(operand: Operand) -> str:
    if isinstance(operand, Prop):
        return operand.kind
    if isinstance(operand, Call):
        return operand.arg.kind
    return operand.kind


def _compatible(prop_kind: str, literal_kind: str) -> bool:
    if "any" in (prop_kind, literal_kind) or literal_kind == "null":
        return True
    if prop_kind in NUMERIC:
        return literal_kind in NUMERIC
    if prop_kind == "string":
        return literal_kind in ("string", "enum")
    return prop_kind == literal_kind


def _check_types(op: str, left: Operand, right: Operand) -> None:
    lk, rk = _kind(left), _kind(right)
    if not (_compatible(lk, rk) or _compatible(rk, lk)):
        raise odata_error(
            "A binary operator with incompatible types was detected. Found operand types "
            f"'{EDM.get(lk, lk)}' and '{EDM.get(rk, rk)}' for operator kind '{_OP_NAMES[op]}'."
        )


def like_pattern(pattern: str) -> re.Pattern[str]:
    """Translate a SQL LIKE pattern (``% _ [abc] [^abc]``) to a case-insensitive regex."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        elif ch == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end]
            negate = body.startswith("^")
            body = body[1:] if negate else body
            out.append("[" + ("^" if negate else "") + re.escape(body).replace("\\-", "-") + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def parse_filter(text: str, check: PropertyCheck) -> Node:
    return _Parser(text, check).parse()


# --- evaluation -----------------------------------------------------------------------------


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _operand_value(operand: Operand, row: Any, get: Getter) -> Any:
    if isinstance(operand, Literal):
        return operand.value
    if isinstance(operand, Call):
        value = get(row, operand.arg.path)
        if isinstance(value, str):
            return value.lower() if operand.name == "tolower" else value.upper()
        return value
    return get(row, operand.path)


def _compare(op: str, left: Any, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        left, right = left.casefold(), right.casefold()
    if op == "eq":
        return bool(left == right)
    if op == "ne":
        return bool(left != right)
    if left is None or right is None:
        return False
    try:
        if op == "gt":
            return bool(left > right)
        if op == "ge":
            return bool(left >= right)
        if op == "lt":
            return bool(left < right)
        return bool(left <= right)
    except TypeError:
        return False


def evaluate(node: Node, row: Any, get: Getter) -> bool:
    if isinstance(node, BoolOp):
        results = (evaluate(item, row, get) for item in node.items)
        return all(results) if node.op == "and" else any(results)
    if isinstance(node, Not):
        return not evaluate(node.item, row, get)
    if isinstance(node, Compare):
        return _compare(node.op, _operand_value(node.left, row, get), _operand_value(node.right, row, get))
    if isinstance(node, Match):
        value = _operand_value(node.prop, row, get)
        return isinstance(value, str) and node.pattern.fullmatch(value) is not None
    value = get(row, node.prop.path)
    text = _fold(str(value).lower() if isinstance(value, bool) else str(value)) if value is not None else None
    found = text is not None and text in node.folded
    return found != node.negate


# --- $select, $orderby, keys ------------------------------------------------------------------


def parse_select(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",")]
    if any(not name for name in names):
        raise odata_error(f"Syntax error in $select '{text}'.")
    return names


def parse_orderby(text: str) -> list[tuple[str, bool]]:
    """``modifiedon desc,leadid`` -> [("modifiedon", True), ("leadid", False)]."""
    out: list[tuple[str, bool]] = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1] not in ("asc", "desc")):
            raise odata_error(f"Syntax error in $orderby '{text}'.")
        out.append((words[0], len(words) == 2 and words[1] == "desc"))
    return out


@dataclass(frozen=True)
class KeySegment:
    """A key in parentheses: a bare primary key, or named key values (alternate key)."""

    primary: str | None
    named: dict[str, Any]


def parse_key(text: str) -> KeySegment:
    tokens = tokenize(text)
    if len(tokens) == 2:
        literal = parse_literal(tokens[0], text)
        if literal.kind != "guid":
            raise odata_error(f"Bad Request - Error in query syntax: '{text}' is not a valid key.")
        return KeySegment(str(literal.value), {})
    named: dict[str, Any] = {}
    i = 0
    while tokens[i].kind != "end":
        name, eq, value = tokens[i], tokens[i + 1], tokens[i + 2]
        if name.kind != "word" or eq.text != "=" or value.kind == "end":
            raise odata_error(f"Bad Request - Error in query syntax: '{text}' is not a valid key.")
        named[name.text] = parse_literal(value, text).value
        i += 3
        if tokens[i].text == ",":
            i += 1
    return KeySegment(None, named)


def split_segments(path: str) -> list[str]:
    """Split a resource path on ``/`` outside quotes and parentheses."""
    if "/" not in path:  # one segment (a row's path, most of a $batch): no need to walk it
        return [path] if path else []
    segments: list[str] = []
    depth, quoted, start = 0, False, 0
    for i, ch in enumerate(path):
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        elif not quoted and depth == 0 and ch == "/":
            segments.append(path[start:i])
            start = i + 1
    segments.append(path[start:])
    return [s for s in segments if s]


def split_name_and_key(segment: str) -> tuple[str, str | None]:
    """``leads(mdsync_marketoid='1')`` -> ("leads", "mdsync_marketoid='1'")."""
    if segment.endswith(")") and "(" in segment:
        head = segment.index("(")
        return segment[:head], segment[head + 1 : -1]
    return segment, None


def check_all(names: Sequence[str], check: PropertyCheck) -> None:
    for name in names:
        check((name,))


__all__ = [
    "DataverseFault",
    "KeySegment",
    "Node",
    "evaluate",
    "parse_filter",
    "parse_key",
    "parse_orderby",
    "parse_select",
]
