"""The sync_log_retention timer, run by the local host as Azure runs it: the sync log keeps
SYNC_LOG_RETENTION_DAYS of entries and the local queue file is compacted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mdsync.harness import LocalSystem
from shared.ports import LogEntry


def test_the_daily_timer_expires_old_entries_and_keeps_recent_ones(system: LocalSystem) -> None:
    days = system.deps.settings.sync_log_retention_days
    now = datetime.now(UTC)
    system.deps.state.append_log(
        [
            LogEntry(424242, None, "lead", "to_dynamics", "past the retention", at=now - timedelta(days + 1)),
            LogEntry(424242, None, "lead", "to_dynamics", "inside it", at=now - timedelta(days - 1)),
            LogEntry(424242, None, "lead", "to_marketo", "today", at=now),
        ]
    )
    assert system.host is not None

    system.host.trigger_timer("sync_log_retention")

    details = [e.detail for e in system.deps.state.read_log(marketo_id=424242)]
    assert details == ["today", "inside it"]
