"""Canonical values: how a field's value from either system is compared and stored in the shadow.

Two values that mean the same (" Ana " and "Ana", "ANA@X.COM" and "ana@x.com", option 8 and
"Web", ``"true"`` and ``True``) have one canonical form. Canonicalisation is idempotent and
round-trips through each side's representation, so a value copied to the other side reads back
equal and no pair ever ping-pongs.
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import UTC, date, datetime

from shared.mapping import FieldMap, FieldType, Side
from shared.notices import FieldValue

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


class UnmappedOptionError(ValueError):
    """A Marketo string has no Dynamics option value in the field's value map."""


def _text(value: object) -> str | None:
    text = unicodedata.normalize("NFC", str(value)).replace("\r\n", "\n").strip()
    return text or None


def _boolean(value: object) -> FieldValue:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    text = _text(value)
    if text is None:
        return None
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return text


def _number(value: object, *, integer: bool) -> FieldValue:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        number = float(value) if isinstance(value, float | str) else float(str(value))
    except (TypeError, ValueError):
        return _text(value)
    if not math.isfinite(number):
        return _text(value)
    if number.is_integer():
        return int(number)
    return _text(value) if integer else round(number, 10)


def _datetime(value: object) -> FieldValue:
    if isinstance(value, datetime):
        moment = value
    else:
        text = _text(value)
        if text is None:
            return None
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _date(value: object) -> FieldValue:
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    text = _text(value)
    if text is None:
        return None
    try:
        return date.fromisoformat(text[:10]).isoformat()
    except ValueError:
        return text


_OPTION_NUMBER = re.compile(r"^#?(-?\d{1,18})$")
# No option set has values this large (Dataverse's are 32-bit): such a number stays plain text.
_OPTION_LIMIT = 10**18


def _option(field: FieldMap, value: object) -> FieldValue:
    """Labels from the value map; a number the map does not name stays visible as ``#<n>``."""
    if isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer():
        number = int(value)
        if abs(number) >= _OPTION_LIMIT:
            return str(number)
    else:
        text = _text(value)
        if text is None:
            return None
        match = _OPTION_NUMBER.match(text)
        if match is None:
            code = field.option_value(text)
            return field.option_label(code) if code is not None else text
        number = int(match.group(1))
    label = field.option_label(number)
    return label if label is not None else f"#{number}"


def canonical(field: FieldMap, value: object, side: Side) -> FieldValue:
    """The canonical form of ``value`` as read from ``side``."""
    if value is None:
        return None
    match field.type:
        case FieldType.EMAIL:
            text = _text(value)
            return text.lower() if text else None
        case FieldType.BOOLEAN:
            return _boolean(value)
        case FieldType.INTEGER:
            return _number(value, integer=True)
        case FieldType.NUMBER:
            return _number(value, integer=False)
        case FieldType.DATETIME:
            return _datetime(value)
        case FieldType.DATE:
            return _date(value)
        case FieldType.OPTION:
            return _option(field, value)
        case _:
            return _text(value)


def to_marketo(field: FieldMap, value: FieldValue) -> FieldValue:
    """The value to write to Marketo for a canonical value."""
    if value is None:
        return None
    if field.type is FieldType.OPTION and isinstance(value, str) and value.startswith("#"):
        # A Dynamics option the value map does not name: Marketo gets the raw number as text.
        return value[1:]
    return value


def to_dynamics(field: FieldMap, value: FieldValue) -> FieldValue:
    """The value to write to Dataverse for a canonical value; raises UnmappedOptionError."""
    if value is None or field.type is not FieldType.OPTION:
        return value
    text = str(value)
    match = _OPTION_NUMBER.match(text)
    if match is not None and text.startswith("#"):
        return int(match.group(1))
    code = field.option_value(text)
    if code is None:
        allowed = ", ".join(sorted((field.values or {}).values()))
        raise UnmappedOptionError(
            f"{field.marketo}: {text!r} has no Dynamics value in {field.dynamics} (allowed: {allowed})"
        )
    return code
