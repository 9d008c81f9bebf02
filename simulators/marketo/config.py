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
class BulkLimits:
    """Bulk Lead Extract and Bulk Lead Import: the documented limits, and the pace of the jobs.

    Marketo documents the limits (2 jobs processing and 10 queued per queue, 500 MB of export
    files a day, files kept 7 days and statuses 30, date filters of at most 31 days, import files
    under 10 MB) but not how fast a job runs, so the pace is a setting: rows per second per job
    (0 = as fast as the simulator can go) and the wait before a queued job starts. Tests keep the
    fast defaults; a bench can slow them down to what it wants to model."""

    max_processing: int = 2
    max_queued: int = 10  # including the processing ones
    export_daily_quota_bytes: int = 500 * 1024 * 1024
    import_max_bytes: int = 10 * 1024 * 1024
    max_date_range_days: int = 31
    file_retention_days: float = 7.0
    status_retention_days: float = 30.0
    # Filters this subscription lacks (1035): some of "updatedAt", "smartListId", "smartListName".
    unsupported_filters: frozenset[str] = frozenset()
    extract_rows_per_second: float = 0.0
    import_rows_per_second: float = 0.0
    start_delay_seconds: float = 0.0


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
    bulk: BulkLimits = field(default_factory=BulkLimits)
