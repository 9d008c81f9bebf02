"""Inbound secrets, compared in constant time."""

from __future__ import annotations

import hmac


def secret_matches(presented: str | None, expected: str) -> bool:
    """True when ``presented`` equals the configured secret; timing does not reveal how close."""
    if not presented:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))
