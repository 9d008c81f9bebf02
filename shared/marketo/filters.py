"""Which values Get Leads by Filter Type can carry, decided before anything is sent. Pure.

``filterValues`` is one comma-separated text, with no way to quote a comma: a value holding one
would be read as two values, and could find another person's record. So would values Marketo
trims or refuses: a space, a control character, or for emails anything but an ASCII address
(Marketo takes ASCII email addresses only; one it cannot read makes it refuse the whole call).
Such a value is never sent: the caller sets its record aside and reports it.
"""

from __future__ import annotations

import re

MAX_ID = 2**31 - 1  # Marketo ids are 32-bit integers
MAX_EMAIL = 255
_EMAIL = re.compile(r"^[^@]+@[^@]+\.[^@]+$")


def unsendable(filter_type: str, value: str) -> str | None:
    """Why ``value`` cannot be sent as a ``filter_type`` filter value, or None when it can."""
    if not value:
        return "is empty"
    if "," in value:
        return "holds a comma, which Marketo's filter reads as a separator between two values"
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        return "holds a space or a control character"
    if filter_type == "id":
        if not (value.isascii() and value.isdigit() and 1 <= int(value) <= MAX_ID):
            return "is not a Marketo id"
    elif filter_type == "email":
        if not value.isascii():
            return "is not ASCII (Marketo takes ASCII email addresses only)"
        if len(value) > MAX_EMAIL or not _EMAIL.match(value):
            return "is not an email address Marketo can hold"
    return None
