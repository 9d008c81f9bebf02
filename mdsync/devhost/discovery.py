"""Find the functions of a FunctionApp the way the Python worker indexes them.

The worker imports ``function_app.py``, finds the single top-level ``FunctionRegister``, calls
``get_functions()`` once, reads each function's ``function.json`` equivalent and checks that the
Python parameters are exactly the binding names (``context`` aside). We read the same
``get_function_json()`` output, so a decorator mistake fails here as it would fail in Azure.
Where the worker package is installed (the dev environment), the functions also go through the
worker's own indexing (:mod:`mdsync.devhost.worker_index`), so an annotation the worker refuses
stops the local host exactly as it stops the app in Azure.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func

from mdsync.devhost.keys import AuthLevel
from mdsync.devhost.settings import resolve
from mdsync.devhost.worker_index import WorkerRefused, index, worker_available
from shared.errors import ConfigurationError

HTTP_TRIGGER = "httpTrigger"
TIMER_TRIGGER = "timerTrigger"
SERVICE_BUS_TRIGGER = "serviceBusTrigger"
CONTEXT_PARAMETER = "context"
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class HttpTrigger:
    route: str
    methods: tuple[str, ...]  # every method when the function names none
    auth_level: AuthLevel


@dataclass(frozen=True)
class TimerTrigger:
    schedule: str  # resolved from %Setting%
    run_on_startup: bool
    use_monitor: bool | None  # None: the host decides from the interval


@dataclass(frozen=True)
class ServiceBusTrigger:
    queue_name: str | None  # resolved from %Setting%; None for a topic subscription
    topic_name: str | None
    connection: str
    many: bool  # cardinality "many": the function takes a list


@dataclass(frozen=True)
class OtherTrigger:
    """A trigger the local host lists but does not run (blob, storage queue, ...)."""

    type: str


Trigger = HttpTrigger | TimerTrigger | ServiceBusTrigger | OtherTrigger


@dataclass(frozen=True)
class RetryPolicy:
    """``@app.retry``: honoured for timer functions, as the runtime does."""

    strategy: str  # "fixed_delay" or "exponential_backoff"
    max_retry_count: int  # -1: forever
    delay_seconds: float
    minimum_seconds: float
    maximum_seconds: float


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    trigger_arg: str
    trigger: Trigger
    user_function: Callable[..., Any]
    wants_context: bool
    retry: RetryPolicy | None


def load_function_app(script: Path) -> func.FunctionRegister:
    """Import ``script`` (normally ``function_app.py``) and return its one function app.

    The script's directory goes first on ``sys.path``, as the worker runs from the project root.
    Export the app settings before calling this: module code may read them at import.
    """
    script = script.resolve()
    if not script.is_file():
        raise ConfigurationError(f"{script} does not exist")
    root = str(script.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    module = _import(script)
    apps = [v for v in vars(module).values() if isinstance(v, func.FunctionRegister)]
    if not apps:
        raise ConfigurationError(f"Could not find top level function app instances in {script.name}")
    if len(apps) > 1:
        raise ConfigurationError(f"More than one function app instance is defined in {script.name}")
    return apps[0]


def _import(script: Path) -> ModuleType:
    name = script.stem
    loaded = sys.modules.get(name)
    if loaded is not None:
        if getattr(loaded, "__file__", None) == str(script):
            return loaded
        # Another file already owns the name (a test importing a second app): do not replace it.
        name = f"{name}_{abs(hash(str(script))):x}"
        if name in sys.modules:
            return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, script)
    if spec is None or spec.loader is None:
        raise ConfigurationError(f"cannot import {script}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def discover(app: func.FunctionRegister, env: Mapping[str, str] | None = None) -> list[FunctionSpec]:
    """Call ``app.get_functions()`` (once: a second call raises) and describe each function.

    ``%Setting%`` expressions are resolved from ``env`` (default: ``os.environ``). With the
    worker package installed, the worker indexes them first and its refusal stops the host.
    """
    functions = app.get_functions()
    if worker_available():
        try:
            index(functions)
        except WorkerRefused as exc:
            raise ConfigurationError(
                f"the Azure Functions Python worker would refuse this app (and load none of its "
                f"functions): {exc}"
            ) from None
    return [_spec(function, env) for function in functions]


def _spec(function: func.Function, env: Mapping[str, str] | None) -> FunctionSpec:
    name = function.get_function_name() or function.get_user_function().__name__
    bindings: list[dict[str, Any]] = json.loads(function.get_function_json())["bindings"]
    triggers = [b for b in bindings if str(b.get("type", "")).endswith("Trigger")]
    if len(triggers) != 1:
        raise ConfigurationError(f"function {name} must have exactly one trigger")
    trigger = triggers[0]
    _check_bindings(name, bindings, trigger)
    user_function = function.get_user_function()
    wants_context = _check_parameters(name, user_function, bindings)
    return FunctionSpec(
        name=name,
        trigger_arg=trigger["name"],
        trigger=_trigger(name, trigger, env),
        user_function=user_function,
        wants_context=wants_context,
        retry=_retry(name, function.get_settings_dict("retry_policy")),
    )


def _check_bindings(name: str, bindings: list[dict[str, Any]], trigger: dict[str, Any]) -> None:
    """Only the trigger (and the HTTP ``$return``) can be fed locally; anything else would be
    silently dropped, so it stops the host instead."""
    for binding in bindings:
        if binding is trigger or (binding.get("type") == "http" and binding.get("name") == "$return"):
            continue
        raise ConfigurationError(
            f"function {name}: binding '{binding.get('name')}' of type '{binding.get('type')}' "
            "is not supported by the local host (use the ports in shared/ instead)"
        )


def _check_parameters(name: str, user_function: Callable[..., Any], bindings: list[dict[str, Any]]) -> bool:
    """The worker's rule: Python parameters == binding names, plus an optional ``context``."""
    declared = set(inspect.signature(user_function).parameters)
    bound = {b["name"] for b in bindings if b["name"] != "$return"}
    wants_context = CONTEXT_PARAMETER in declared and CONTEXT_PARAMETER not in bound
    extra = declared - bound - ({CONTEXT_PARAMETER} if wants_context else set())
    missing = bound - declared
    if extra:
        raise ConfigurationError(
            f"function {name}: the following parameters are declared in Python but not in the "
            f"bindings: {sorted(extra)}"
        )
    if missing:
        raise ConfigurationError(
            f"function {name}: the following parameters are declared in the bindings but not in "
            f"Python: {sorted(missing)}"
        )
    return wants_context


def _trigger(name: str, binding: dict[str, Any], env: Mapping[str, str] | None) -> Trigger:
    kind = binding["type"]
    if kind == HTTP_TRIGGER:
        methods = tuple(str(m).upper() for m in binding.get("methods") or HTTP_METHODS)
        return HttpTrigger(
            route=binding.get("route") or name,
            methods=methods,
            auth_level=AuthLevel.parse(binding.get("authLevel")),
        )
    if kind == TIMER_TRIGGER:
        return TimerTrigger(
            schedule=resolve(str(binding["schedule"]), env),
            run_on_startup=bool(binding.get("runOnStartup")),
            use_monitor=binding.get("useMonitor"),
        )
    if kind == SERVICE_BUS_TRIGGER:
        queue = binding.get("queueName")
        topic = binding.get("topicName")
        return ServiceBusTrigger(
            queue_name=resolve(str(queue), env) if queue else None,
            topic_name=resolve(str(topic), env) if topic else None,
            connection=str(binding.get("connection") or "AzureWebJobsServiceBus"),
            many=str(binding.get("cardinality") or "ONE").upper() == "MANY",
        )
    return OtherTrigger(type=kind)


def _retry(name: str, setting: dict[str, Any] | None) -> RetryPolicy | None:
    if not setting:
        return None
    try:
        return RetryPolicy(
            strategy=str(setting["strategy"]),
            max_retry_count=int(setting["max_retry_count"]),
            delay_seconds=_timespan(setting.get("delay_interval")),
            minimum_seconds=_timespan(setting.get("minimum_interval")),
            maximum_seconds=_timespan(setting.get("maximum_interval")),
        )
    except (KeyError, ValueError) as exc:
        raise ConfigurationError(f"function {name}: invalid retry policy: {exc}") from exc


def _timespan(value: object) -> float:
    """``HH:mm:ss`` (fractions allowed) in seconds; absent means zero."""
    if value in (None, ""):
        return 0.0
    hours, minutes, seconds = str(value).split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
