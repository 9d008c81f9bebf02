"""Operator tools: read a person's sync log, replay parked notices and dead letters."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from shared.bootstrap import container
from shared.notices import Notice
from shared.ports import LocalQueue, LogEntry
from shared.redaction import mask_email


def _entries(person: str, limit: int) -> tuple[str, list[LogEntry]]:
    deps = container()
    if person.isdigit():
        return f"Marketo person {person}", deps.state.read_log(marketo_id=int(person), limit=limit)
    if "@" in person:
        found = deps.marketo.get_leads_by_filter("email", [person.strip().lower()], ["id", "email"])
        entries: list[LogEntry] = []
        for record in found:
            entries += deps.state.read_log(marketo_id=int(record["id"]), limit=limit)
        entries.sort(key=lambda e: e.at.timestamp() if e.at else 0, reverse=True)
        return f"{mask_email(person)} ({len(found)} Marketo person(s))", entries[:limit]
    return f"Dynamics record {person}", deps.state.read_log(dynamics_id=person.lower(), limit=limit)


def print_log(person: str, *, limit: int, console: Console) -> int:
    title, entries = _entries(person, limit)
    if not entries:
        console.print(f"no sync log entries for {title}")
        return 1
    table = Table(title=f"Sync log of {title} (newest first)")
    for column in ("when (UTC)", "entity", "Marketo", "Dynamics", "what", "detail"):
        table.add_column(column)
    for entry in entries:
        when = entry.at.strftime("%Y-%m-%d %H:%M:%S") if entry.at else "-"
        table.add_row(
            when,
            entry.entity,
            str(entry.marketo_id or "-"),
            entry.dynamics_id or "-",
            entry.action,
            entry.detail,
        )
    console.print(table)
    return 0


def replay(*, console: Console, dry_run: bool) -> int:
    deps = container()
    parked = deps.state.parked()
    notices = [Notice.from_json(p.body).retry(0) for p in parked]
    console.print(f"{len(parked)} parked notice(s)")
    queue = deps.queue
    dead = queue.dead_letters() if isinstance(queue, LocalQueue) else []
    console.print(f"{len(dead)} dead letter(s) in the local queue")
    if dry_run:
        return 0
    if notices:
        queue.send(notices)
        deps.state.unpark(p.dedup_id for p in parked)
    if dead and hasattr(queue, "resubmit_dead_letters"):
        queue.resubmit_dead_letters([d.message_id for d in dead])
    console.print(f"re-queued {len(notices)} parked notice(s) and {len(dead)} dead letter(s)")
    return 0
