"""Errors the simulator answers with: Marketo envelope codes and HTTP-level statuses."""

from __future__ import annotations


class MarketoFault(Exception):
    """A response-level error: HTTP 200 with ``success: false`` and this code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


class HttpFault(Exception):
    """An HTTP-level error (413, 414) answered before the Marketo envelope is involved."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"{status} {text}")
        self.status = status
        self.text = text


# Calls answered with these codes are not counted against the rate limit or the daily quota
# (codes marked * on the error-codes page).
UNCOUNTED_CODES = frozenset({"600", "601", "602", "604", "605", "608", "611"})

MESSAGES = {
    "600": "Access token not specified",
    "601": "Access token invalid",
    "602": "Access token expired",
    "603": "Access denied",
    "604": "Request timed out",
    "605": "HTTP Method not supported",
    "606": "Max rate limit '{limit}' exceeded with in '{window}' secs",
    "607": "Daily quota reached",
    "608": "API Temporarily Unavailable",
    "609": "Invalid JSON",
    "610": "Requested resource not found",
    "611": "System error",
    "612": "Invalid Content Type",
    "615": "Concurrent access limit reached",
    "713": "Transient Error",
}


def fault(code: str, **values: object) -> MarketoFault:
    return MarketoFault(code, MESSAGES.get(code, "Error").format(**values))
