"""``mdsync backfill``: the initial sync from an admin's machine, with its progress and preview.

Runs the same job the function app runs (``shared/backfill``), in this process, until it is
done: a job already running (or stopped by a fault) is resumed; ``--restart`` starts a new one.
Progress per phase (done of total, rate, ETA) is drawn as it goes; the same figures are in the
job's state for the status page (``shared/backfill/status.py``). A dry run ends with the preview.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from shared.backfill.job import ORDER, Ambiguity, JobState, Mode, Options, Phase, Status
from shared.backfill.runner import Backfill
from shared.backfill.status import progress_of
from shared.bootstrap import container

LABELS = {
    Phase.LINKS: "stored links",
    Phase.MARKETO: "Marketo persons (Bulk Extract)",
    Phase.DYNAMICS: "Dynamics leads and contacts",
    Phase.PARTNERS: "the other side of what changed",
    Phase.MATCH_RECORDS: "matching: records and links",
    Phase.MATCH_PERSONS: "matching: persons by id",
    Phase.MATCH_EMAILS: "matching: by email",
    Phase.MARKETO_WRITES: "writing Marketo (Bulk Import)",
    Phase.CREATES: "creating persons",
    Phase.CREATED_IDS: "finding the created persons",
    Phase.DYNAMICS_WRITES: "writing Dynamics (UpdateMultiple)",
    Phase.STORE: "storing links and shadows",
}
OUTCOMES = {
    "to_marketo_fills_blank": "fills blank in Marketo",
    "to_marketo_replaces": "Dynamics replaces Marketo",
    "to_dynamics_fills_blank": "fills blank in Dynamics",
    "to_dynamics_replaces": "Marketo replaces Dynamics",
    "blocked": "one-way: not copied",
    "held": "held",
    "cannot_copy": "cannot be copied (reported)",
}


class ProgressView:
    """One progress bar per phase, updated from the job's own figures."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description:<38}"),
            BarColumn(),
            TextColumn("{task.completed:>10,.0f}/{task.fields[total_text]:<10} {task.fields[unit]}"),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.tasks: dict[Phase, TaskID] = {}

    def __enter__(self) -> ProgressView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, job: JobState) -> None:
        for phase in ORDER:
            progress = job.progress.get(phase)
            if progress is None:
                continue
            task = self.tasks.get(phase)
            figures = progress.figures()
            total = figures["total"]
            rate = figures["rate_per_second"]
            fields = {
                "unit": figures["unit"],
                "total_text": f"{total:,}" if total is not None else "?",
                "rate": f"{rate:,.0f}/s" if rate else "",
            }
            if task is None:
                task = self.progress.add_task(LABELS.get(phase, phase.value), total=total, **fields)
                self.tasks[phase] = task
            done = progress.total if progress.finished_at is not None and progress.total else progress.done
            self.progress.update(task, completed=done, total=total or None, **fields)


def options_from(args: Any) -> Options:
    values: dict[str, Any] = {
        "dry_run": bool(args.dry_run),
        "mode": Mode.REST if args.rest else Mode.BULK,
        "ambiguous": Ambiguity(args.ambiguous),
    }
    if args.since:
        values["since"] = args.since
    if args.created_from:
        values["created_from"] = args.created_from
    return Options(**values)


def run_backfill(args: Any, console: Console) -> int:
    deps = container()
    deps.verify_instance()
    # Named after this machine and the staging it uses: run again after a kill, it takes its
    # job back at once (another machine waits for the lease to run out).
    backfill = deps.backfill_command(
        owner=f"cli:{socket.gethostname()}:{args.staging or 'default'}",
        staging=Path(args.staging) if args.staging else None,
    )
    try:
        if args.status:
            return _print_status(backfill, console)
        job = _job_to_run(backfill, options_from(args), args.restart, console)
        with ProgressView(console) as view:
            job = backfill.run(on_progress=view.update)
        if job.status is Status.FAILED:
            console.print(f"[red]backfill {job.id} stopped[/red]: {escape(job.error or '')}", soft_wrap=True)
            console.print("fix the cause, then run `mdsync backfill` again: it resumes where it stopped")
            return 1
        if job.status is Status.PREVIEWED:
            print_preview(job, console)
            if args.details:
                _write_details(backfill, Path(args.details), console)
        else:
            print_results(job, console)
        return 0
    finally:
        backfill.ctx.close()


def _job_to_run(backfill: Backfill, options: Options, restart: bool, console: Console) -> JobState:
    current = backfill.current()
    if current is not None and not current.finished and not restart:
        console.print(
            f"resuming backfill {current.id} ({current.status.value}, phase {current.phase.value}, "
            f"started {current.created_at:%Y-%m-%d %H:%M} UTC); --restart starts a new one",
            soft_wrap=True,
        )
        return current
    job = backfill.start(options, restart=restart)
    what = "preview (dry run: nothing is written)" if options.dry_run else "backfill"
    console.print(f"{what} {job.id} started", soft_wrap=True)
    return job


def _print_status(backfill: Backfill, console: Console) -> int:
    job = backfill.current()
    if job is None:
        console.print("no backfill has run")
        return 0
    console.print_json(json.dumps(progress_of(job)))
    return 0


def print_preview(job: JobState, console: Console) -> None:
    console.print(f"[bold]preview of backfill {job.id}[/bold]: nothing was written")
    console.print(outcome_table(job, preview=True))
    console.print(fields_table(job))
    samples(job, console)


def print_results(job: JobState, console: Console) -> None:
    console.print(f"[bold]backfill {job.id} done[/bold]")
    console.print(outcome_table(job, preview=False))
    records = job.counts.get("records_read", 0) + job.counts.get("persons_read", 0)
    calls = job.calls
    marketo, dataverse = calls.get("marketo", 0), calls.get("dataverse", 0)
    per = f" ({marketo / records:.4f} and {dataverse / records:.4f} a record read)" if records else ""
    console.print(
        f"API calls: Marketo {calls.get('marketo', 0):,}, Dataverse {calls.get('dataverse', 0):,}{per}"
    )
    samples(job, console)


def outcome_table(job: JobState, *, preview: bool) -> Table:
    c = job.counts
    verb = "would be" if preview else "were"
    rows = [
        ("Marketo persons read", c.get("persons_read", 0)),
        ("Dynamics records read", c.get("records_read", 0)),
        ("stored links read", c.get("links_read", 0)),
        ("pairs already linked (reconciled)", c.get("pairs_by_link", 0)),
        ("pairs to link by the Marketo id stored on the record", c.get("pairs_by_stored_id", 0)),
        ("pairs to link by email", c.get("pairs_by_email", 0)),
        ("pairs linked by the ambiguity rule", c.get("pairs_by_rule", 0)),
        (f"persons that {verb} created", c.get("persons_to_create", 0)),
        ("ambiguous matches (reported)", c.get("issues_ambiguous", 0)),
        ("records whose email's person is linked elsewhere", c.get("issues_taken", 0)),
        ("records the sync filter excludes", c.get("records_excluded", 0)),
        ("qualified leads (their person follows the contact)", c.get("records_qualified", 0)),
        ("records merged in Dynamics", c.get("records_merged", 0)),
        ("Marketo persons with no record (not pushed)", c.get("persons_marketo_only", 0)),
        ("pairs to write to Marketo", c.get("pairs_writing_marketo", 0)),
        ("pairs to write to Dynamics", c.get("pairs_writing_dynamics", 0)),
        ("values that cannot be copied (reported)", c.get("values_not_copied", 0)),
    ]
    if not preview:
        rows += [
            ("persons created", c.get("persons_created", 0)),
            ("links stored", c.get("links_stored", 0)),
            ("Marketo rows refused (reported on the person)", c.get("marketo_failures", 0)),
            ("persons not created (reported)", c.get("create_failures", 0)),
            ("Dynamics rows refused (reported on the person)", c.get("dynamics_failures", 0)),
            ("records changed meanwhile, left to the live sync", c.get("records_held", 0)),
            ("pairs the live sync handled meanwhile, left to it", c.get("records_taken_by_live_sync", 0)),
            ("notices handed to the live sync", c.get("notices_to_live_sync", 0)),
        ]
    table = Table(title="what would happen" if preview else "what happened")
    table.add_column("")
    table.add_column("count", justify="right")
    for label, value in rows:
        table.add_row(label, f"{value:,}")
    return table


def fields_table(job: JobState) -> Table:
    table = Table(title="fields that differ, and which side's value wins (pairs)")
    table.add_column("field")
    for name in OUTCOMES.values():
        table.add_column(name, justify="right")
    for key in sorted(job.fields):
        counts = job.fields[key]
        table.add_row(key, *(f"{counts.get(outcome, 0):,}" for outcome in OUTCOMES))
    return table


def samples(job: JobState, console: Console) -> None:
    for kind, found in sorted(job.samples.items()):
        console.print(f"[dim]{kind} (first {len(found)}):[/dim] {escape('; '.join(found))}", soft_wrap=True)


def _write_details(backfill: Backfill, path: Path, console: Console) -> None:
    issues = backfill.issues(limit=1_000_000)
    with path.open("w", encoding="utf-8") as out:
        for issue in issues:
            out.write(json.dumps(issue) + "\n")
    console.print(f"{len(issues)} ambiguous matches written to {path}", soft_wrap=True)
