"""Operator tools: read a person's sync log (replaying is the console's: ``mdsync.console_commands``).

``mdsync log`` needs the state store; looking a person up by email also asks Marketo (live
persons) and Dataverse (leads and contacts, whose log entries outlive a deleted person).
"""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from shared.bootstrap import container
from shared.dataverse import odata
from shared.ports import LogEntry
from shared.redaction import mask_email


def _entries(person: str, limit: int) -> tuple[str, list[LogEntry]]:
    deps = container()
    if person.isdigit():
        return f"Marketo person {person}", deps.state.read_log(marketo_id=int(person), limit=limit)
    if "@" in person:
        email = person.strip().lower()
        found = deps.marketo.get_leads_by_filter("email", [email], ["id", "email"])
        records = _dynamics_records(email)
        entries: dict[tuple[object, ...], LogEntry] = {}
        for marketo in found:
            for entry in deps.state.read_log(marketo_id=int(marketo["id"]), limit=limit):
                entries[_identity(entry)] = entry
        for dynamics_id in records:
            for entry in deps.state.read_log(dynamics_id=dynamics_id, limit=limit):
                entries[_identity(entry)] = entry
        ordered = sorted(entries.values(), key=lambda e: e.at.timestamp() if e.at else 0, reverse=True)
        title = f"{mask_email(person)} ({len(found)} Marketo person(s), {len(records)} Dynamics record(s))"
        return title, ordered[:limit]
    return f"Dynamics record {person}", deps.state.read_log(dynamics_id=person.lower(), limit=limit)


def _dynamics_records(email: str) -> list[str]:
    """Ids of the leads and contacts with this email (also those whose person was deleted)."""
    dataverse = container().dataverse
    ids = []
    for entity_set, key in (("leads", "leadid"), ("contacts", "contactid")):
        rows = dataverse.query(entity_set, select=[key], filter=odata.eq("emailaddress1", email))
        ids += [str(row[key]).lower() for row in rows]
    return ids


def _identity(entry: LogEntry) -> tuple[object, ...]:
    return (entry.at, entry.marketo_id, entry.dynamics_id, entry.action, entry.detail)


def print_log(person: str, *, limit: int, console: Console, as_json: bool = False) -> int:
    title, entries = _entries(person, limit)
    if as_json:
        console.print_json(json.dumps([_as_json(e) for e in entries]))
        return 0 if entries else 1
    if not entries:
        console.print(f"no sync log entries for {title}", soft_wrap=True)
        return 1
    table = Table(title=f"Sync log of {title} (newest first)")
    # Ids wrap instead of being cut short: they are what an operator copies.
    for column in ("when (UTC)", "entity", "Marketo", "Dynamics", "what", "detail"):
        table.add_column(column, overflow="fold")
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


def _as_json(entry: LogEntry) -> dict[str, object]:
    return {
        "at": entry.at.isoformat() if entry.at else None,
        "entity": entry.entity,
        "marketo_id": entry.marketo_id,
        "dynamics_id": entry.dynamics_id,
        "action": entry.action,
        "detail": entry.detail,
        "fields": list(entry.fields),
    }
