"""The console on the command line: ``mdsync status``, ``errors``, ``replay``, ``resync``,
``pause`` and ``resume``, each with ``--json`` (the same documents as the console's JSON twin).

They read and act on the stores the settings name, like ``mdsync log``: run them where the
environment (or ``local.settings.json``) holds the app's settings, with an identity that has the
data roles (docs/deploying.md). Actions are recorded as ``cli:<user name>``.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from shared.bootstrap import container
from shared.console.actions import MAX_ITEMS, ActionResult, cli_user
from shared.console.listing import list_errors
from shared.console.page import DIRECTIONS, KIND_LABELS, csv_rows, duration
from shared.console.status import Status, as_json
from shared.ports import ErrorQuery, SyncError


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _print_json(console: Console, document: object) -> None:
    console.print_json(json.dumps(document, default=str))


# --- status ---------------------------------------------------------------------------------------


def status(*, console: Console, as_json_output: bool) -> int:
    snapshot = container().status_reader.read()
    if as_json_output:
        _print_json(console, as_json(snapshot))
        return 0
    _print_status(snapshot, console)
    return 0


def _print_status(s: Status, console: Console) -> None:
    pause = s.pause
    if pause.paused:
        console.print(
            f"[yellow]PAUSED[/yellow] by {pause.by} since {_when(pause.at)} {pause.reason}", soft_wrap=True
        )
    else:
        console.print("[green]running[/green]")
    backlog = Table(title=f"Backlog ({s.backlog_total} queued, time to clear {duration(s.eta_total)})")
    for column in (
        "lane",
        "waiting",
        "scheduled",
        "held",
        "parked",
        "dead",
        "oldest (UTC)",
        "age",
        "drained/h",
        "to clear",
    ):
        backlog.add_column(column, overflow="fold")
    for lane in s.backlog:
        backlog.add_row(
            f"{DIRECTIONS[lane.direction]} {lane.entity}",
            str(lane.waiting),
            str(lane.scheduled),
            str(lane.held),
            str(lane.parked),
            str(lane.dead_lettered),
            _when(lane.oldest_waiting),
            duration(lane.age_seconds),
            f"{lane.drained_per_hour:g}",
            "paused" if pause.paused and lane.queued else duration(lane.eta_seconds),
        )
    console.print(backlog)
    if not s.queue_exact:
        console.print(f"(split per lane estimated from {s.queue_sampled} peeked messages; totals exact)")
    synced = Table(title="Synced")
    for column in (
        "entity",
        "direction",
        "1 h",
        "24 h",
        "created 24 h",
        "failed 1 h",
        "failed 24 h",
        "collisions 24 h",
    ):
        synced.add_column(column)
    for row in s.sync:
        wins = ", ".join(f"{w} won {n}" for w, n in sorted(row.collisions_24h.items())) or "-"
        synced.add_row(
            row.entity,
            DIRECTIONS[row.direction],
            str(row.synced_1h),
            str(row.synced_24h),
            str(row.created_24h),
            str(row.failed_1h),
            str(row.failed_24h),
            wins,
        )
    console.print(synced)
    capture = Table(title="Change capture")
    for column in ("path", "last run / arrival (UTC)", "behind by", "detail"):
        capture.add_column(column, overflow="fold")
    for f in s.capture:
        capture.add_row(f.label, _when(f.last_run), duration(f.behind_seconds), f.detail)
    console.print(capture)
    b = s.budgets
    window = "-" if b.marketo_window_calls is None else b.marketo_window_calls
    dataverse = "-" if b.dataverse_requests_in_window is None else b.dataverse_requests_in_window
    batching = "off" if b.batching_window_seconds is None else f"{b.batching_window_seconds:g} s"
    console.print(
        f"Marketo calls today: {b.marketo_calls_today} of {b.marketo_daily_quota} "
        f"({b.marketo_quota_used:.1%}); 20-s window: {window} of {b.marketo_window_limit}; "
        f"Dataverse requests in the 5-min window: {dataverse} of 6000; batching window: {batching}",
        soft_wrap=True,
    )
    if s.initial_sync is not None:
        p = s.initial_sync
        console.print(
            f"Initial sync: {p.state} {p.phase} {p.done} of {p.total if p.total is not None else '?'}"
        )
    errors = ", ".join(f"{KIND_LABELS.get(k, k)} {n}" for k, n in s.errors_by_kind.items() if n) or "none"
    console.print(f"Errors: {errors}")


# --- errors ---------------------------------------------------------------------------------------


def errors(
    *,
    console: Console,
    query: ErrorQuery,
    limit: int,
    cursor: str | None,
    as_json_output: bool,
    csv_path: str | None,
) -> int:
    deps = container()
    if csv_path:
        chosen = deps.console_actions.chosen(None, query)
        out = sys.stdout if csv_path == "-" else Path(csv_path).open("w", newline="", encoding="utf-8")  # noqa: SIM115
        try:
            csv.writer(out, lineterminator="\r\n").writerows(csv_rows(chosen))
        finally:
            if out is not sys.stdout:
                out.close()
        if csv_path != "-":
            console.print(f"wrote {len(chosen)} error(s) to {csv_path}")
        return 0
    listing = list_errors(deps.operations, deps.dead_letter_errors, query, cursor=cursor, limit=limit)
    if as_json_output:
        _print_json(
            console,
            {
                "groups": [asdict(g) for g in listing.groups],
                "errors": [asdict(e) for e in listing.errors],
                "cursor": listing.cursor,
            },
        )
        return 0
    groups = Table(title="Errors by reason")
    for column in ("kind", "reason", "errors", "last seen (UTC)"):
        groups.add_column(column, overflow="fold")
    for g in listing.groups:
        groups.add_row(KIND_LABELS.get(g.kind, g.kind), g.reason, str(g.errors), _when(g.last_seen))
    console.print(groups)
    console.print(_errors_table(listing.errors))
    if listing.cursor:
        console.print(f"more: --cursor {listing.cursor}", soft_wrap=True)
    return 0


def _errors_table(items: Sequence[SyncError]) -> Table:
    table = Table(title="Failures (newest first)")
    for column in ("key", "person", "field", "value", "first seen", "last seen", "times", "message"):
        table.add_column(column, overflow="fold")
    for e in items:
        person = (
            str(e.marketo_id) if e.marketo_id else f"{e.entity}:{e.dynamics_id}" if e.dynamics_id else "-"
        )
        table.add_row(
            e.key, person, e.field, e.value, _when(e.first_seen), _when(e.last_seen), str(e.count), e.message
        )
    return table


# --- actions --------------------------------------------------------------------------------------


def _report(console: Console, result: ActionResult, as_json_output: bool) -> int:
    if as_json_output:
        _print_json(console, result.as_dict())
    else:
        mark = "[green]ok[/green]" if result.ok else "[red]not all done[/red]"
        console.print(f"{mark} {result.message}", soft_wrap=True)
        for detail in result.details:
            console.print(f"  {detail}", soft_wrap=True)
    return 0 if result.ok else 1


def replay(
    *,
    console: Console,
    keys: Sequence[str],
    query: ErrorQuery,
    dry_run: bool,
    as_json_output: bool,
    discard: bool = False,
    limit: int = MAX_ITEMS,
) -> int:
    """Replay the errors named by ``keys`` (error keys, or the ids of parked notices and dead
    letters), or, without keys, every error the filters match (at most ``limit``); with
    ``discard``, remove their given-up items without replaying them."""
    actions = container().console_actions
    chosen = actions.chosen(_as_keys(keys), None) if keys else actions.chosen(None, query)
    chosen = chosen[:limit]
    named = {e.key for e in chosen} | {e.item_id for e in chosen if e.item_id}
    missing = sorted(set(keys) - named)
    if missing and not as_json_output:
        for key in missing:
            console.print(f"[red]not found[/red]: {key} (not on the error list)", soft_wrap=True)
    if dry_run:
        if as_json_output:
            _print_json(console, {"would_replay": [asdict(e) for e in chosen]})
        else:
            console.print(_errors_table(chosen))
            console.print(f"dry run: {len(chosen)} error(s) would be replayed; nothing changed")
        return 0
    code = _report(console, actions.replay(cli_user(), chosen, discard=discard), as_json_output)
    return 1 if missing else code


def _as_keys(keys: Sequence[str]) -> list[str]:
    """Error keys as given; a bare id is a parked notice's if one has it, else a dead letter's."""
    bare = [k for k in keys if "|" not in k]
    parked = container().operations.get_errors([f"parked|{k}" for k in bare])
    return [k if "|" in k else f"parked|{k}" if f"parked|{k}" in parked else f"dead_letter|{k}" for k in keys]


def resync(*, console: Console, person: str, as_json_output: bool) -> int:
    return _report(console, container().console_actions.resync(cli_user(), person), as_json_output)


def pause(*, console: Console, reason: str, as_json_output: bool) -> int:
    return _report(console, container().console_actions.pause(cli_user(), reason), as_json_output)


def resume(*, console: Console, as_json_output: bool) -> int:
    return _report(console, container().console_actions.resume(cli_user()), as_json_output)
