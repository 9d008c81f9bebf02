"""``mdsync bench``: throughput, API calls per change, latency and cold start, measured against the
simulators with their documented limits on, side by side with a naive baseline."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

# Where the bench draws its charts; docs/performance.md links to the files by name.
CHARTS = Path("docs/images/bench")


def run_bench(
    quick: bool,
    output: Path,
    console: Console,
    *,
    stores_only: bool = False,
    stores: tuple[str, ...] = ("sqlite", "table"),
    charts: Path | None = CHARTS,
) -> int:
    # Imported here, not at the top: ``python -m mdsync.bench.probe`` (a bare worker process
    # whose memory is measured) must not load the harness and the simulators with this package.
    from mdsync.bench.runner import run_bench as run  # noqa: PLC0415

    return run(
        quick=quick, output=output, console=console, stores_only=stores_only, stores=stores, charts=charts
    )


def draw_charts(results: Mapping[str, Any], folder: Path, say: Callable[[str], None]) -> bool:
    """The charts of ``results`` (mdsync/bench/charts.py), each one skipped with a note when its
    data is missing. Never raises: the measurements stand without their pictures. ``say``
    prints rich markup; the notes are escaped for it."""
    from rich.markup import escape  # noqa: PLC0415

    def note(text: str) -> None:
        say(escape(text))

    try:
        from mdsync.bench.charts import draw  # noqa: PLC0415 (matplotlib: the bench extra)
    except ImportError as exc:
        note(f"charts not drawn: {exc} (pip install 'mdsync[bench]')")
        return False
    try:
        drawn = draw(results, folder)
    except Exception as exc:  # the bench's results are written; a chart must not lose them
        note(f"charts not drawn: {type(exc).__name__}: {exc}")
        return False
    for skipped in drawn.skipped:
        note(f"chart skipped: {skipped}")
    count = len(drawn.written)
    note(f"{count} chart{'' if count == 1 else 's'} drawn in {folder}")
    return True


__all__ = ["CHARTS", "draw_charts", "run_bench"]
