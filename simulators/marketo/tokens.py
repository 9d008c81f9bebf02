"""Access tokens of the identity service: one live token at a time, reused until it expires.

The first use of an expired token answers 602, later uses of the same string 601 (developer
blog, error handling part 3). Unknown strings answer 601; no token at all 600.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from simulators.marketo.faults import fault


@dataclass
class _Token:
    expires_at: float
    expiry_reported: bool = False


class TokenStore:
    def __init__(self, ttl_seconds: float, clock: Callable[[], float]) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._tokens: dict[str, _Token] = {}
        self._current: str | None = None

    def issue(self) -> tuple[str, int]:
        """The live token and its remaining whole seconds; a new one if none is live."""
        now = self._clock()
        name = self._current
        current = self._tokens.get(name) if name else None
        if name is None or current is None or current.expires_at <= now:
            name = self._current = f"{uuid.uuid4()}:sim"
            current = self._tokens[name] = _Token(now + self._ttl)
        return name, max(int(current.expires_at - now), 0)

    def check(self, token: str | None) -> None:
        if not token:
            raise fault("600")
        found = self._tokens.get(token)
        if found is None:
            raise fault("601")
        if found.expires_at <= self._clock():
            if found.expiry_reported:
                raise fault("601")
            found.expiry_reported = True
            raise fault("602")

    def expire_all(self) -> int:
        now = self._clock()
        live = [t for t in self._tokens.values() if t.expires_at > now]
        for token in live:
            token.expires_at = now
        return len(live)

    def clear(self) -> None:
        self._tokens.clear()
        self._current = None
