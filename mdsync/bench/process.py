"""Measurements that need a fresh interpreter: the cold import of function_app, and a worker
process's memory and CPU profile (see ``probe.py``)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mdsync.bench.edits import edit_in_dynamics
from mdsync.bench.seed import Pair
from mdsync.harness import ROOT, LocalSystem

TOP_IMPORTS = 10


def _import_once() -> tuple[float, float, list[tuple[int, str]]]:
    """(function_app's cumulative import time, wall time of the process, modules by self time)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import function_app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    wall = time.perf_counter() - started
    cumulative = 0.0
    selfs: list[tuple[int, str]] = []
    for line in completed.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, total, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        selfs.append((int(own), name))
        if name == "function_app":
            cumulative = int(total) / 1e6
    selfs.sort(reverse=True)
    return cumulative, wall, selfs[:TOP_IMPORTS]


def cold_start(runs: int) -> dict[str, Any]:
    """Import function_app in ``runs`` fresh interpreters (the first may also compile .pyc)."""
    imports, walls = [], []
    heaviest: list[tuple[int, str]] = []
    for _ in range(runs):
        cumulative, wall, heaviest = _import_once()
        imports.append(cumulative)
        walls.append(wall)
    return {
        "runs": runs,
        "import_function_app_ms_median": round(statistics.median(imports) * 1000, 1),
        "import_function_app_ms_first": round(imports[0] * 1000, 1),
        "process_wall_ms_median": round(statistics.median(walls) * 1000, 1),
        "heaviest_modules_self_ms": [{"module": n, "self_ms": round(us / 1000, 1)} for us, n in heaviest],
    }


def worker_probe(system: LocalSystem, pairs: Sequence[Pair], batch: int, tag: str) -> dict[str, Any]:
    """Four batches of ``batch`` changed leads, synced by a worker in its own process while the
    harness holds the Dataverse webhooks (so the host's worker does not race it)."""
    chosen = list(pairs[: 4 * batch])
    batches = [[p.dynamics_id for p in chosen[i * batch : (i + 1) * batch]] for i in range(4)]
    admin = system.dataverse_admin
    admin.pause_webhooks(True)
    try:
        edit_in_dynamics(
            system, "lead", [(p.dynamics_id, {"jobtitle": f"{tag}-{i}"}) for i, p in enumerate(chosen)]
        )
        with tempfile.TemporaryDirectory() as folder:
            spec = Path(folder) / "spec.json"
            spec.write_text(json.dumps({"settings": system.settings(), "batches": batches}), encoding="utf-8")
            completed = subprocess.run(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "mdsync.bench.probe", str(spec)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
                timeout=600,
            )
    finally:
        admin.pause_webhooks(False)
    if completed.returncode != 0:
        return {"error": completed.stderr[-2000:]}
    report: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    report["batch_size"] = batch
    return report
