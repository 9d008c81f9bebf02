"""``DevHost``: the local stand-in for the Azure Functions host (``func start``).

It runs the very functions registered on a ``FunctionApp``: HTTP functions on
``http://localhost:<port>/<routePrefix>/...`` with keys enforced, timer functions on their
NCRONTAB schedules, and Service Bus-triggered functions fed from a :class:`LocalQueue`.
The pieces live in their own modules (discovery, http, timers, queue_pump); this one wires them,
owns their threads and stops them in order.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self

import azure.functions as func

from mdsync.devhost.describe import FunctionRow
from mdsync.devhost.discovery import (
    FunctionSpec,
    HttpTrigger,
    OtherTrigger,
    ServiceBusTrigger,
    TimerTrigger,
    discover,
    load_function_app,
)
from mdsync.devhost.hostconfig import HostConfig
from mdsync.devhost.http import MAX_BODY_BYTES, HttpFront, build_routes
from mdsync.devhost.keys import KeyRing
from mdsync.devhost.queue_pump import DEFAULT_IDLE_WAIT, DEFAULT_LOCK_SECONDS, QueuePump
from mdsync.devhost.settings import ExportedSettings, export_settings, read_local_settings
from mdsync.devhost.signin import AUTH_ENABLED_SETTING, LocalSignIn
from mdsync.devhost.timers import MonitorStore, TimerRunner
from shared.config import local_settings_path
from shared.errors import ConfigurationError
from shared.ports import LocalQueue
from simulators.server import ServerThread

log = logging.getLogger("mdsync.devhost")

DEFAULT_STATE_DIR = Path(".mdsync/devhost")
QUEUE_NAME_SETTING = "SERVICEBUS_QUEUE_NAME"
DEFAULT_QUEUE_NAME = "mdsync-notices"
THREAD_COUNT_SETTING = "PYTHON_THREADPOOL_THREAD_COUNT"
SCRIPT_FILE_SETTING = "PYTHON_SCRIPT_FILE_NAME"
DEFAULT_SCRIPT_FILE = "function_app.py"


def _thread_count_setting() -> int | None:
    """PYTHON_THREADPOOL_THREAD_COUNT, as the worker reads it; None: the executor's default."""
    value = os.environ.get(THREAD_COUNT_SETTING, "")
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ConfigurationError(f"{THREAD_COUNT_SETTING} must be a positive integer, not {value!r}")
    return int(value)


class DevHost:
    """Serve one FunctionApp locally.

    ``function_keys`` maps a function name to its key (or keys); ``host_keys`` are valid for
    every function; ``master_key`` (generated when omitted, see :attr:`master_key`) is the only
    key for admin-level functions and the ``/admin`` routes. ``settings_env`` is exported into
    ``os.environ`` (default: the ``Values`` of ``local.settings.json``; variables already set
    win) before the functions are indexed, and removed again by :meth:`stop`. ``route_prefix``
    defaults to ``host.json``'s ``extensions.http.routePrefix``, else ``api``. Service Bus
    functions whose ``queueName`` equals ``queue_name`` (default: the queue's own ``queue_name``
    attribute, else the ``SERVICEBUS_QUEUE_NAME`` setting, else ``mdsync-notices``) are fed from
    ``queue``; those of the other queues in ``extra_queues`` (by name) from those.
    """

    def __init__(
        self,
        app: func.FunctionRegister,
        *,
        queue: LocalQueue | None,
        port: int = 7071,
        function_keys: Mapping[str, str | Sequence[str]],
        host_keys: Sequence[str],
        master_key: str | None = None,
        settings_env: Mapping[str, str] | None = None,
        route_prefix: str | None = None,
        host_json: Path | None = None,
        state_dir: Path | None = None,
        queue_name: str | None = None,
        max_workers: int | None = None,
        queue_idle_wait: float = DEFAULT_IDLE_WAIT,
        queue_lock_seconds: float = DEFAULT_LOCK_SECONDS,
        sign_in: LocalSignIn | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        extra_queues: Mapping[str, LocalQueue] | None = None,
    ) -> None:
        self._pumps: list[QueuePump] = []
        values = dict(
            settings_env if settings_env is not None else read_local_settings(local_settings_path())
        )
        if sign_in is not None:
            # What App Service sets when its authentication is on: the sign-in below plays it.
            values[AUTH_ENABLED_SETTING] = "True"
        self.sign_in = sign_in
        self._exported: ExportedSettings = export_settings(values)
        try:
            self._config = HostConfig.load(host_json)
            prefix = self._config.route_prefix if route_prefix is None else route_prefix
            self.route_prefix = prefix.strip("/")
            self.queue_name = (
                queue_name
                or getattr(queue, "queue_name", None)  # SqliteQueue knows its name
                or os.environ.get(QUEUE_NAME_SETTING)
                or DEFAULT_QUEUE_NAME
            )
            self.functions: list[FunctionSpec] = discover(app)
            self.master_key = master_key or secrets.token_urlsafe(32)
            keys = KeyRing(function_keys=function_keys, host_keys=host_keys, master_key=self.master_key)
            self._executor = ThreadPoolExecutor(
                max_workers or _thread_count_setting(), thread_name_prefix="devhost-http"
            )
            self._front = HttpFront(
                build_routes(self.functions, self.route_prefix),
                route_prefix=self.route_prefix,
                keys=keys,
                executor=self._executor,
                run_function=self._run_function_async,
                # A function may just have queued notices: let the pumps look at once.
                on_invoked=self.wake,
                sign_in=sign_in,
                max_body_bytes=max_body_bytes,
            )
            monitor = MonitorStore(state_dir or DEFAULT_STATE_DIR)
            self._timers = {
                spec.name.lower(): TimerRunner(spec, monitor=monitor, on_invoked=self.wake)
                for spec in self.functions
                if isinstance(spec.trigger, TimerTrigger)
            }
            queues = {self.queue_name: queue, **(extra_queues or {})}
            self._pumps = self._make_pumps(queues, queue_idle_wait, queue_lock_seconds)
        except BaseException:
            self._exported.restore()
            raise
        self._port = port
        self._server: ServerThread | None = None
        self._state = "created"
        self._state_lock = threading.Lock()

    @classmethod
    def for_project(
        cls,
        root: Path,
        *,
        queue: LocalQueue | None,
        function_keys: Mapping[str, str | Sequence[str]],
        host_keys: Sequence[str],
        settings_file: Path | None = None,
        **options: Any,
    ) -> DevHost:
        """What ``func start`` does in ``root``: export ``local.settings.json`` (default
        ``root/local.settings.json``), import ``function_app.py`` (or PYTHON_SCRIPT_FILE_NAME)
        and read ``host.json``. ``options`` are the other keyword arguments of the constructor."""
        values = read_local_settings(settings_file or root / "local.settings.json")
        exported = export_settings(values)
        try:
            script = root / (os.environ.get(SCRIPT_FILE_SETTING) or DEFAULT_SCRIPT_FILE)
            app = load_function_app(script)
            options.setdefault("host_json", root / "host.json")
            options.setdefault("state_dir", root / DEFAULT_STATE_DIR)
            host = cls(
                app,
                queue=queue,
                function_keys=function_keys,
                host_keys=host_keys,
                settings_env={},
                **options,
            )
        except BaseException:
            exported.restore()
            raise
        host._exported.exported.update(exported.exported)  # stop() restores these too
        return host

    def _make_pumps(
        self, queues: Mapping[str, LocalQueue | None], idle_wait: float, lock_seconds: float
    ) -> list[QueuePump]:
        return [
            pump
            for name, queue in queues.items()
            for pump in self._pumps_for(name, queue, idle_wait, lock_seconds)
        ]

    def _pumps_for(
        self, name: str, queue: LocalQueue | None, idle_wait: float, lock_seconds: float
    ) -> list[QueuePump]:
        fed = [
            spec
            for spec in self.functions
            if isinstance(spec.trigger, ServiceBusTrigger) and spec.trigger.queue_name == name
        ]
        if not fed:
            return []
        if queue is None:
            names = [s.name for s in fed]
            raise ConfigurationError(
                f"functions {names} listen on queue '{name}' but no local queue was given"
            )
        return [
            QueuePump(
                spec,
                queue,
                max_batch_size=self._config.max_message_batch_size,
                max_concurrent_calls=self._config.max_concurrent_calls,
                lock_seconds=lock_seconds,
                idle_wait=idle_wait,
                min_batch_size=self._config.min_message_batch_size,
                max_batch_wait=self._config.max_batch_wait_seconds,
            )
            for spec in fed
        ]

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        with self._state_lock:
            if self._state != "created":
                raise RuntimeError(f"the host is {self._state}; a DevHost starts once")
            self._state = "starting"
        try:
            self._server = ServerThread(self._front.app(), port=self._port, name="devhost").start()
            for pump in self._pumps:
                pump.start()
            for timer in self._timers.values():
                timer.start()
        except BaseException:
            self._state = "running"  # let stop() release what did start
            self.stop()
            raise
        self._state = "running"
        log.info("devhost listening on %s (%d functions)", self.url, len(self.functions))
        return self

    def stop(self) -> None:
        """Stop accepting requests, stop the schedulers and pumps (letting the invocations in
        progress finish and settle), then restore the environment. Safe to call twice."""
        with self._state_lock:
            if self._state in ("stopping", "stopped"):
                return
            self._state = "stopping"
        if self._server is not None:
            self._server.stop()
        for timer in self._timers.values():
            timer.stop()
        for pump in self._pumps:
            pump.stop()
        self._executor.shutdown(wait=True)
        self._exported.restore()
        self._state = "stopped"
        log.info("devhost stopped")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def run_forever(self) -> None:
        """Start (if needed) and serve until Ctrl-C or SIGTERM, then stop cleanly."""
        stop_requested = threading.Event()
        previous: dict[signal.Signals, Any] = {}

        def request_stop(signum: int, frame: FrameType | None) -> None:
            log.info("received %s; stopping", signal.Signals(signum).name)
            stop_requested.set()

        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, request_stop)
        try:
            if self._state == "created":
                self.start()
            # A timeout keeps the main thread responsive to signals on every platform.
            while not stop_requested.wait(0.5):
                pass
        finally:
            self.stop()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    # --- what the host serves --------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the host is not started")
        return self._server.url

    @property
    def port(self) -> int:
        return self._server.port if self._server is not None else self._port

    def function_url(self, name: str) -> str:
        """The URL template of an HTTP function (route parameters left as ``{name}``)."""
        spec = self._find(name)
        if not isinstance(spec.trigger, HttpTrigger):
            raise ValueError(f"{spec.name} is not an HTTP function")
        return self._route_url(spec.trigger)

    def _route_url(self, trigger: HttpTrigger) -> str:
        base = self._server.url if self._server is not None else f"http://localhost:{self._port}"
        path = "/".join(p for p in (self.route_prefix, trigger.route.strip("/")) if p)
        return f"{base}/{path}"

    def describe(self) -> list[FunctionRow]:
        """One row per function, in registration order (print with ``describe.as_rich_table``)."""
        return [self._row(spec) for spec in self.functions]

    def _row(self, spec: FunctionSpec) -> FunctionRow:
        trigger = spec.trigger
        if isinstance(trigger, HttpTrigger):
            methods = ",".join(trigger.methods) if len(trigger.methods) < 7 else "ALL"
            return FunctionRow(
                spec.name, "http", f"{methods} {self._route_url(trigger)}", f"auth={trigger.auth_level}"
            )
        if isinstance(trigger, TimerTrigger):
            runner = self._timers[spec.name.lower()]
            flags = [f"monitor={'on' if runner.monitored else 'off'}"]
            if trigger.run_on_startup:
                flags.append("run_on_startup")
            if runner.next_due is not None:
                flags.append(f"next={runner.next_due.isoformat()}")
            return FunctionRow(spec.name, "timer", f"{trigger.schedule} (UTC)", ", ".join(flags))
        if isinstance(trigger, ServiceBusTrigger):
            target = f"queue {trigger.queue_name}" if trigger.queue_name else f"topic {trigger.topic_name}"
            if not any(p.spec is spec for p in self._pumps):
                return FunctionRow(spec.name, "serviceBus", target, "not fed: not the local queue")
            batch = f"many (<= {self._config.max_message_batch_size} per call)" if trigger.many else "one"
            return FunctionRow(spec.name, "serviceBus", target, f"cardinality={batch}")
        assert isinstance(trigger, OtherTrigger)
        return FunctionRow(spec.name, trigger.type, "-", "not run by the local host")

    # --- operations ----------------------------------------------------------------------------

    def trigger_timer(self, name: str, *, past_due: bool = False) -> None:
        """Run a timer function now and wait for it (after any run in progress: runs of one
        function never overlap). The function's exception propagates."""
        self._timer(name).run_now(past_due=past_due)

    def hold_queue(self, held: bool) -> None:
        """Stop (True) or resume (False) handing queued messages to the Service Bus functions."""
        for pump in self._pumps:
            if held:
                pump.hold()
            else:
                pump.release()

    def wake(self) -> None:
        """Make the Service Bus pumps poll now (call after sending to the local queue)."""
        for pump in self._pumps:
            pump.wake()

    def _find(self, name: str) -> FunctionSpec:
        for spec in self.functions:
            if spec.name.lower() == name.lower():
                return spec
        raise LookupError(f"no function named {name!r}")

    def _timer(self, name: str) -> TimerRunner:
        spec = self._find(name)
        runner = self._timers.get(spec.name.lower())
        if runner is None:
            raise ValueError(f"{spec.name} is not a timer function")
        return runner

    def _run_function_async(self, name: str) -> None:
        """The admin route: start a timer function in the background (answers 202)."""
        runner = self._timer(name)

        def run() -> None:
            try:
                runner.run_now()
            except Exception:  # logged by the invocation; the admin call has already answered
                return

        # On the worker pool, so that stop() waits for it like for any invocation.
        self._executor.submit(run)
