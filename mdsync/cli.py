"""The ``mdsync`` command: set-up and checks, operator tools, and the local tooling.

Set-up and checks (need only the settings they use): ``doctor``, ``dynamics setup``,
``dynamics register-webhook``, ``fields check``. Operator tools: ``log``, and the console's
``status``, ``errors``, ``replay``, ``resync``, ``pause``, ``resume`` (all with ``--json``). Local
tooling, from the ``local`` extra (``pip install 'mdsync[local]'``): ``simulate``, ``devhost``,
``demo``, ``bench``, ``chaos``.

Exit codes: 0 done; 1 a check or command found problems; 2 a setting is missing or invalid, or
a port is taken (the message names which).
"""

from __future__ import annotations

import argparse
import errno
import importlib.util
import json
import os
import secrets
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shared.backfill.job import Ambiguity
from shared.config import DEFAULT_LOCAL_SETTINGS, LOCAL_SETTINGS_ENV, is_loopback
from shared.errors import ConfigurationError, MdsyncError
from shared.redaction import install_log_redaction

console = Console(highlight=False)

# Keys of the local host (never used in Azure, where the platform issues them).
LOCAL_FUNCTION_KEY = "local-function-key-0123456789"
LOCAL_HOST_KEY = "local-host-key-0123456789"
LOCAL_MASTER_KEY = "local-master-key-0123456789"
LOCAL_TOOLING = ("starlette", "uvicorn", "trustme", "croniter")
# The local console operator's password (else one is made up and printed at start).
OPERATOR_PASSWORD_ENV = "MDSYNC_LOCAL_OPERATOR_PASSWORD"  # noqa: S105 - a variable's name


def _local_tooling(command: str) -> None:
    missing = [name for name in LOCAL_TOOLING if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigurationError(
            f"`mdsync {command}` needs the local tooling ({', '.join(missing)} not installed): "
            "pip install 'mdsync[local]'"
        )


@contextmanager
def _ctrl_c_sets(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C (SIGINT) sets ``stop`` instead of raising wherever the main thread happens to be,
    so a stop asked for while the servers start or print still shuts them down cleanly."""
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _wait_for(stop: threading.Event) -> None:
    while not stop.wait(0.5):
        pass
    console.print("stopping")


# --- argument types ---------------------------------------------------------------------------


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def iso_date(text: str) -> datetime:
    """An ISO 8601 date or date and time; UTC unless it names a zone."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date (2026-01-31 or 2026-01-31T08:00Z)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def port_number(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1-65535)")
    return value


def webhook_url(text: str) -> str:
    """An absolute https:// URL (http:// only for this machine), as Dataverse will call it."""
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a URL; expected https://<app>.azurewebsites.net/api/dynamics/webhook"
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise argparse.ArgumentTypeError(f"{text!r}: Dataverse must call an https:// URL")
    return text


# --- set-up and checks ------------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace) -> int:
    from shared.bootstrap import container

    try:
        deps = container()
    except ConfigurationError as exc:
        fix = ", ".join(exc.settings)
        console.print(f"[red]FAIL[/red] settings: {escape(exc.line)} -> fix: {escape(fix)}", soft_wrap=True)
        return 1
    doctor = deps.doctor(webhook_name=args.webhook_name or deps.settings.dynamics_webhook_name)
    if args.rebind_state:
        bound = doctor.rebind_state()
        console.print(f"the state store now belongs to {bound.describe()}", soft_wrap=True)
    failed = 0
    for check in doctor.run():
        failed += not check.ok
        _print_check(check)
    console.print(f"{failed} problem(s)" if failed else "[green]everything mdsync needs is in place[/green]")
    return 1 if failed else 0


def _print_check(check: object) -> None:
    from shared.doctor import Check

    assert isinstance(check, Check)
    mark = "[green]ok  [/green]" if check.ok else "[red]FAIL[/red]"
    fix = f" [yellow]-> fix: {escape(check.fix)}[/yellow]" if check.fix and not check.ok else ""
    console.print(f"{mark} {check.name}: {escape(check.detail)}{fix}", soft_wrap=True)


def cmd_dynamics_setup(args: argparse.Namespace) -> int:
    from shared.bootstrap import container
    from shared.dataverse import provisioning

    deps = container()
    mapping = deps.mapping
    if args.dry_run:
        steps = provisioning.plan(deps.dataverse, mapping, solution=args.solution)
        for step in steps:
            action = "would create" if step.action == "create" else step.action
            _print_step(action, step.item.describe(), step.detail)
        todo = sum(s.action == "create" for s in steps)
        console.print(f"dry run: {todo} step(s) to create, nothing sent")
        return 0
    result = provisioning.apply(
        deps.dataverse,
        mapping,
        solution=args.solution,
        report=lambda step: _print_step(step.action, step.item.describe(), step.detail),
        key_wait_seconds=args.key_wait,
    )
    if result.ok:
        console.print("[green]Dataverse has everything mdsync needs[/green]")
        return 0
    console.print("[red]set-up is not complete[/red]: see the steps above")
    return 1


def _print_step(action: str, what: str, detail: str) -> None:
    console.print(escape(f"  {action:>12}  {what}" + (f" ({detail})" if detail else "")), soft_wrap=True)


def cmd_register_webhook(args: argparse.Namespace) -> int:
    from shared.bootstrap import container
    from shared.capture.registration import webhook_steps

    deps = container()
    headers = {
        "x-functions-key": args.function_key,
        deps.settings.dynamics_webhook_header: deps.settings.dynamics_webhook_key(),
    }
    registration = deps.dataverse.register_webhook(args.name, args.url, headers, webhook_steps(deps.mapping))
    console.print(
        f"registered service endpoint {registration.service_endpoint_id} ({args.name}) with "
        f"{len(registration.step_ids)} steps and {len(registration.image_ids)} images"
    )
    return 0


def cmd_webhook_steps(args: argparse.Namespace) -> int:
    from shared.bootstrap import container
    from shared.capture.registration import steps_markdown, webhook_steps

    # The mapping only: no Dataverse call, so an admin can print it before anything is set up.
    print(steps_markdown(webhook_steps(container().mapping)))
    return 0


def cmd_campaign_template(args: argparse.Namespace) -> int:
    from shared.bootstrap import container
    from shared.capture.marketo_campaign import webhook_template

    deps = container()
    mapped = deps.mapping.marketo_names()
    # Lead tokens use display names, which only Marketo knows (Describe Lead: one call).
    names = {f.name: f.display_name for f in deps.marketo.describe_leads()}
    missing = sorted(mapped - set(names))
    print(webhook_template(names, mapped))
    print("\nData Value Changes attributes: " + ", ".join(sorted(names[n] for n in mapped if n in names)))
    if missing:
        console.print(f"[red]not Marketo fields (check the mapping)[/red]: {', '.join(missing)}")
        return 1
    return 0


def cmd_fields_check(args: argparse.Namespace) -> int:
    from shared.bootstrap import container
    from shared.doctor import mapping_problems
    from shared.mapping import load_mapping

    try:
        mapping = load_mapping(Path(args.mapping)) if args.mapping else container().mapping
    except ConfigurationError as exc:
        # A mapping that does not even parse is a problem of the mapping: exit 1, as documented.
        console.print(f"[red]error[/red] {escape(str(exc))}", soft_wrap=True)
        return 1
    deps = container()
    problems = mapping_problems(mapping, deps.marketo, deps.dataverse)
    errors = [p for p in problems if p.severity == "error"]
    for problem in problems:
        label = "[red]error[/red]" if problem.severity == "error" else "[yellow]warning[/yellow]"
        console.print(f"{label} {escape(str(problem))}", soft_wrap=True)
    if not errors:
        count = len(mapping.lead.fields) + len(mapping.contact.fields)
        warned = f" ({len(problems)} warning(s))" if problems else ""
        console.print(
            f"[green]ok[/green]: {count} mapped fields match Marketo and Dataverse metadata{warned}"
        )
        return 0
    console.print(f"{len(errors)} problem(s) in the field mapping")
    return 1


# --- operator tools ---------------------------------------------------------------------------


def cmd_log(args: argparse.Namespace) -> int:
    from mdsync.operations import print_log

    return print_log(args.person, limit=args.limit, as_json=args.json, console=console)


def _error_query(args: argparse.Namespace) -> object:
    from shared.ports import ErrorQuery

    return ErrorQuery(
        kind=args.kind,
        reason=args.reason,
        entity=args.entity,
        person=args.person,
        field=args.field,
        text=args.text,
    )


def cmd_backfill(args: argparse.Namespace) -> int:
    from mdsync.backfill import run_backfill

    wide = Console(highlight=False, width=max(console.width, 140))
    return run_backfill(args, wide)


def cmd_status(args: argparse.Namespace) -> int:
    from mdsync import console_commands

    return console_commands.status(console=console, as_json_output=args.json)


def cmd_errors(args: argparse.Namespace) -> int:
    from mdsync import console_commands

    return console_commands.errors(
        console=console,
        query=_error_query(args),  # type: ignore[arg-type]
        limit=args.limit,
        cursor=args.cursor,
        as_json_output=args.json,
        csv_path=args.csv,
    )


def cmd_replay(args: argparse.Namespace) -> int:
    from mdsync import console_commands

    return console_commands.replay(
        console=console,
        keys=args.keys,
        query=_error_query(args),  # type: ignore[arg-type]
        dry_run=args.dry_run,
        discard=args.discard,
        limit=args.limit,
        as_json_output=args.json,
    )


def cmd_resync(args: argparse.Namespace) -> int:
    from mdsync import console_commands

    return console_commands.resync(console=console, person=args.person, as_json_output=args.json)


def cmd_pause(args: argparse.Namespace) -> int:
    from mdsync import console_commands

    return console_commands.pause(console=console, reason=args.reason, as_json_output=args.json)


def cmd_resume(args: argparse.Namespace) -> int:
    from mdsync import console_commands

    return console_commands.resume(console=console, as_json_output=args.json)


# --- local tooling ----------------------------------------------------------------------------


def cmd_simulate(args: argparse.Namespace) -> int:
    _local_tooling("simulate")
    from simulators.stack import FIXED_PORTS, SimulatorStack, StackConfig

    stack = SimulatorStack(StackConfig(ports=dict(FIXED_PORTS) if not args.ephemeral else {}))
    stop = threading.Event()
    with _ctrl_c_sets(stop), stack:
        table = Table(title="mdsync simulators (Ctrl-C to stop)")
        table.add_column("simulator")
        table.add_column("URL", overflow="fold")
        table.add_column("admin API", overflow="fold")
        table.add_row("Entra ID", stack.urls["entra"], f"{stack.urls['entra']}/admin")
        table.add_row(
            "Dataverse", f"{stack.urls['dataverse']}/api/data/v9.2", f"{stack.urls['dataverse']}/admin"
        )
        table.add_row("Marketo", f"{stack.urls['marketo']}/rest/v1", f"{stack.urls['marketo']}/admin")
        console.print(table)
        for name, url in stack.urls.items():
            console.print(f"{name}: {url}", soft_wrap=True)
        console.print(f"trusted CA: {stack.tls.ca_file}", soft_wrap=True)
        console.print(
            "a new organization and instance: state from an earlier run does not belong to them "
            "(`mdsync devhost --reset-state` starts fresh)",
            soft_wrap=True,
        )
        sys.stdout.flush()
        _wait_for(stop)
    return 0


def cmd_devhost(args: argparse.Namespace) -> int:
    _local_tooling("devhost")
    from mdsync.devhost import DevHost, as_rich_table
    from mdsync.local import check_local_state, local_backfill_queue, local_queue, reset_local_state

    # Like `func start`: the project's local.settings.json holds the app settings.
    os.environ.setdefault(LOCAL_SETTINGS_ENV, str(Path(args.root) / DEFAULT_LOCAL_SETTINGS))
    if args.reset_state:
        for path in reset_local_state():
            console.print(escape(f"removed {path}"), soft_wrap=True)
    else:
        warning = check_local_state()
        if warning:
            console.print(f"[yellow]warning[/yellow]: {escape(warning)}", soft_wrap=True)
    from mdsync.harness import OPERATOR, local_sign_in

    password = os.environ.get(OPERATOR_PASSWORD_ENV) or secrets.token_urlsafe(12)
    backfill_queue = local_backfill_queue()
    host = DevHost.for_project(
        Path(args.root),
        queue=local_queue(),
        extra_queues={backfill_queue.queue_name: backfill_queue},
        function_keys={},
        host_keys=[LOCAL_HOST_KEY],
        master_key=LOCAL_MASTER_KEY,
        port=args.port,
        sign_in=local_sign_in(password),
    )
    host.start()
    wide = Console(highlight=False, width=max(console.width, 140))
    wide.print(as_rich_table(host.describe(), title=f"Functions on {host.url}"))
    console.print(f"host key (x-functions-key or ?code=): {LOCAL_HOST_KEY}")
    console.print(
        f"operator console: {host.url}/api/console  (sign in as {OPERATOR!r}, password {password!r})",
        soft_wrap=True,
    )
    sys.stdout.flush()
    host.run_forever()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    _local_tooling("demo")
    from mdsync.demo import run_demo

    wide = Console(highlight=False, width=max(console.width, 120))
    return run_demo(keep_running=args.keep_running, ephemeral=args.ephemeral, console=wide)


def cmd_bench(args: argparse.Namespace) -> int:
    if args.charts_only:
        return _redraw_charts(Path(args.input or args.output), Path(args.charts))
    _local_tooling("bench")
    from mdsync.bench import run_bench
    from mdsync.bench.stores import STORES

    stores = tuple(dict.fromkeys(name.strip() for name in args.stores.split(",") if name.strip()))
    unknown = sorted(set(stores) - set(STORES))
    if not stores or unknown:
        print(
            f"mdsync bench: --stores: unknown state store {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(STORES)}",
            file=sys.stderr,
        )
        return 2

    wide = Console(highlight=False, width=max(console.width, 160))
    return run_bench(
        quick=args.quick,
        output=Path(args.output),
        console=wide,
        stores_only=args.stores_only,
        stores=stores,
        charts=Path(args.charts),
    )


def _redraw_charts(source: Path, folder: Path) -> int:
    """The charts drawn again from a results file, nothing run."""
    from mdsync.bench import draw_charts

    try:
        results = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        console.print(f"[red]error[/red]: cannot read bench results from {source}: {escape(str(exc))}")
        return 1
    return 0 if draw_charts(results, folder, console.print) else 1


def cmd_chaos(args: argparse.Namespace) -> int:
    _local_tooling("chaos")
    from mdsync.chaos import run_chaos

    return run_chaos(seed=args.seed, scenarios=args.scenarios, console=console)


# --- the parser -------------------------------------------------------------------------------


def _add_backfill(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backfill = commands.add_parser(
        "backfill",
        help="the initial sync: link and reconcile every existing record (resumable; --dry-run previews)",
    )
    backfill.add_argument(
        "--dry-run", action="store_true", help="read and match; write nothing; print the preview"
    )
    backfill.add_argument(
        "--since", type=iso_date, help="only what changed since this date (ISO 8601; UTC unless it says)"
    )
    backfill.add_argument(
        "--created-from",
        type=iso_date,
        help="the Marketo extract's first createdAt window starts here (default 2006-01-01: set it to "
        "when your instance began, each empty month costs a few calls)",
    )
    backfill.add_argument(
        "--ambiguous",
        choices=[a.value for a in Ambiguity],
        default=Ambiguity.REPORT.value,
        help="what to do with an ambiguous match: report it (default, nothing linked) or let a rule choose",
    )
    backfill.add_argument("--rest", action="store_true", help="REST only (no bulk APIs): for comparison")
    backfill.add_argument("--restart", action="store_true", help="start a new job even if one is unfinished")
    backfill.add_argument(
        "--staging", help="a SQLite file for the matching index (default: beside the state)"
    )
    backfill.add_argument(
        "--details", help="with --dry-run: write every ambiguous match to this file (JSON lines)"
    )
    backfill.add_argument("--status", action="store_true", help="print the job's progress and exit")
    backfill.set_defaults(run=cmd_backfill)


def _add_error_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kind",
        choices=("refused", "parked", "dead_letter", "configuration"),
        help="only errors of this kind",
    )
    parser.add_argument("--reason", help="exactly this reason (as `mdsync errors` groups them)")
    parser.add_argument(
        "--entity", choices=("lead", "contact", "person"), help="only errors about this kind of record"
    )
    parser.add_argument("--person", help="a Marketo person id or a Dynamics record id")
    parser.add_argument("--field", help="a field name")
    parser.add_argument("--text", help="text in the reason, message, field or value")


def _add_console_commands(commands: Any) -> None:
    """The operator console's commands (docs/operations.md): the same figures and actions."""
    status = commands.add_parser("status", help="the sync's status: backlog, synced, capture, API budgets")
    status.add_argument("--json", action="store_true", help="print the console's JSON document")
    status.set_defaults(run=cmd_status)

    errors = commands.add_parser("errors", help="every failure, grouped by reason (filters, CSV export)")
    _add_error_filters(errors)
    errors.add_argument("--limit", type=positive_int, default=50, help="errors per page (default: 50)")
    errors.add_argument("--cursor", help="continue after the page that printed it")
    errors.add_argument(
        "--csv", metavar="FILE", help="write every matching error as CSV to FILE (- for stdout)"
    )
    errors.add_argument("--json", action="store_true", help="print the page as JSON")
    errors.set_defaults(run=cmd_errors)

    replay = commands.add_parser(
        "replay", help="replay errors: parked notices and dead letters re-queued, refused persons re-synced"
    )
    replay.add_argument(
        "keys", nargs="*", help="error keys or item ids (from `mdsync errors`); none: all that match"
    )
    _add_error_filters(replay)
    replay.add_argument("--dry-run", action="store_true", help="list what would be replayed; change nothing")
    replay.add_argument(
        "--discard",
        action="store_true",
        help="remove parked notices and dead letters without replaying them (unreadable ones)",
    )
    replay.add_argument(
        "--limit", type=positive_int, default=1000, help="at most this many errors per run (default: 1000)"
    )
    replay.add_argument("--json", action="store_true", help="print the outcome as JSON")
    replay.set_defaults(run=cmd_replay)

    resync = commands.add_parser(
        "resync", help="reconcile one person now (both sides read, every mapped field compared)"
    )
    resync.add_argument("person", help="a Marketo person id, or lead:<id> / contact:<id>")
    resync.add_argument("--json", action="store_true", help="print the outcome as JSON")
    resync.set_defaults(run=cmd_resync)

    pause = commands.add_parser("pause", help="pause the sync: capture keeps queuing, the worker holds")
    pause.add_argument("--reason", default="", help="shown on the console")
    pause.add_argument("--json", action="store_true", help="print the outcome as JSON")
    pause.set_defaults(run=cmd_pause)

    resume = commands.add_parser("resume", help="resume the sync: held notices come back, the backlog drains")
    resume.add_argument("--json", action="store_true", help="print the outcome as JSON")
    resume.set_defaults(run=cmd_resume)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mdsync", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    _add_setup_commands(commands)
    _add_operator_commands(commands)
    _add_local_commands(commands)
    return parser


def _add_setup_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Day one: check the deployment, set Dataverse up, check the mapping."""
    doctor = commands.add_parser(
        "doctor", help="check settings, credentials, Dataverse set-up, mapping, webhook, queue and state"
    )
    doctor.add_argument(
        "--webhook-name",
        default=None,
        help="name of the Dataverse service endpoint (default: DYNAMICS_WEBHOOK_NAME, mdsync)",
    )
    doctor.add_argument(
        "--rebind-state",
        action="store_true",
        help="record the configured Marketo and Dataverse as the state's owners (same systems, new address)",
    )
    doctor.set_defaults(run=cmd_doctor)

    dynamics = commands.add_parser("dynamics", help="Dataverse set-up: columns, alternate key, webhook")
    dynamics_commands = dynamics.add_subparsers(dest="dynamics_command", required=True, metavar="command")
    setup = dynamics_commands.add_parser(
        "setup", help="create the columns, alternate keys, publisher and solution mdsync needs (idempotent)"
    )
    setup.add_argument("--dry-run", action="store_true", help="print each step; create nothing")
    setup.add_argument(
        "--solution", default="mdsync", help="unique name of the unmanaged solution to create them in"
    )
    setup.add_argument(
        "--key-wait",
        type=float,
        default=600.0,
        help="seconds to wait for Dataverse to build the alternate keys' indexes (default: 600)",
    )
    setup.set_defaults(run=cmd_dynamics_setup)
    register = dynamics_commands.add_parser(
        "register-webhook", help="register (or replace) the webhook service endpoint, steps and images"
    )
    register.add_argument(
        "--url",
        required=True,
        type=webhook_url,
        help="the function's URL: https://<app>.azurewebsites.net/api/dynamics/webhook",
    )
    register.add_argument(
        "--function-key", required=True, help="a function key of dynamics_webhook (sent as x-functions-key)"
    )
    register.add_argument("--name", default="mdsync", help="service endpoint name (default: mdsync)")
    register.set_defaults(run=cmd_register_webhook)
    steps = dynamics_commands.add_parser(
        "webhook-steps", help="print the steps and images register-webhook registers (for the PRT)"
    )
    steps.set_defaults(run=cmd_webhook_steps)

    marketo = commands.add_parser("marketo", help="Marketo set-up helpers")
    marketo_commands = marketo.add_subparsers(dest="marketo_command", required=True, metavar="command")
    template = marketo_commands.add_parser(
        "campaign-template",
        help="print the change campaign's webhook template and trigger attributes for the mapping",
    )
    template.set_defaults(run=cmd_campaign_template)

    fields = commands.add_parser("fields", help="field mapping tools")
    fields_commands = fields.add_subparsers(dest="fields_command", required=True, metavar="command")
    check = fields_commands.add_parser(
        "check", help="validate a mapping against live Marketo and Dataverse metadata (exit 1 on problems)"
    )
    check.add_argument(
        "--mapping", help="mapping YAML (default: MDSYNC_FIELD_MAPPING or the shipped default)"
    )
    check.set_defaults(run=cmd_fields_check)


def _add_operator_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Running the sync: the sync log and what it gave up on."""
    log = commands.add_parser("log", help="print the sync log of a person (email, Marketo id or Dynamics id)")
    log.add_argument("person", help="an email address, a Marketo person id, or a Dynamics lead/contact id")
    log.add_argument("--limit", type=positive_int, default=50, help="newest entries to show (default: 50)")
    log.add_argument("--json", action="store_true", help="print the entries as JSON")
    log.set_defaults(run=cmd_log)

    _add_backfill(commands)
    _add_console_commands(commands)


def _add_local_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The local extra: simulators, local host, demo, bench and chaos."""
    simulate = commands.add_parser(
        "simulate", help="run the Entra ID, Dataverse and Marketo simulators (local extra)"
    )
    simulate.add_argument("--ephemeral", action="store_true", help="free ports instead of 7443-7445")
    simulate.set_defaults(run=cmd_simulate)

    devhost = commands.add_parser(
        "devhost", help="serve function_app.py locally, like `func start` (local extra)"
    )
    devhost.add_argument("--port", type=port_number, default=7071, help="port to listen on (default: 7071)")
    devhost.add_argument("--root", default=".", help="project folder (host.json, function_app.py)")
    devhost.add_argument(
        "--reset-state",
        action="store_true",
        help="delete the local SQLite queue and state first (after restarting the simulators)",
    )
    devhost.set_defaults(run=cmd_devhost)

    demo = commands.add_parser("demo", help="the end-to-end demo on the local simulators (local extra)")
    demo.add_argument("--keep-running", action="store_true", help="leave simulators and host up afterwards")
    demo.add_argument("--ephemeral", action="store_true", help="free ports instead of 7071 and 7443-7445")
    demo.set_defaults(run=cmd_demo)

    bench = commands.add_parser(
        "bench", help="measure throughput, API calls per change, latency, cold start (local extra)"
    )
    bench.add_argument("--quick", action="store_true", help="small workloads, a few minutes")
    bench.add_argument("--output", default="bench/results.json", help="where to write the JSON results")
    bench.add_argument(
        "--stores-only",
        action="store_true",
        help="only the bursts on each state store side by side (SQLite, Table Storage on Azurite)",
    )
    bench.add_argument(
        "--stores",
        default="sqlite,table",
        help="the state stores the side-by-side bursts run on, comma-separated (default: sqlite,table;"
        " table starts Azurite)",
    )
    bench.add_argument(
        "--charts",
        default="docs/images/bench",
        help="where to draw the charts of the results (default: docs/images/bench)",
    )
    bench.add_argument(
        "--charts-only",
        action="store_true",
        help="run nothing: draw the charts again from a results file (--input)",
    )
    bench.add_argument("--input", help="the results file --charts-only draws (default: --output's)")
    bench.set_defaults(run=cmd_bench)

    chaos = commands.add_parser(
        "chaos", help="seeded fault-injection scenarios that must converge (local extra)"
    )
    chaos.add_argument("--seed", type=int, default=1, help="random seed of the scenarios (default: 1)")
    chaos.add_argument(
        "--scenarios", type=positive_int, default=5, help="how many scenarios to run (default: 5)"
    )
    chaos.set_defaults(run=cmd_chaos)


def main(argv: Sequence[str] | None = None) -> int:
    install_log_redaction()
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except ConfigurationError as exc:
        console.print(f"[red]configuration error[/red]\n{escape(str(exc))}", soft_wrap=True)
        return 2
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        console.print(
            f"[red]error[/red]: {escape(str(exc.strerror))}: stop what listens there "
            "(another mdsync simulate, devhost or demo?), or choose other ports (--port, --ephemeral)",
            soft_wrap=True,
        )
        return 2
    except MdsyncError as exc:
        console.print(f"[red]error[/red]: {escape(str(exc))}", soft_wrap=True)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
