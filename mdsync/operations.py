"""Operator tools: read a person's sync log; list, replay or discard what the sync gave up on."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from shared.bootstrap import container
from shared.ports import GivenUp, LogEntry
from shared.redaction import mask_email, redact
from shared.replay import DEFAULT_LIMIT, list_given_up, subject
from shared.replay import replay as replay_given_up


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


def _given_up_table(items: Sequence[GivenUp], title: str) -> Table:
    table = Table(title=title)
    for column in ("store", "id", "since (UTC)", "about", "reason"):
        table.add_column(column)
    for item in items:
        table.add_row(
            item.store,
            item.item_id,
            item.at.strftime("%Y-%m-%d %H:%M:%S"),
            subject(item.body) or "unreadable message",
            redact(item.reason),
        )
    return table


def replay(
    *,
    console: Console,
    dry_run: bool,
    only: Sequence[str] = (),
    discard: bool = False,
    limit: int = DEFAULT_LIMIT,
) -> int:
    """List (``dry_run``), replay or discard what the sync gave up on, in every store."""
    deps = container()
    stores = deps.given_up
    if dry_run:
        items = [i for i in list_given_up(stores, limit=limit) if not only or i.item_id in only]
        console.print(_given_up_table(items, f"{len(items)} given-up item(s), replayable"))
        return 0
    report = replay_given_up(stores, deps.queue, only=set(only) or None, discard=discard, limit=limit)
    done = report.discarded if discard else report.replayed
    verb = "discarded" if discard else "re-queued"
    console.print(_given_up_table(done, f"{verb} {len(done)} item(s)"))
    for item, why in report.failed:
        console.print(f"[red]not replayed[/red] {item.store} {item.item_id}: {why} (it stays where it was)")
    missing = set(only) - {i.item_id for i in report.found}
    for item_id in sorted(missing):
        console.print(f"[red]not found[/red]: {item_id}")
    return 1 if report.failed or missing else 0
