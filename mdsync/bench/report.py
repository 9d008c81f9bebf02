"""The bench's verdict: targets against measurements, the JSON document and the rich tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table


@dataclass(frozen=True)
class Check:
    name: str
    target: str
    measured: float | None
    met: bool | None
    unit: str = ""
    # Why nothing was measured (shown in its place), e.g. a burst too short to have a sustained part.
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        document = {"name": self.name, "target": self.target, "measured": self.measured, "met": self.met}
        return document | ({"note": self.note} if self.note else {})


def at_least(name: str, measured: float | None, target: float, unit: str = "") -> Check:
    met = None if measured is None else measured >= target
    return Check(name, f">= {target:g}{unit}", measured, met, unit)


def unmeasured(name: str, target: float, note: str, unit: str = "") -> Check:
    """A target nothing was measured for, and why: never judged on something else instead."""
    return Check(name, f">= {target:g}{unit}", None, None, unit, note)


def at_most(name: str, measured: float | None, target: float, unit: str = "") -> Check:
    met = None if measured is None else measured <= target
    return Check(name, f"<= {target:g}{unit}", measured, met, unit)


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _measured(workload: dict[str, Any], key: str, digits: int = 3) -> str:
    """A value measured over the timeline's sustained part: "short" where the burst had none,
    "-" where the workload has no timeline."""
    if "timeline" not in workload:
        return "-"
    value = workload.get(key)
    return "short" if value is None else _fmt(value, digits)


def _windows(results: dict[str, Any]) -> Table | None:
    """Marketo calls in each whole 20 s window of every sustained part, against the limits."""
    rows = {k: w["timeline"] for k, w in results["workloads"].items() if w.get("timeline")}
    if not rows:
        return None
    table = Table(title="Timelines: the sustained part (whole 20 s windows after the first, before the tail)")
    for header in ("workload", "sustained part", "changes/s", "of ceiling", "Marketo calls per window"):
        table.add_column(header, justify="left" if header == "workload" else "right")
    for key, timeline in rows.items():
        part = timeline["sustained"]
        limits = (
            f"(limit {timeline['marketo_limit_per_window']}, client {timeline['client_limit_per_window']})"
        )
        if part is None:
            table.add_row(SHORT.get(key, key), "none: too short", "-", "-", limits)
            continue
        table.add_row(
            SHORT.get(key, key),
            f"{part['start']:g}-{part['end']:g} s",
            _fmt(part["changes_per_second"]),
            _fmt(part["fraction_of_ceiling"], 2),
            " ".join(str(n) for n in part["marketo_calls_per_window"]) + " " + limits,
        )
    return table


def _verdict(met: bool | None) -> str:
    return {True: "[green]met[/green]", False: "[red]missed[/red]", None: "[yellow]n/a[/yellow]"}[met]


SHORT = {
    "naive_to_marketo": "naive D->M",
    "naive_to_dynamics": "naive M->D",
    "burst_to_marketo": "burst D->M",
    "burst_to_dynamics": "burst M->D",
    "peer_to_marketo": "batching peer D->M",
    "peer_to_dynamics": "batching peer M->D",
    "collisions": "collisions",
    "steady": "steady mix",
    "steady_campaign": "steady mix, campaign",
    "even_window_off": "1M/day evenly, window off",
    "even_window_on": "1M/day evenly, window on",
    "burst_to_dynamics_state_sqlite": "burst M->D, whole API, SQLite",
    "burst_to_marketo_state_sqlite": "burst D->M, whole API, SQLite",
    "burst_to_dynamics_state_table": "burst M->D, whole API, Table (Azurite)",
    "burst_to_marketo_state_table": "burst D->M, whole API, Table (Azurite)",
}


def _throughput(results: dict[str, Any]) -> Table:
    table = Table(title="Throughput and API calls per synced change")
    headers = (
        "workload",
        "changes",
        "s",
        "/s",
        "MK calls/20 s",
        "sustained/s",
        "of ceiling",
        "projected/s",
        "proj. of ceiling",
        "MK/chg",
        "DV/chg",
        "lost",
    )
    for header in headers:
        table.add_column(header, justify="left" if header == "workload" else "right")
    for key, workload in results["workloads"].items():
        table.add_row(
            SHORT.get(key, key),
            str(workload["changes"]),
            _fmt(workload["seconds"]),
            _fmt(workload["changes_per_second"]),
            str(workload.get("worker_marketo_calls_per_20s", "-")),
            _measured(workload, "sustained_changes_per_second"),
            _measured(workload, "fraction_of_ceiling", 2),
            _fmt(workload.get("projected_changes_per_second")),
            _fmt(workload.get("projected_fraction_of_ceiling"), 2),
            _fmt(workload["marketo_calls_per_change"], 2),
            _fmt(workload["dataverse_calls_per_change"], 2),
            str(workload["lost"]),
            end_section=key in ("steady_campaign", "even_window_on", "naive_to_dynamics"),
        )
    return table


def _stores(results: dict[str, Any]) -> Table | None:
    """The bursts on each state store (mdsync/bench/stores.py), side by side."""
    rows = {k: w for k, w in results["workloads"].items() if "_state_" in k}
    if not rows:
        return None
    table = Table(title="State stores side by side (whole-API bursts)")
    headers = (
        "burst",
        "store",
        "changes",
        "/s",
        "sustained/s",
        "of ceiling",
        "Table requests",
        "per change",
        "Azurite CPU s/1,000",
        "lost",
    )
    for header in headers:
        table.add_column(header, justify="left" if header in ("burst", "store") else "right")
    for key, workload in sorted(rows.items()):
        table.add_row(
            "M->D" if "to_dynamics" in key else "D->M",
            str(workload.get("state_store", "-")),
            str(workload["changes"]),
            _fmt(workload["changes_per_second"]),
            _measured(workload, "sustained_changes_per_second"),
            _measured(workload, "fraction_of_ceiling", 2),
            str(workload["calls"].get("table_storage", 0)),
            _fmt(workload.get("table_storage_requests_per_change"), 3),
            _fmt(workload.get("azurite_cpu_seconds_per_1000"), 2),
            str(workload["lost"]),
        )
    return table


def _latency(results: dict[str, Any]) -> Table:
    table = Table(title="Latency (ms)")
    for header in ("path", "count", "p50", "p95", "p99", "max"):
        table.add_column(header, justify="left" if header == "path" else "right")
    for label, summary in results["latency"].items():
        values = (_fmt(summary.get(k)) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms"))
        table.add_row(label, str(summary["count"]), *values)
    return table


def _targets(checks: list[Check]) -> Table:
    table = Table(title="Targets")
    for header in ("target", "wanted", "measured", ""):
        table.add_column(header)
    for check in checks:
        measured = check.note if check.measured is None and check.note else _fmt(check.measured) + check.unit
        table.add_row(check.name, check.target, measured, _verdict(check.met))
    return table


def print_report(results: dict[str, Any], checks: list[Check], console: Console) -> None:
    ceiling = results["ceiling"]["api"]
    console.print(_throughput(results))
    console.print(
        "ceiling (API limits, minimal calls per change, the echo page included): "
        f"D->M {ceiling['to_marketo']['changes_per_second']:.0f}/s, "
        f"M->D {ceiling['to_dynamics']['changes_per_second']:.0f}/s; "
        "sustained: changes landed per second measured over the timeline's sustained part "
        "('short': the burst had none); projected = min(measured, rate allowed / calls per change)"
    )
    stores = _stores(results)
    if stores is not None:
        console.print(stores)
    windows = _windows(results)
    if windows is not None:
        console.print(windows)
    console.print(_latency(results))
    cold, worker = results.get("cold_start", {}), results.get("worker_process", {})
    if cold:
        console.print(f"import function_app: {cold['import_function_app_ms_median']:.0f} ms (median)")
    if "process_peak_rss_bytes" in worker:
        console.print(
            f"worker process: peak RSS {worker['process_peak_rss_bytes'] / 2**20:.0f} MiB, "
            f"peak traced during a {worker['batch_size']}-notice batch "
            f"{worker['batch_peak_traced_bytes'] / 2**20:.1f} MiB"
        )
    instances = results.get("instances")
    if instances:
        i = instances
        console.print(
            f"{i['processes']} instances, one Marketo budget ({i['share_per_20s']} calls/20 s): "
            f"{i['calls']} calls in {i['seconds']:.0f} s = {i['calls_per_second']:.2f}/s; "
            f"over {i['whole_windows']} whole windows {_fmt(i['sustained_calls_per_second'], 3)}/s, "
            f"{_fmt(i['fraction_of_api_rate'], 2)} of Marketo's 5/s, "
            f"{i['answered_606']} answered 606, "
            f"peak {i['peak_calls_in_window']} calls in a 20 s window"
        )
    quota = results.get("capacity", {}).get("quota_allows_changes_per_day")
    if quota:
        console.print(
            "Marketo daily quota allows, changes arriving evenly: "
            f"{quota['half_from_each_side']:,} a day half from each side, "
            f"{quota['all_from_dynamics']:,} all from Dynamics, "
            f"{quota['all_from_marketo']:,} all from Marketo"
        )
    console.print(_targets(checks))
