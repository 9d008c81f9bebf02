"""Indexing a function app as the worker does, app settings, and the start-up table."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import azure.functions as func
import pytest
import requests

from mdsync.devhost import DevHost, as_rich_table, discover, load_function_app
from mdsync.devhost.discovery import HttpTrigger, ServiceBusTrigger, TimerTrigger
from mdsync.devhost.keys import AuthLevel
from mdsync.devhost.worker_index import worker_available
from shared.adapters.sqlite_queue import SqliteQueue
from shared.errors import ConfigurationError
from tests.devhost.conftest import NEVER, QUEUE_NAME, HostFactory
from tests.devhost.sample_app import Recorder, build_app

SAMPLE = Path(__file__).with_name("sample_app.py")


def test_discover_reads_every_trigger() -> None:
    specs = {
        s.name: s
        for s in discover(build_app(Recorder()), {"TICK_SCHEDULE": "0 */5 * * * *", "NOTICE_QUEUE": "q1"})
    }
    assert list(specs) == [
        "items",
        "ping",
        "reset",
        "boom",
        "pair",
        "coroutine",
        "tick",
        "consume",
        "other_queue",
    ]
    assert specs["items"].trigger == HttpTrigger(
        "items/{id:int}/{name?}", ("GET", "POST"), AuthLevel.FUNCTION
    )
    assert specs["ping"].trigger == HttpTrigger("ping", ("GET",), AuthLevel.ANONYMOUS)
    assert specs["reset"].trigger == HttpTrigger("ops/reset", ("POST",), AuthLevel.ADMIN)
    boom = specs["boom"].trigger
    assert isinstance(boom, HttpTrigger)
    assert len(boom.methods) == 7  # no methods listed: all of them
    assert specs["tick"].trigger == TimerTrigger("0 */5 * * * *", run_on_startup=False, use_monitor=True)
    assert specs["tick"].wants_context
    assert not specs["items"].wants_context
    assert specs["tick"].retry is not None
    assert specs["tick"].retry.max_retry_count == 2
    assert specs["consume"].trigger == ServiceBusTrigger("q1", None, "ServiceBusConnection", many=True)
    assert specs["other_queue"].trigger == ServiceBusTrigger(
        "elsewhere", None, "ServiceBusConnection", many=False
    )


def test_an_unresolvable_setting_stops_the_start() -> None:
    with pytest.raises(ConfigurationError, match="%TICK_SCHEDULE%"):
        discover(build_app(Recorder()), {"NOTICE_QUEUE": "q1"})


def test_parameter_names_must_match_the_bindings() -> None:
    app = func.FunctionApp()

    @app.route(route="x")
    def misnamed(request: func.HttpRequest) -> str:  # the binding is called "req"
        return ""

    # The worker's own check (installed by `make setup`) or the host's: both name the parameter.
    with pytest.raises(ConfigurationError, match=r"declared in Python but not in the .*'request'"):
        discover(app, {})


def test_a_missing_parameter_is_reported() -> None:
    app = func.FunctionApp()

    @app.timer_trigger(schedule="* * * * * *", arg_name="timer")
    def forgetful() -> None:
        return None

    either = r"declared (in the bindings|as bindings) but (are )?not (in|present in) Python"
    with pytest.raises(ConfigurationError, match=either):
        discover(app, {})


def test_the_worker_package_is_installed_for_the_local_host() -> None:
    assert worker_available(), "make setup installs azure-functions-runtime into .venv"


def test_an_annotation_the_python_worker_refuses_stops_the_start() -> None:
    """Azure's worker refuses a PEP 585 list on a binding and then loads no function; so must we."""
    app = func.FunctionApp()

    @app.function_name("batch")
    @app.service_bus_queue_trigger(
        arg_name="messages", queue_name="q", connection="ServiceBusConnection", cardinality="many"
    )
    def batch(messages: list[func.ServiceBusMessage]) -> None:
        return None

    with pytest.raises(ConfigurationError, match="batch function: binding messages has invalid non-type"):
        discover(app, {})


def test_bindings_the_host_cannot_feed_stop_the_start() -> None:
    app = func.FunctionApp()

    @app.route(route="x")
    @app.queue_output(arg_name="out", queue_name="q", connection="AzureWebJobsStorage")
    def sends(req: func.HttpRequest, out: func.Out[str]) -> str:
        return ""

    with pytest.raises(ConfigurationError, match="binding 'out' of type 'queue'"):
        discover(app, {})


def test_describe_lists_every_function(host: DevHost) -> None:
    rows = {row.name: row for row in host.describe()}
    assert rows["items"].trigger == "http"
    assert rows["items"].target == f"GET,POST {host.url}/api/items/{{id:int}}/{{name?}}"
    assert rows["items"].details == "auth=function"
    assert rows["reset"].details == "auth=admin"
    assert rows["tick"].trigger == "timer"
    assert rows["tick"].target == f"{NEVER} (UTC)"
    assert rows["tick"].details.startswith("monitor=on")
    assert rows["consume"].target == f"queue {QUEUE_NAME}"
    assert as_rich_table(host.describe()).row_count == len(rows) == 9


def test_settings_are_exported_while_the_host_lives(
    make_host: HostFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TICK_SCHEDULE", raising=False)
    monkeypatch.setenv("NOTICE_QUEUE", QUEUE_NAME)  # already set: the environment wins
    host = make_host()
    assert os.environ["TICK_SCHEDULE"] == NEVER
    host.stop()
    assert "TICK_SCHEDULE" not in os.environ
    assert os.environ["NOTICE_QUEUE"] == QUEUE_NAME


def test_local_settings_json_is_read_when_no_mapping_is_given(
    queue: SqliteQueue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = tmp_path / "local.settings.json"
    settings.write_text(
        '{"IsEncrypted": false, "Values": {"TICK_SCHEDULE": "0 0 * * * *", "NOTICE_QUEUE": "notices"}}'
    )
    monkeypatch.setenv("MDSYNC_LOCAL_SETTINGS", str(settings))
    monkeypatch.delenv("TICK_SCHEDULE", raising=False)
    host = DevHost(
        build_app(Recorder()), queue=queue, port=0, function_keys={}, host_keys=[], state_dir=tmp_path
    )
    try:
        assert {r.name: r.target for r in host.describe()}["tick"] == "0 0 * * * * (UTC)"
    finally:
        host.stop()


@pytest.fixture
def import_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Loading an app puts its folder on sys.path and the module in sys.modules: undo both."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith(("sample_app", "probe_app")):
            del sys.modules[name]


@pytest.mark.usefixtures("import_state")
def test_load_function_app_finds_the_one_app_like_the_worker() -> None:
    app = load_function_app(SAMPLE)
    assert isinstance(app, func.FunctionApp)
    assert app is load_function_app(SAMPLE)  # imported once


PROJECT_APP = """
import os
import azure.functions as func

GREETING = os.environ["GREETING"]  # read at import: the settings must be exported before
app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="hello", methods=["GET"])
def hello(req: func.HttpRequest) -> str:
    return GREETING
"""


@pytest.mark.usefixtures("import_state")
def test_for_project_does_what_func_start_does(
    tmp_path: Path, http: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GREETING", raising=False)
    (tmp_path / "probe_app.py").write_text(PROJECT_APP)
    (tmp_path / "host.json").write_text('{"version": "2.0", "extensions": {"http": {"routePrefix": "v1"}}}')
    (tmp_path / "local.settings.json").write_text(
        '{"Values": {"GREETING": "hello from settings", "PYTHON_SCRIPT_FILE_NAME": "probe_app.py"}}'
    )
    with DevHost.for_project(tmp_path, queue=None, port=0, function_keys={}, host_keys=[]) as host:
        assert http.get(f"{host.url}/v1/hello").text == "hello from settings"
    assert "GREETING" not in os.environ  # restored at stop
    assert (tmp_path / ".mdsync").exists() is False  # no timer: nothing written


def test_a_module_with_two_apps_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "two_apps.py"
    script.write_text("import azure.functions as func\na = func.FunctionApp()\nb = func.FunctionApp()\n")
    with pytest.raises(ConfigurationError, match="More than one"):
        load_function_app(script)
