"""How a simulated Marketo instance is set up: credentials, limits, extra person fields."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ExtraField:
    """A custom person field added on top of the standard set (Admin > Field Management)."""

    name: str
    display_name: str
    data_type: str = "string"
    length: int | None = 255
    soap_name: str | None = None
    read_only: bool = False


@dataclass(frozen=True)
class Limits:
    """The instance-wide limits, with Marketo's documented defaults."""

    rate_limit: int = 100
    rate_window_seconds: float = 20.0
    concurrency_limit: int = 10
    daily_quota: int = 50_000
    max_batch: int = 300
    max_filter_matches: int = 1_000
    # Activity positions scanned per activity page; 0 = no limit. A small value reproduces the
    # documented short (even empty) pages that still say moreResult=true.
    activity_scan_limit: int = 0


@dataclass(frozen=True)
class MarketoSimConfig:
    client_id: str = "mdsync-client"
    client_secret: str = "mdsync-secret-0123456789"
    api_user: str = "mdsync-api@sim.invalid"
    token_ttl_seconds: float = 3600.0
    limits: Limits = field(default_factory=Limits)
    # Trusted (besides the system store) by the outbound Call Webhook requests.
    extra_ca_file: Path | None = None
    webhook_timeout_seconds: float = 30.0
    extra_fields: tuple[ExtraField, ...] = ()
    # Seconds since the epoch. Tests pass a fake clock shared with the client so that token
    # expiry and the rolling rate window can be exercised without waiting.
    clock: Callable[[], float] = time.time
    first_lead_id: int = 1001
