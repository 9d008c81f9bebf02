"""Function, host and master keys, checked the way the Functions host checks them.

``anonymous`` needs nothing; ``function`` takes one of that function's keys, any host key or the
master key; ``admin`` takes only the master key. The key travels as ``?code=`` or in the
``x-functions-key`` header (the header wins when both are present). Every candidate is compared
with :func:`hmac.compare_digest` and all of them are always compared, so the time taken does not
say which key nearly matched.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum

KEY_HEADER = "x-functions-key"
KEY_QUERY = "code"


class AuthLevel(StrEnum):
    ANONYMOUS = "anonymous"
    FUNCTION = "function"
    ADMIN = "admin"

    @classmethod
    def parse(cls, value: object) -> AuthLevel:
        """``"FUNCTION"`` (function.json), ``AuthLevel.FUNCTION`` or ``"function"``."""
        text = str(getattr(value, "value", value) or "function")
        return cls(text.lower())


def _matches_any(presented: str, candidates: Iterable[str]) -> bool:
    given = presented.encode()
    found = False
    for candidate in candidates:
        # No early exit: compare against every key.
        found |= hmac.compare_digest(given, candidate.encode())
    return found


class KeyRing:
    """The keys of one local host."""

    def __init__(
        self,
        *,
        function_keys: Mapping[str, str | Sequence[str]],
        host_keys: Sequence[str],
        master_key: str,
    ) -> None:
        if not master_key:
            raise ValueError("the master key must not be empty")
        self._function_keys = {
            name.lower(): [keys] if isinstance(keys, str) else list(keys)
            for name, keys in function_keys.items()
        }
        self._host_keys = [key for key in host_keys if key]
        self.master_key = master_key

    def allows(self, level: AuthLevel, function_name: str | None, presented: str | None) -> bool:
        if level is AuthLevel.ANONYMOUS:
            return True
        if not presented:
            return False
        if level is AuthLevel.ADMIN:
            return _matches_any(presented, [self.master_key])
        own = self._function_keys.get((function_name or "").lower(), [])
        return _matches_any(presented, [*own, *self._host_keys, self.master_key])


def presented_key(headers: Mapping[str, str], params: Mapping[str, str]) -> str | None:
    """The key a request carries: header first, then the ``code`` query parameter."""
    return headers.get(KEY_HEADER) or params.get(KEY_QUERY) or None
