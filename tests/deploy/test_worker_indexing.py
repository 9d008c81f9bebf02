"""The deploy package, indexed by Azure's own Python worker in an environment like Azure's.

Azure installs ``requirements.txt`` into a fresh environment, then the Python worker imports
``function_app.py`` and indexes every function; one refused function and the host loads none.
Here: an isolated virtualenv (.mdsync/worker-venv) holding exactly ``requirements.txt`` and the
worker package (azure-functions-runtime, see mdsync/devhost/worker_index.py), the files
``.funcignore`` leaves copied to a temporary directory, and the worker's loader and registry run
on them. A function the worker would refuse, or an import only the dev environment satisfies,
fails this test.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.package import REPO, copy_package
from tests.isolated_venv import isolated_python, run

# The same pinned worker `make setup` installs for the local host: one place, the Makefile.
WORKER = re.search(r"^WORKER := (\S+)$", (REPO / "Makefile").read_text(encoding="utf-8"), re.M).group(1)  # type: ignore[union-attr]
INDEXER = REPO / "mdsync" / "devhost" / "worker_index.py"
FUNCTIONS = {
    "dynamics_webhook",
    "marketo_change",
    "marketo_poller",
    "dynamics_sweep",
    "sync_worker",
    "sync_person_to_microsoft",
    "backfill_start",
    "backfill_status",
    "backfill_step",
    "console",
    "console_metrics",
    "sync_log_retention",
}

REFUSED_APP = """
import azure.functions as func

app = func.FunctionApp()


@app.service_bus_queue_trigger(arg_name="messages", queue_name="q", connection="C", cardinality="many")
def batch(messages: list[func.ServiceBusMessage]) -> None:
    return None
"""


@pytest.fixture(scope="session")
def worker_python() -> Path:
    requirements = REPO / "requirements.txt"
    return isolated_python(
        "worker-venv",
        [
            ["-r", str(requirements)],
            # The worker library is published for Python 3.13+; the 3.11 worker that Azure runs
            # for this app has the same indexing code but is not on PyPI.
            ["--no-deps", "--ignore-requires-python", WORKER, "azurefunctions-extensions-base"],
        ],
        inputs=[requirements],
    )


def _index(python: Path, app: Path, tmp_path: Path) -> tuple[int, dict[str, Any]]:
    # The indexer sits outside the app, and -I keeps the repo and its .venv off sys.path.
    indexer = tmp_path / "worker_index.py"
    shutil.copy2(INDEXER, indexer)
    completed = run([str(python), "-I", str(indexer), str(app)], cwd=app, timeout=300)
    assert completed.stdout.strip(), completed.stderr[-4000:]
    return completed.returncode, json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(900)
def test_the_python_worker_indexes_every_function_of_the_deploy_package(
    worker_python: Path, tmp_path: Path
) -> None:
    app = tmp_path / "app"
    files = copy_package(app)
    assert Path("function_app.py") in files
    assert Path("requirements.txt") in files
    assert not any(f.parts[0] in ("tests", "simulators", "mdsync") for f in files)
    code, result = _index(worker_python, app, tmp_path)
    assert code == 0, result
    assert {f["name"] for f in result["indexed"]} == FUNCTIONS
    worker = next(f for f in result["indexed"] if f["name"] == "sync_worker")
    trigger = json.loads(worker["bindings"][0])
    assert (trigger["type"], trigger["cardinality"]) == ("serviceBusTrigger", "MANY")


@pytest.mark.timeout(900)
def test_the_check_fails_on_an_annotation_the_worker_refuses(worker_python: Path, tmp_path: Path) -> None:
    """The test of the test: a PEP 585 list on a batch binding, as sync_worker once had."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "function_app.py").write_text(REFUSED_APP, encoding="utf-8")
    code, result = _index(worker_python, app, tmp_path)
    assert code == 1
    assert (
        "cannot load the batch function: binding messages has invalid non-type annotation"
        in (result["refused"])
    )
