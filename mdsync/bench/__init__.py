"""``mdsync bench``: throughput, API calls per change, latency and cold start, measured against the
simulators with their documented limits on, side by side with a naive baseline."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


def run_bench(quick: bool, output: Path, console: Console, *, stores_only: bool = False) -> int:
    # Imported here, not at the top: ``python -m mdsync.bench.probe`` (a bare worker process
    # whose memory is measured) must not load the harness and the simulators with this package.
    from mdsync.bench.runner import run_bench as run  # noqa: PLC0415

    return run(quick=quick, output=output, console=console, stores_only=stores_only)


__all__ = ["run_bench"]
