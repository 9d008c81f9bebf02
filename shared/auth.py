"""Inbound secrets, compared in constant time."""

from __future__ import annotations

import hmac

from pydantic import SecretStr


def secret_matches(presented: str | None, expected: SecretStr) -> bool:
    """True when ``presented`` equals the configured secret; timing does not reveal how close."""
    if not presented:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.get_secret_value().encode("utf-8"))
