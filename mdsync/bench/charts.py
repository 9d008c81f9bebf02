"""The bench's results drawn, for a reader who would rather look than read.

``draw(results, folder)`` is a pure function of the results document (bench/results.json) to
SVG files with stable names, which docs/performance.md links to:

- ``<workload>.svg`` for every workload whose results carry a ``timeline`` (the bursts, the
  batching peer): Marketo calls per
  20 s against Marketo's 100 and the sync client's own limit, as bars over fixed windows from the
  clock's start (the windows the sustained part is counted in) and as a line over the rolling
  20 s Marketo enforces ("calls in the past 20 seconds"); Dataverse requests per 20 s against 400
  (its 6,000 per 300 s); changes landed per second, the sustained part shaded and its measured
  rate written on it, the API ceiling of the direction drawn.
- ``latency.svg``: the distribution (cumulative) of each steady workload's latency, from the
  quantile points the results keep (``samples_ms``), p50 and p95 marked, the target drawn.

SVG, not PNG: the charts are lines and a few dozen bars, so the files stay small, their text stays
text (``svg.fonttype: none``: searchable, and a regenerated chart diffs as text) and they scale on
any screen. The same results draw the same bytes: no date in the metadata, a fixed salt for the
element ids.

matplotlib is the bench extra's (``pip install 'mdsync[bench]'``), drawn through its object API
(``Figure``, never pyplot): no display, no global state, only the SVG canvas.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from mdsync.bench.capacity import ApiLimits
from mdsync.bench.report import SHORT

LATENCY_FILE = "latency.svg"
TARGET_SECONDS = 2.0  # the p50 target of both directions (issue 15)
FLOW_STEP_TARGET_SECONDS = 0.3  # the flow step's p50 target (a webhook call Marketo waits on)
# The steady workloads whose latency the results keep per workload only (not in "latency").
WINDOW_WORKLOADS = ("even_window_off", "even_window_on")
DIRECTIONS = {"to_marketo": "D->M", "to_dynamics": "M->D"}
# The workloads that record a timeline: the bursts and the batching peer's.
TIMED = ("burst_", "peer_")
SHAPE_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError)


@dataclass
class Drawn:
    """What ``draw`` wrote, and a one-line note for each chart it could not draw."""

    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def draw(results: Mapping[str, Any], folder: Path) -> Drawn:
    """Every chart the results hold the data for, into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    drawn = Drawn()
    for key, workload in results.get("workloads", {}).items():
        if not workload.get("timeline"):
            if key.startswith(TIMED):
                drawn.skipped.append(f"{key}: no timeline in the results (a bench before timelines?)")
            continue
        _attempt(drawn, key, folder / f"{key}.svg", lambda w=workload, k=key: burst_figure(k, w, results))
    series = latency_series(results)
    if series:
        _attempt(drawn, "latency", folder / LATENCY_FILE, lambda: latency_figure(series, source(results)))
    else:
        drawn.skipped.append("latency: no latency samples in the results (a bench before samples_ms?)")
    return drawn


def _attempt(drawn: Drawn, name: str, path: Path, figure: Any) -> None:
    """One chart: a results file of another shape costs that chart, never the others."""
    try:
        with mpl.rc_context({"svg.fonttype": "none", "svg.hashsalt": "mdsync-bench", "font.size": 9}):
            figure().savefig(path, format="svg", metadata={"Date": None})
    except SHAPE_ERRORS as exc:
        drawn.skipped.append(f"{name}: unexpected results ({type(exc).__name__}: {exc})")
        return
    drawn.written.append(path)


def source(results: Mapping[str, Any]) -> str:
    """The run a chart comes from, as its title says it: the command and when it started."""
    meta = results.get("meta", {})
    flags = [
        flag
        for flag, on in (("--quick", meta.get("quick")), ("--stores-only", meta.get("stores_only")))
        if on
    ]
    started = meta.get("started_at")
    return " ".join(["mdsync bench", *flags, *([f"of {started}"] if started else [])])


# --- bursts ----------------------------------------------------------------------------------


def burst_figure(key: str, workload: Mapping[str, Any], results: Mapping[str, Any]) -> Figure:
    timeline = workload["timeline"]
    window = float(timeline["window_seconds"])
    marketo, dataverse = timeline["marketo_call_times"], timeline["dataverse_call_times"]
    landed = timeline["landed_per_second"]
    start = min(0.0, *marketo[:1], *dataverse[:1])
    end = max(float(len(landed)), *marketo[-1:], *dataverse[-1:])
    figure = Figure(figsize=(10, 8), layout="constrained")
    calls_ax, requests_ax, landed_ax = figure.subplots(3, 1, sharex=True, height_ratios=(3, 2, 3))
    limits = [
        (timeline["marketo_limit_per_window"], "Marketo's limit"),
        (timeline["client_limit_per_window"], "the sync client's limit"),
    ]
    _calls(calls_ax, marketo, window=window, span=(start, end), limits=limits, what="Marketo calls")
    dataverse_limit = ApiLimits().dataverse_rate * window
    dataverse_limits = [(dataverse_limit, "Dataverse's limit")]
    _calls(
        requests_ax,
        dataverse,
        window=window,
        span=(start, end),
        limits=dataverse_limits,
        what="Dataverse requests",
    )
    _landed(landed_ax, landed, timeline.get("sustained"), _ceiling(key, results))
    landed_ax.set_xlabel("seconds since the clock started")
    landed_ax.set_xlim(start, end)
    title = f"{SHORT.get(key, key)}: {workload['changes']:,} changes in {workload['seconds']:.1f} s"
    figure.suptitle(f"{title}\n{source(results)}", fontsize=11)
    return figure


def _calls(
    ax: Axes,
    times: Sequence[float],
    *,
    window: float,
    span: tuple[float, float],
    limits: Sequence[tuple[float, str]],
    what: str,
) -> None:
    """Calls per window: bars over fixed windows, a line over the rolling window."""
    starts, counts = fixed_windows(times, window, span)
    ax.bar(
        starts, counts, width=window, align="edge", color="#9ecae1", edgecolor="white", label="fixed windows"
    )
    moments, rolling = rolling_counts(times, window)
    if moments:
        ax.plot(
            moments, rolling, drawstyle="steps-post", color="#08519c", lw=1, label=f"rolling {window:g} s"
        )
    for (limit, name), style in zip(limits, ("-", "--"), strict=False):
        ax.axhline(limit, color="#cb181d", ls=style, lw=1, label=f"{name}: {limit:g}")
    ax.set_ylim(0, max([*counts, *rolling, *(limit for limit, _ in limits)]) * 1.4)
    ax.legend(loc="upper left", ncols=4, frameon=False)
    ax.set_ylabel(f"per {window:g} s")
    ax.set_title(
        f"{what} per {window:g} s: {len(times):,} in all (bars: fixed windows from the clock's start; "
        f"line: the rolling {window:g} s)",
        loc="left",
    )


def fixed_windows(
    times: Sequence[float], window: float, span: tuple[float, float]
) -> tuple[list[float], list[int]]:
    """Window starts (multiples of ``window`` from 0) covering ``span``, and the calls in each
    window [start, start + window)."""
    first, last = math.floor(span[0] / window), max(math.ceil(span[1] / window), 1)
    starts = [k * window for k in range(first, last)]
    counts = [bisect_left(times, s + window) - bisect_left(times, s) for s in starts]
    return starts, counts


def rolling_counts(times: Sequence[float], window: float) -> tuple[list[float], list[int]]:
    """The calls in (t - window, t] at every moment the count changes (a call, or a call leaving
    the window): Marketo's "calls in the past 20 seconds", exactly."""
    moments = sorted({*times, *(t + window for t in times)})
    return moments, [bisect_right(times, t) - bisect_right(times, t - window) for t in moments]


def _landed(
    ax: Axes, landed: Sequence[int], sustained: Mapping[str, Any] | None, ceiling: float | None
) -> None:
    ax.stairs(landed, range(len(landed) + 1), fill=True, color="#74c476", label="landed")
    if ceiling is not None:
        ax.axhline(ceiling, color="#cb181d", ls="--", lw=1)
        ax.annotate(
            f"API ceiling: {ceiling:,.0f}/s",
            (0.01, ceiling),
            xycoords=("axes fraction", "data"),
            va="bottom",
            color="#cb181d",
        )
    if sustained:
        rate, start, end = sustained["changes_per_second"], sustained["start"], sustained["end"]
        ax.axvspan(start, end, color="#fdae6b", alpha=0.3, lw=0)
        ax.hlines(rate, start, end, color="#d94801", lw=2)
        ax.annotate(
            f"sustained {start:g}-{end:g} s: {rate:,.0f} changes/s, "
            f"{sustained['fraction_of_ceiling']:.2f} of the ceiling",
            ((start + end) / 2, 0.93),
            xycoords=("data", "axes fraction"),
            ha="center",
            va="top",
            color="#a63603",
        )
    else:
        ax.annotate(
            "no sustained part: the burst is too short", (0.01, 0.93), xycoords="axes fraction", va="top"
        )
    top = max(
        [*landed, *([ceiling] if ceiling else []), *([sustained["changes_per_second"]] if sustained else [])]
    )
    ax.set_ylim(0, max(top, 1) * 1.3)
    ax.set_ylabel("changes per second")
    ax.set_title(f"Changes landed per second: {sum(landed):,} in all", loc="left")


def _ceiling(key: str, results: Mapping[str, Any]) -> float | None:
    direction = next((d for d in DIRECTIONS if d in key), None)
    api = results.get("ceiling", {}).get("api", {})
    return api[direction]["changes_per_second"] if direction in api else None


# --- latency ---------------------------------------------------------------------------------


def latency_series(results: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Label -> latency summary, for every steady path whose summary keeps its samples: the
    results' latency section, and the million-a-day runs with the batching window off and on."""
    found: dict[str, Any] = dict(results.get("latency", {}))
    workloads = results.get("workloads", {})
    for key in WINDOW_WORKLOADS:
        for direction, arrow in DIRECTIONS.items():
            summary = workloads.get(key, {}).get("latency", {}).get(direction)
            if summary is not None:
                found[f"{arrow} ({SHORT.get(key, key)})"] = summary
    return {label: summary for label, summary in found.items() if summary.get("samples_ms")}


def latency_figure(series: Mapping[str, Mapping[str, Any]], run: str = "") -> Figure:
    columns = 2 if len(series) > 1 else 1
    rows = math.ceil(len(series) / columns)
    figure = Figure(figsize=(11, 2.5 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).flatten()
    for ax, (label, summary) in zip(axes, series.items(), strict=False):
        _distribution(ax, label, summary)
    for ax in axes[len(series) :]:
        ax.set_visible(False)
    title = "Latency from the edit to the value landing (cumulative share of changes)"
    figure.suptitle(f"{title}\n{run}".strip(), fontsize=11)
    return figure


def _distribution(ax: Axes, label: str, summary: Mapping[str, Any]) -> None:
    seconds = [ms / 1000 for ms in summary["samples_ms"]]
    last = max(len(seconds) - 1, 1)
    ax.plot(seconds, [i / last for i in range(len(seconds))], color="#08519c")
    target = FLOW_STEP_TARGET_SECONDS if label.startswith("flow step") else TARGET_SECONDS
    ax.axvline(target, color="#cb181d", ls="--", lw=1, label=f"target p50 {target:g} s")
    ax.legend(loc="lower right", frameon=False)  # a distribution's corner that stays empty
    for name, y in (("p50", 0.5), ("p95", 0.95)):
        value = summary.get(f"{name}_ms")
        if value is not None:
            ax.plot([value / 1000], [y], "o", color="#d94801")
            ax.annotate(f" {name} {value / 1000:.2f} s", (value / 1000, y), va="top", color="#a63603")
    ax.set_xlim(0, max(seconds[-1], target) * 1.08)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{label}, {summary.get('count', len(seconds)):,} changes", loc="left", fontsize=9)
    ax.set_xlabel("seconds")
    ax.set_ylabel("share of changes")
