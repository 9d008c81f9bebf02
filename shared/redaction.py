"""What may reach a log line: never a secret, never a full email address.

Emails are found on the *decoded* text, so every form an address takes on its way to a log is
caught: percent-encoded in a URL (``ana%40fabrikam.example``, twice-encoded ``%2540``), escaped
in JSON or a repr (``\\u0040``, ``\\xe9``), full-width (U+FF20), with a non-ASCII local part or
domain, quoted (``"ana lopez"@fabrikam.example``), or echoed in an exception message. A text
that holds one is logged decoded, with each address masked to its first character and its
domain (``a***@fabrikam.example``).

``install_log_redaction`` applies this to every log record of the process, whatever logger
made it, at the root of the logging tree: a filter on the root logger would miss records that
propagate from child loggers, so the record factory itself redacts each record as it is made
(its message, and the text of the exception it carries).
"""

from __future__ import annotations

import html
import logging
import re
import threading
import traceback
import unicodedata
from typing import Any
from urllib.parse import unquote

# What ends an address's local part: spaces and the characters that delimit it in JSON, lists
# and prose. Everything else can be part of one (non-ASCII letters, ``'``, ``+``, ``=``, ``/``).
# One exception: ``...?name=`` or ``&name=`` before it reads as a URL query, and is kept.
_EDGE = r"\s@<>()\[\]\\,;:\""
_EMAIL = re.compile(rf"(\"[^\"\r\n]*\"|[^{_EDGE}]+)@([\w\-.]+)")
# ``...?filterType=email&filterValues=ana``: the query before the value is not the address.
_QUERY_PREFIX = re.compile(r"^.*[?&][^=]*=")
_SECRETS = re.compile(r"(?i)(code|client_secret|access_token|key|secret|password|sig)=([^&\s]+)")
_BEARER = re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=\-:]+")
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\x([0-9a-fA-F]{2})")
# Any of these means the text may hold an address in some form.
_HINTS = ("@", "%", "\\u", "\\x", "&#", "&commat;", "\uff20", "\ufe6b")


def _unescape(match: re.Match[str]) -> str:
    code = match.group(1) or match.group(2)
    try:
        return chr(int(code, 16))
    except ValueError:
        return match.group(0)


def decoded(text: str) -> str:
    """``text`` with the encodings an address may hide under undone: percent-encoding (repeatedly),
    JSON and repr escapes, and compatibility forms (NFKC: U+FF20 is ``@``)."""
    for _ in range(4):
        plain = unquote(text)
        if plain == text:
            break
        text = plain
    text = html.unescape(_ESCAPE.sub(_unescape, text))
    # A lone surrogate (from a JSON escape) has no NFKC form; it is kept as a replacement mark.
    safe = text.encode("utf-8", "replace").decode("utf-8")
    return unicodedata.normalize("NFKC", safe)


def _mask(match: re.Match[str]) -> str:
    run, domain = match.group(1), match.group(2).rstrip(".")
    prefix = ""
    if not run.startswith('"') and (query := _QUERY_PREFIX.match(run)):
        prefix, run = query.group(0), run[query.end() :]
    if not run:
        return match.group(0)
    first = run[1] if run.startswith('"') and len(run) > 2 else run[0]
    return f"{prefix}{first}***@{domain}" + match.group(2)[len(domain) :]


def _has_hint(text: str) -> bool:
    lowered = text.lower()
    return any(hint in lowered for hint in _HINTS)


def mask_email(email: str | None) -> str:
    """``ana.lopez@fabrikam.example`` -> ``a***@fabrikam.example`` (any form, see the module)."""
    if not email:
        return "-"
    return _mask_emails(email)


def _mask_emails(text: str) -> str:
    if not _has_hint(text):
        return text
    plain = decoded(text)
    return _EMAIL.sub(_mask, plain) if _EMAIL.search(plain) else text


def redact(text: str) -> str:
    """Mask emails, query-string secrets and bearer tokens in free text (URLs, messages)."""
    text = _SECRETS.sub(lambda m: f"{m.group(1)}=***", text)
    text = _BEARER.sub("Bearer ***", text)
    return _mask_emails(text)


def redact_record(record: logging.LogRecord) -> None:
    """Rewrite a log record in place so that neither its message nor its exception text holds a
    secret or an address. A record without either is left untouched."""
    try:
        message = record.getMessage()
    except (TypeError, ValueError):  # a bad format string: logging reports it itself
        return
    cleaned = redact(message)
    if cleaned != message:
        record.msg, record.args = cleaned, ()
    if record.exc_info and record.exc_info[1] is not None:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        cleaned = redact(text)
        if cleaned != text:
            # Formatters print exc_text when it is set; the exception object itself (which a
            # handler could format again) is dropped, since its message holds the address.
            record.exc_text, record.exc_info = cleaned, None


class RedactingFilter(logging.Filter):
    """The same redaction as a filter, for a handler or logger that wants it explicitly."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


_installed = threading.Lock()
_factory_installed = False


def install_log_redaction() -> None:
    """Redact every log record of the process as it is made (idempotent). Called where the app,
    the local host and the CLI start."""
    global _factory_installed  # noqa: PLW0603 - one record factory per process is the point
    with _installed:
        if _factory_installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            redact_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _factory_installed = True
