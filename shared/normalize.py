"""Canonical values: how a field's value from either system is compared and stored in the shadow.

Two values that mean the same (" Ana " and "Ana", option 8 and "Web", ``"true"`` and ``True``,
a "User Local" date-only instant and the calendar date a user typed) have one canonical form;
:func:`same` compares two canonical values (emails without case: "Ana@X.com" is "ana@x.com",
but each side keeps the case it was typed in, and a copy carries it). Canonicalisation is
idempotent and round-trips through each side's representation, so a value copied to the other
side reads back equal and no pair ever ping-pongs.

Dates depend on the Dynamics column's DateTimeBehavior (bound into the field by
``shared.mapping.bind_dates``): a UserLocal value is an instant (a date-only column stores the
user's local midnight, so its calendar date is read in the field's time zone), a DateOnly value
is a calendar date, a TimeZoneIndependent value is a face value in the field's time zone.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from shared.mapping import DateBehavior, FieldMap, FieldType, Side
from shared.notices import FieldValue

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


class UnmappedOptionError(ValueError):
    """An option value has no counterpart in the field's value map: a Marketo string with no
    Dynamics option value, or a Dynamics option with no Marketo string. It is reported, never
    sent as a raw number or text."""


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


def _moment(value: object) -> datetime | str | None:
    """An aware datetime, or the text when it is not a date (it stays visible, compared as text)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), UTC)
    text = _text(value)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _face(moment: datetime) -> datetime:
    """A TimeZoneIndependent value: its digits, whatever zone marker came with them."""
    return moment.replace(tzinfo=None)


def _utc_text(moment: datetime) -> str:
    return _text_z(moment.astimezone(UTC))


def _text_z(moment: datetime) -> str:
    """``yyyy-mm-ddThh:mm:ssZ`` (isoformat pads the year, strftime does not everywhere)."""
    return moment.replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def _is_date_only(value: object) -> bool:
    if isinstance(value, date):
        return not isinstance(value, datetime)
    return isinstance(value, str) and len(value.strip()) == 10


def _datetime(field: FieldMap, value: object, side: Side) -> FieldValue:
    """An instant, as UTC text."""
    moment = _moment(value)
    if not isinstance(moment, datetime):
        return moment
    if side is Side.DYNAMICS and field.dynamics_date in (
        DateBehavior.TIME_ZONE_INDEPENDENT,
        DateBehavior.DATE_ONLY,
    ):
        # A face value: the instant it names in the zone it was typed in.
        moment = _face(moment).replace(tzinfo=field.zone)
    return _utc_text(moment)


def _date(field: FieldMap, value: object, side: Side) -> FieldValue:
    """A calendar date, as yyyy-mm-dd."""
    moment = _moment(value)
    if not isinstance(moment, datetime):
        return moment
    local = side is Side.DYNAMICS and field.dynamics_date is DateBehavior.USER_LOCAL
    if local and not _is_date_only(value):
        # Stored as the typing user's local midnight, returned in UTC: read it back in that zone.
        return moment.astimezone(field.zone).date().isoformat()
    return _face(moment).date().isoformat()


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


@dataclass(frozen=True)
class Known:
    """A value already in canonical form (a shadow's memory standing in for a read)."""

    value: FieldValue


def canonical(field: FieldMap, value: object, side: Side) -> FieldValue:
    """The canonical form of ``value`` as read from ``side``."""
    if value is None:
        return None
    if isinstance(value, Known):
        return value.value
    match field.type:
        case FieldType.BOOLEAN:
            return _boolean(value)
        case FieldType.INTEGER:
            return _number(value, integer=True)
        case FieldType.NUMBER | FieldType.MONEY:
            return _number(value, integer=False)
        case FieldType.DATETIME:
            return _datetime(field, value, side)
        case FieldType.DATE:
            return _date(field, value, side)
        case FieldType.OPTION:
            return _option(field, value)
        case _:
            return _text(value)


def same(field: FieldMap, left: object, right: object) -> bool:
    """Whether two canonical values of ``field`` mean the same (emails compare without case)."""
    if field.type is FieldType.EMAIL and isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()
    return left == right


def email_key(value: object) -> str | None:
    """An email address as lookups match it (both systems compare them without case)."""
    text = _text(value) if value is not None else None
    return text.lower() if text else None


def unmapped_option(field: FieldMap, value: FieldValue) -> int | None:
    """The Dynamics option number a canonical value stands for when the value map names no
    Marketo value for it (``#<n>``); None otherwise."""
    if field.type is FieldType.OPTION and isinstance(value, str):
        match = _OPTION_NUMBER.match(value)
        if match is not None and value.startswith("#"):
            return int(match.group(1))
    return None


def to_marketo(field: FieldMap, value: FieldValue) -> FieldValue:
    """The value to write to Marketo for a canonical value; raises UnmappedOptionError for a
    Dynamics option the value map does not name (Marketo would get a bare number)."""
    number = unmapped_option(field, value)
    if number is not None:
        raise UnmappedOptionError(
            f"{field.dynamics}: Dynamics option {number} has no Marketo value in the mapping of "
            f"{field.marketo} (add it to 'values')"
        )
    return value


def to_dynamics(field: FieldMap, value: FieldValue) -> FieldValue:
    """The value to write to Dataverse for a canonical value; raises UnmappedOptionError."""
    if value is None:
        return None
    if field.type is FieldType.DATE and field.dynamics_date is not None:
        return _date_for_dynamics(field, str(value))
    if field.type is FieldType.DATETIME and field.dynamics_date is not None:
        return _datetime_for_dynamics(field, str(value))
    if field.type is not FieldType.OPTION:
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


def _date_for_dynamics(field: FieldMap, value: str) -> str:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return value  # not a date: Dataverse (or the pre-check) names the problem
    if field.dynamics_date is DateBehavior.USER_LOCAL:
        # What the form does for a user in that zone: local midnight, stored as UTC.
        return _utc_text(datetime.combine(day, time(), field.zone))
    if field.dynamics_date is DateBehavior.TIME_ZONE_INDEPENDENT:
        return f"{day.isoformat()}T00:00:00Z"
    return day.isoformat()


def _datetime_for_dynamics(field: FieldMap, value: str) -> str:
    moment = _moment(value)
    if not isinstance(moment, datetime):
        return value
    if field.dynamics_date is DateBehavior.USER_LOCAL:
        return _utc_text(moment)
    local = moment.astimezone(field.zone)
    if field.dynamics_date is DateBehavior.DATE_ONLY:
        return local.date().isoformat()
    return _text_z(local)
