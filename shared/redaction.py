"""What may reach a log line: never a secret, never a full email address."""

from __future__ import annotations

import logging
import re

_EMAIL = re.compile(r"([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*@([A-Za-z0-9.\-]+)")
_SECRETS = re.compile(r"(?i)(code|client_secret|access_token|key|secret|password|sig)=([^&\s]+)")
_BEARER = re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=\-:]+")


def mask_email(email: str | None) -> str:
    """``ana.lopez@fabrikam.example`` -> ``a***@fabrikam.example``."""
    if not email:
        return "-"
    return _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", email)


def redact(text: str) -> str:
    """Mask emails, query-string secrets and bearer tokens in free text (URLs, messages)."""
    text = _SECRETS.sub(lambda m: f"{m.group(1)}=***", text)
    text = _BEARER.sub("Bearer ***", text)
    return _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)


class RedactingFilter(logging.Filter):
    """Rewrites a record whose text holds a secret or an email (urllib3 logs whole URLs at
    DEBUG, and Marketo's identity call carries the client secret in its query string)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


_FILTER = RedactingFilter()
HTTP_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry", "msal.application", "msal.authority")


def install_log_redaction() -> None:
    """Put the filter on the loggers of the HTTP libraries we use (idempotent)."""
    for name in HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
