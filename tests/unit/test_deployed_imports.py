"""What the deployed app imports at cold start: nothing from the local tooling, no heavy library.

Timing is measured by `make bench`; this test only checks which modules load.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = (
    "simulators",
    "mdsync",
    "starlette",
    "uvicorn",
    "rich",
    "pandas",
    "numpy",
    "matplotlib",
    "hypothesis",
    "trustme",
    "pytest",
)


def _imported_modules() -> set[str]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import function_app"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    modules = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            modules.add(line.rsplit("|", 1)[1].strip())
    return modules


def test_function_app_imports_no_local_tooling_or_heavy_library() -> None:
    modules = _imported_modules()
    assert "function_app" in modules
    offenders = sorted(m for m in modules if m.split(".")[0] in FORBIDDEN)
    assert offenders == []
    # Telemetry's exporter loads only when Application Insights is configured, on first use;
    # the Python worker's own package is a development tool.
    # The backfill's job and runner load with its first call or step.
    lazy = (
        "azure.monitor",
        "opentelemetry.sdk",
        "azure.identity",
        "azure_functions_runtime",
        "shared.backfill.job",
        "shared.backfill.runner",
    )
    assert sorted(m for m in modules if m.startswith(lazy)) == []


REGISTRATION = """
import json, function_app
for f in function_app.app.get_functions():
    bindings = json.loads(f.get_function_json())["bindings"]
    trigger = next(b for b in bindings if b["type"].endswith("Trigger"))
    where = trigger.get("route") or trigger.get("schedule") or trigger.get("queueName")
    level, cardinality = trigger.get("authLevel", "-"), trigger.get("cardinality", "-")
    print(f.get_function_name(), trigger["type"], where, level, cardinality, sep="|")
"""


def test_every_function_is_registered_with_its_trigger() -> None:
    # In a subprocess: get_functions() may run once per app object, and the local host in this
    # test session indexes the app itself.
    result = subprocess.run(
        [sys.executable, "-c", REGISTRATION], cwd=ROOT, capture_output=True, text=True, check=True
    )
    rows = {line.split("|")[0]: line.split("|")[1:] for line in result.stdout.splitlines()}
    assert rows == {
        "dynamics_webhook": ["httpTrigger", "dynamics/webhook", "FUNCTION", "-"],
        "marketo_change": ["httpTrigger", "marketo/change", "FUNCTION", "-"],
        "marketo_poller": ["timerTrigger", "%MARKETO_POLL_SCHEDULE%", "-", "-"],
        "dynamics_sweep": ["timerTrigger", "%DYNAMICS_SWEEP_SCHEDULE%", "-", "-"],
        "sync_worker": ["serviceBusTrigger", "%SERVICEBUS_QUEUE_NAME%", "-", "MANY"],
        "sync_person_to_microsoft": ["httpTrigger", "marketo/sync-person", "FUNCTION", "-"],
        "backfill_start": ["httpTrigger", "backfill", "ADMIN", "-"],
        "backfill_status": ["httpTrigger", "backfill", "ADMIN", "-"],
        "backfill_step": ["serviceBusTrigger", "%BACKFILL_QUEUE_NAME%", "-", "-"],
        # Anonymous for the Functions host: App Service authentication and the operator role
        # guard it (shared/console/auth.py), so no key ever travels in its URLs.
        "console": ["httpTrigger", "console/{*path}", "ANONYMOUS", "-"],
        "console_metrics": ["timerTrigger", "%MDSYNC_METRICS_SCHEDULE%", "-", "-"],
        "sync_log_retention": ["timerTrigger", "0 45 2 * * *", "-", "-"],
    }
