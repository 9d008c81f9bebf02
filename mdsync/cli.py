"""The ``mdsync`` command: local simulators and host, operator tools, demo, bench and chaos."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from shared.config import DEFAULT_LOCAL_SETTINGS, LOCAL_SETTINGS_ENV
from shared.errors import ConfigurationError, MdsyncError

console = Console(highlight=False)

# Keys of the local host (never used in Azure, where the platform issues them).
LOCAL_FUNCTION_KEY = "local-function-key-0123456789"
LOCAL_HOST_KEY = "local-host-key-0123456789"
LOCAL_MASTER_KEY = "local-master-key-0123456789"


def _wait_for_ctrl_c() -> None:
    stop = threading.Event()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        console.print("stopping")


def cmd_simulate(args: argparse.Namespace) -> int:
    from simulators.stack import FIXED_PORTS, SimulatorStack, StackConfig

    stack = SimulatorStack(StackConfig(ports=dict(FIXED_PORTS) if not args.ephemeral else {}))
    with stack:
        table = Table(title="mdsync simulators (Ctrl-C to stop)")
        table.add_column("simulator")
        table.add_column("URL")
        table.add_column("admin API")
        table.add_row("Entra ID", stack.urls["entra"], f"{stack.urls['entra']}/admin")
        table.add_row(
            "Dataverse", f"{stack.urls['dataverse']}/api/data/v9.2", f"{stack.urls['dataverse']}/admin"
        )
        table.add_row("Marketo", f"{stack.urls['marketo']}/rest/v1", f"{stack.urls['marketo']}/admin")
        console.print(table)
        for name, url in stack.urls.items():
            console.print(f"{name}: {url}", soft_wrap=True)
        console.print(f"trusted CA: {stack.tls.ca_file}", soft_wrap=True)
        sys.stdout.flush()
        _wait_for_ctrl_c()
    return 0


def cmd_devhost(args: argparse.Namespace) -> int:
    from mdsync.devhost import DevHost, as_rich_table
    from mdsync.local import local_queue

    # Like `func start`: the project's local.settings.json holds the app settings.
    os.environ.setdefault(LOCAL_SETTINGS_ENV, str(Path(args.root) / DEFAULT_LOCAL_SETTINGS))
    host = DevHost.for_project(
        Path(args.root),
        queue=local_queue(),
        function_keys={},
        host_keys=[LOCAL_HOST_KEY],
        master_key=LOCAL_MASTER_KEY,
        port=args.port,
    )
    host.start()
    wide = Console(highlight=False, width=max(console.width, 140))
    wide.print(as_rich_table(host.describe(), title=f"Functions on {host.url}"))
    console.print(f"host key (x-functions-key or ?code=): {LOCAL_HOST_KEY}")
    sys.stdout.flush()
    host.run_forever()
    return 0


def cmd_fields_check(args: argparse.Namespace) -> int:
    from shared.bootstrap import container
    from shared.field_check import check_mapping
    from shared.mapping import load_mapping

    deps = container()
    mapping = load_mapping(Path(args.mapping)) if args.mapping else deps.mapping
    marketo_fields = deps.marketo.describe_leads()
    columns = {e: deps.dataverse.entity_metadata(e).attributes for e in ("lead", "contact")}
    currencies = {
        str(r.get("isocurrencycode"))
        for r in deps.dataverse.query("transactioncurrencies", select=["isocurrencycode"])
    }
    problems = check_mapping(mapping, marketo_fields, columns, currencies)
    errors = [p for p in problems if p.severity == "error"]
    for problem in problems:
        label = "[red]error[/red]" if problem.severity == "error" else "[yellow]warning[/yellow]"
        console.print(f"{label} {problem}")
    if not errors:
        count = len(mapping.lead.fields) + len(mapping.contact.fields)
        warned = f" ({len(problems)} warning(s))" if problems else ""
        console.print(
            f"[green]ok[/green]: {count} mapped fields match Marketo and Dataverse metadata{warned}"
        )
        return 0
    console.print(f"{len(errors)} problem(s) in the field mapping")
    return 1


def cmd_register_webhook(args: argparse.Namespace) -> int:
    from shared.bootstrap import container
    from shared.capture.registration import webhook_steps

    deps = container()
    headers = {
        "x-functions-key": args.function_key,
        deps.settings.dynamics_webhook_header: deps.settings.dynamics_webhook_secret.get_secret_value(),
    }
    registration = deps.dataverse.register_webhook(args.name, args.url, headers, webhook_steps(deps.mapping))
    console.print(
        f"registered service endpoint {registration.service_endpoint_id} ({args.name}) with "
        f"{len(registration.step_ids)} steps and {len(registration.image_ids)} images"
    )
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    from mdsync.operations import print_log

    return print_log(args.person, limit=args.limit, console=console)


def cmd_replay(args: argparse.Namespace) -> int:
    from mdsync.operations import replay

    return replay(console=console, dry_run=args.dry_run)


def cmd_demo(args: argparse.Namespace) -> int:
    from mdsync.demo import run_demo

    wide = Console(highlight=False, width=max(console.width, 120))
    return run_demo(keep_running=args.keep_running, ephemeral=args.ephemeral, console=wide)


def cmd_bench(args: argparse.Namespace) -> int:
    from mdsync.bench import run_bench

    wide = Console(highlight=False, width=max(console.width, 160))
    return run_bench(quick=args.quick, output=Path(args.output), console=wide)


def cmd_chaos(args: argparse.Namespace) -> int:
    from mdsync.chaos import run_chaos

    return run_chaos(seed=args.seed, scenarios=args.scenarios, console=console)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mdsync", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    simulate = commands.add_parser("simulate", help="run the Entra ID, Dataverse and Marketo simulators")
    simulate.add_argument("--ephemeral", action="store_true", help="ephemeral ports instead of 7443-7445")
    simulate.set_defaults(run=cmd_simulate)

    devhost = commands.add_parser("devhost", help="serve function_app.py locally, like `func start`")
    devhost.add_argument("--port", type=int, default=7071)
    devhost.add_argument("--root", default=".", help="project folder (host.json, function_app.py)")
    devhost.set_defaults(run=cmd_devhost)

    fields = commands.add_parser("fields", help="field mapping tools")
    fields_commands = fields.add_subparsers(dest="fields_command", required=True)
    check = fields_commands.add_parser(
        "check", help="validate a mapping against live Marketo and Dataverse metadata"
    )
    check.add_argument(
        "--mapping", help="mapping YAML (default: MDSYNC_FIELD_MAPPING or the shipped default)"
    )
    check.set_defaults(run=cmd_fields_check)

    dynamics = commands.add_parser("dynamics", help="Dataverse set-up")
    dynamics_commands = dynamics.add_subparsers(dest="dynamics_command", required=True)
    register = dynamics_commands.add_parser(
        "register-webhook", help="register (or replace) the webhook service endpoint, steps and images"
    )
    register.add_argument("--url", required=True, help="https://<app>.azurewebsites.net/api/dynamics/webhook")
    register.add_argument("--function-key", required=True, help="a function key of dynamics_webhook")
    register.add_argument("--name", default="mdsync")
    register.set_defaults(run=cmd_register_webhook)

    log = commands.add_parser("log", help="print the sync log of a person (email, Marketo id or Dynamics id)")
    log.add_argument("person")
    log.add_argument("--limit", type=int, default=50)
    log.set_defaults(run=cmd_log)

    replay = commands.add_parser("replay", help="re-queue parked notices and dead letters")
    replay.add_argument("--dry-run", action="store_true")
    replay.set_defaults(run=cmd_replay)

    demo = commands.add_parser("demo", help="the end-to-end demo on the local simulators")
    demo.add_argument("--keep-running", action="store_true", help="leave simulators and host up afterwards")
    demo.add_argument("--ephemeral", action="store_true", help="free ports instead of 7071 and 7443-7445")
    demo.set_defaults(run=cmd_demo)

    bench = commands.add_parser("bench", help="measure throughput, API calls per change, latency, cold start")
    bench.add_argument("--quick", action="store_true", help="small workloads, under two minutes")
    bench.add_argument("--output", default="bench/results.json")
    bench.set_defaults(run=cmd_bench)

    chaos = commands.add_parser("chaos", help="seeded fault-injection scenarios that must converge")
    chaos.add_argument("--seed", type=int, default=1)
    chaos.add_argument("--scenarios", type=int, default=5)
    chaos.set_defaults(run=cmd_chaos)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except ConfigurationError as exc:
        console.print(f"[red]configuration error[/red]\n{exc}")
        return 2
    except MdsyncError as exc:
        console.print(f"[red]error[/red]: {exc}")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
