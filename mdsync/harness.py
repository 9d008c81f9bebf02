"""The whole product on one machine: simulators, the local host running function_app.py, the
embedded queue and state, and the Dataverse and Marketo webhooks registered against the host.

The demo, the bench, the chaos runs and the end-to-end tests all drive this same harness, so
what they show is the code path Azure runs: webhooks over HTTP into the HTTP functions, timers,
and queue batches into the Service Bus-triggered worker.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mdsync.devhost import DevHost
from mdsync.devhost.discovery import load_function_app
from mdsync.devhost.signin import LocalSignIn, LocalUser
from shared.adapters.sqlite_queue import SqliteQueue
from shared.bootstrap import Container, container, reset_container
from shared.capture.marketo_campaign import webhook_template
from shared.capture.marketo_poll import API_SOURCE
from shared.capture.registration import webhook_steps
from shared.http import make_session
from simulators.dataverse.admin import DataverseAdmin
from simulators.marketo.admin import MarketoAdmin
from simulators.marketo.config import ExtraField
from simulators.stack import (
    FIXED_PORTS,
    FLOW_STEP_SECRET,
    MARKETO_WEBHOOK_SECRET,
    WEBHOOK_SECRET,
    SimulatorStack,
    StackConfig,
)
from simulators.tls import TlsFiles

ROOT = Path(__file__).resolve().parent.parent
HOST_KEY = "local-host-key-0123456789"
MASTER_KEY = "local-master-key-0123456789"
NEVER = "0 0 0 1 1 *"  # timers that only run when the harness triggers them
# How long a wait on background work (webhooks, the worker, a condition) may take before the
# test fails. Only a hung run reaches it: what a test waits for is the event, and a loaded
# machine (a 2-core box running several suites) can take many times the usual seconds.
PATIENCE = 120.0
WEBHOOK_NAME = "mdsync-local"
BACKFILL_QUEUE = "mdsync-backfill"
FLOW_STEP_WEBHOOK = "Sync Person to Microsoft"
CHANGE_WEBHOOK = "mdsync change notice"
CHANGE_CAMPAIGN = "mdsync: person changed"
# The local host's sign-in (App Service authentication's stand-in): an operator with the console
# role, and a signed-in user without it.
OPERATOR = "operator"
VISITOR = "visitor"
CONSOLE_ROLE = "mdsync.operator"
FLOW_STEP_FIELDS = (
    ExtraField("mdsyncFlowStepStatus", "mdsync Flow Step Status", soap_name="mdsyncFlowStepStatus"),
    ExtraField(
        "mdsyncFlowStepDynamicsId", "mdsync Flow Step Dynamics Id", soap_name="mdsyncFlowStepDynamicsId"
    ),
)
# Custom person fields a customer typically adds, for mappings beyond the defaults (the tests
# and the chaos scenarios map them): a notes text area, a short notes string, a close date.
CUSTOMER_FIELDS = (
    ExtraField("personNotes", "Person Notes", "text", length=None),
    ExtraField("salesNotes", "Sales Notes", "string", length=255),
    ExtraField("estimatedCloseDate", "Estimated Close Date", "date", length=None),
)


@dataclass
class HarnessConfig:
    workdir: Path
    tls: TlsFiles | None = None
    fixed_ports: bool = False
    host_port: int = 0
    # Real schedules for a running demo; NEVER for tests and benches that trigger timers themselves.
    poll_schedule: str = NEVER
    sweep_schedule: str = NEVER
    stack: StackConfig = field(default_factory=StackConfig)
    extra_settings: Mapping[str, str] = field(default_factory=dict)
    # Seconds the queue waits to fill a batch (host.json maxBatchWaitTime); None keeps
    # host.json's value. Tests use 0: they sync a handful of notices at a time.
    batch_wait: float | None = None
    # The console's local sign-in: the operator's password (the demo makes one up and prints it).
    operator_password: str = "local-operator-password"  # noqa: S105 - the local host's, never Azure's


def local_sign_in(password: str) -> LocalSignIn:
    return LocalSignIn(
        [
            LocalUser(OPERATOR, password, (CONSOLE_ROLE,)),
            LocalUser(VISITOR, password, ()),
        ]
    )


class LocalSystem:
    def __init__(self, config: HarnessConfig) -> None:
        self.config = config
        stack_config = config.stack
        stack_config.marketo = _with_fields(stack_config.marketo)
        if config.fixed_ports:
            stack_config.ports = dict(FIXED_PORTS)
        self.stack = SimulatorStack(stack_config, tls=config.tls)
        self.queue_path = config.workdir / "mdsync.sqlite3"
        self.host: DevHost | None = None
        self.session = make_session(extra_ca_file=self.stack.tls.ca_file)
        self.dataverse_admin: DataverseAdmin
        self.marketo_admin: MarketoAdmin

    # --- lifecycle ------------------------------------------------------------------------------

    def settings(self) -> dict[str, str]:
        return {
            **self.stack.settings(),
            "MDSYNC_LOCAL_SETTINGS": str(self.config.workdir / "no-local-settings.json"),
            "MDSYNC_QUEUE_BACKEND": "sqlite",
            "MDSYNC_STATE_BACKEND": "sqlite",
            "MDSYNC_SQLITE_PATH": str(self.queue_path),
            "SERVICEBUS_QUEUE_NAME": "mdsync-notices",
            "BACKFILL_QUEUE_NAME": BACKFILL_QUEUE,
            "MARKETO_POLL_SCHEDULE": self.config.poll_schedule,
            # The service endpoint the harness registers: the steps mdsync's writes bypass.
            "DYNAMICS_WEBHOOK_NAME": WEBHOOK_NAME,
            "DYNAMICS_SWEEP_SCHEDULE": self.config.sweep_schedule,
            "MDSYNC_METRICS_SCHEDULE": NEVER,
            # Polls run when the harness says; each shows a deletion made before it.
            "MARKETO_DELETES_POLL_SECONDS": "0",
            # No poll runs until the harness says, so a confirmation would come before every
            # echo and cost a read production does not pay: off (the echoes confirm writes).
            "MDSYNC_CONFIRM_SECONDS": "0",
            # The tests count the simulators' calls; the demo runs `mdsync doctor` itself.
            "MDSYNC_STARTUP_CHECKS": "false",
            # The simulators finish a bulk job in moments: ask about it often.
            "MDSYNC_BACKFILL_POLL_SECONDS": "0.5",
            # The live sync sees a backfill's Marketo share at once, and the job does not wait a
            # window for it: nothing else spends the simulators' rate.
            "MDSYNC_BACKFILL_SHARE_CHECK_SECONDS": "0.2",
            "MDSYNC_BACKFILL_SHARE_GRACE_SECONDS": "0",
            # No live batch outlives a moment here: the first range of writes need not wait.
            "MDSYNC_BACKFILL_FENCE_SETTLE_SECONDS": "0",
            # A paused batch comes back soon (tests and the demo resume within seconds).
            "MDSYNC_PAUSE_HOLD_SECONDS": "5",
            # The harness's day begins when it starts, and a test or the bench spends a day's
            # Marketo budget in minutes: no batching window, whatever the hour (its tests and the
            # bench's window workloads turn it on).
            "MDSYNC_BATCH_WINDOW": "false",
            "FUNCTIONS_WORKER_RUNTIME": "python",
            **self.config.extra_settings,
        }

    def start(self, *, prime: bool = True) -> LocalSystem:
        """Start the simulators and the local host on fresh local state; with ``prime``, also
        register the webhooks and set the capture checkpoints (:meth:`prime`)."""
        self.config.workdir.mkdir(parents=True, exist_ok=True)
        # The simulators start empty, as new systems: state from an earlier run belongs elsewhere.
        staging = self.queue_path.with_suffix(".backfill.sqlite3")
        for path in (self.queue_path, self.queue_path.with_suffix(".state.sqlite3"), staging):
            for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                leftover.unlink(missing_ok=True)
        self.stack.start()
        urls = self.stack.urls
        self.dataverse_admin = DataverseAdmin(urls["dataverse"], self.session)
        self.marketo_admin = MarketoAdmin(urls["marketo"], self.session)
        settings = self.settings()
        for name, value in settings.items():
            os.environ[name] = value
        reset_container()
        queue = SqliteQueue(self.queue_path, queue_name="mdsync-notices")
        queue.active_count()  # create the file before the host's pump opens it
        self.backfill_queue = SqliteQueue(self.queue_path, queue_name=BACKFILL_QUEUE)
        self.host = DevHost(
            load_function_app(ROOT / "function_app.py"),
            queue=queue,
            extra_queues={BACKFILL_QUEUE: self.backfill_queue},
            port=self.config.host_port,
            function_keys={},
            host_keys=[HOST_KEY],
            master_key=MASTER_KEY,
            settings_env=settings,
            host_json=self._host_json(),
            state_dir=self.config.workdir / "devhost",
            sign_in=local_sign_in(self.config.operator_password),
        )
        self.host.start()
        self.queue = queue
        if prime:
            self.prime()
        return self

    def prime(self) -> None:
        """Register the webhooks; the first capture runs only set the checkpoints, so changes
        from now on are captured. (A fresh organization needs `mdsync dynamics setup` first.)"""
        self.register_webhooks()
        self.poll()
        self.sweep()

    def _host_json(self) -> Path:
        if self.config.batch_wait is None:
            return ROOT / "host.json"
        document = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
        wait = self.config.batch_wait
        document["extensions"]["serviceBus"]["maxBatchWaitTime"] = f"00:00:{wait:06.3f}"
        path = self.config.workdir / "host.json"
        path.write_text(json.dumps(document, indent=2), encoding="utf-8")
        return path

    def stop(self) -> None:
        if self.host is not None:
            self.host.stop()
        reset_container()
        self.stack.stop()
        self.session.close()

    def __enter__(self) -> LocalSystem:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Empty both simulators, the queue and the state store, and register the webhooks again."""
        self.wait_idle(quiet=True)
        self.stack.dataverse.state.reset()
        self.stack.marketo.state.reset()
        self.stack.entra.state.reset()
        reset_container()
        for message in self.queue.receive(100_000, lock_seconds=1):
            self.queue.complete(message.lock_token)
        with sqlite3.connect(self.queue_path) as db:
            tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
            for table in tables:
                db.execute(f"delete from {table}")  # noqa: S608 - names come from sqlite_master
        state_path = self.queue_path.with_suffix(".state.sqlite3")
        if state_path.exists():
            with sqlite3.connect(state_path) as db:
                tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
                for table in tables:
                    db.execute(f"delete from {table}")  # noqa: S608
        self.register_webhooks()
        self.poll()
        self.sweep()

    def register_webhooks(self) -> None:
        assert self.host is not None
        deps = self.deps
        deps.dataverse.register_webhook(
            WEBHOOK_NAME,
            self.host.function_url("dynamics_webhook"),
            {"x-functions-key": HOST_KEY, "x-mdsync-key": WEBHOOK_SECRET},
            webhook_steps(deps.mapping),
        )
        self.marketo_admin.define_webhook(
            FLOW_STEP_WEBHOOK,
            self.host.function_url("sync_person_to_microsoft"),
            template='{"marketoId": {{lead.Id}}, "email": {{lead.Email Address}}}',
            encoding="json",
            headers={
                "Content-Type": "application/json",
                "x-functions-key": HOST_KEY,
                "x-mdsync-key": FLOW_STEP_SECRET,
            },
            response_mappings={"status": "mdsyncFlowStepStatus", "dynamicsId": "mdsyncFlowStepDynamicsId"},
        )

    def register_change_campaign(self) -> None:
        """The Marketo side of real-time capture, as docs/marketo-setup.md sets it up: a webhook
        to ``marketo_change`` carrying the mapped fields' values, and a trigger campaign calling
        it on "Data Value Changes" of those fields (not from the REST API: mdsync's own writes)
        and on "Person is Created"."""
        assert self.host is not None
        mapped = self.deps.mapping.marketo_names()
        names = {f.name: f.display_name for f in self.deps.marketo.describe_leads()}
        self.marketo_admin.define_webhook(
            CHANGE_WEBHOOK,
            self.host.function_url("marketo_change"),
            template=webhook_template(names, mapped),
            encoding="json",
            headers={
                "Content-Type": "application/json",
                "x-functions-key": HOST_KEY,
                "x-mdsync-key": MARKETO_WEBHOOK_SECRET,
            },
        )
        self.marketo_admin.define_campaign(
            CHANGE_CAMPAIGN, CHANGE_WEBHOOK, changed=sorted(mapped), created=True, source_is_not=[API_SOURCE]
        )

    def unregister_change_campaign(self) -> None:
        """The campaign stays defined but listens to nothing (deactivated)."""
        self.marketo_admin.define_campaign(CHANGE_CAMPAIGN, CHANGE_WEBHOOK, created=True, active=False)

    @contextmanager
    def worker_held(self) -> Iterator[None]:
        """Notices queue up but the worker gets none until the block ends (a backlog)."""
        assert self.host is not None
        self.host.hold_queue(True)
        try:
            yield
        finally:
            self.host.hold_queue(False)

    @contextmanager
    def settings_changed(self, overrides: Mapping[str, str]) -> Iterator[None]:
        """mdsync runs with ``overrides`` on top of its settings inside the block (its clients
        are rebuilt, as on an app restart after a settings change), and as before after it."""
        previous = {name: os.environ.get(name) for name in overrides}
        self._apply(overrides)
        try:
            yield
        finally:
            self._apply(previous)

    def _apply(self, values: Mapping[str, str | None]) -> None:
        self.wait_idle(quiet=True)
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reset_container()

    # --- driving --------------------------------------------------------------------------------

    @property
    def deps(self) -> Container:
        return container()

    def poll(self) -> None:
        assert self.host is not None
        self.host.trigger_timer("marketo_poller")

    def sweep(self) -> None:
        assert self.host is not None
        self.host.trigger_timer("dynamics_sweep")

    def wait_idle(self, timeout: float = PATIENCE, *, quiet: bool = False) -> bool:
        """Until Dataverse delivered its webhooks, Marketo ran its campaigns' webhooks and the
        queue is empty (retries and scheduled messages included)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            delivered = self.dataverse_admin.wait_for_webhooks(
                timeout=min(10.0, max(0.1, deadline - time.monotonic()))
            )
            campaigns = self.marketo_admin.wait_for_campaigns(
                timeout=min(10.0, max(0.1, deadline - time.monotonic()))
            )
            if (
                delivered
                and campaigns
                and self.queue.active_count() == 0
                and self.backfill_queue.active_count() == 0
            ):
                return True
            if self.host is not None:
                self.host.wake()
            time.sleep(0.02)
        if quiet:
            return False
        raise TimeoutError(
            f"not idle after {timeout:.0f}s: {self.queue.active_count()} messages still queued"
        )

    def webhooks_delivered(self, timeout: float = PATIENCE) -> None:
        """Until Dataverse delivered every webhook it queued (their notices are then queued,
        even while the worker is held); TimeoutError if it never does."""
        if not self.dataverse_admin.wait_for_webhooks(timeout=timeout):
            raise TimeoutError(f"Dataverse's webhooks not delivered after {timeout:.0f}s")

    def sync(self, *, poll: bool = True, timeout: float = PATIENCE) -> None:
        """Let every pending change flow: webhooks, then a Marketo poll, until quiet."""
        self.wait_idle(timeout)
        if poll:
            self.poll()
            self.wait_idle(timeout)

    def until(self, check: Callable[[], Any], timeout: float = PATIENCE) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError("condition not met in time")
            time.sleep(0.02)

    def fire_flow_step(self, marketo_id: int) -> dict[str, Any]:
        return self.marketo_admin.fire_webhook(FLOW_STEP_WEBHOOK, marketo_id)


def _with_fields(config: Any) -> Any:
    names = {f.name for f in config.extra_fields}
    extra = tuple(f for f in (*FLOW_STEP_FIELDS, *CUSTOMER_FIELDS) if f.name not in names)
    return replace(config, extra_fields=(*config.extra_fields, *extra))
