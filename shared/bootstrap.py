"""Wiring, once per process: settings -> mapping, queue, state store, Marketo and Dataverse clients.

Nothing here runs at import time (import time is cold-start time in Azure Functions): the
container is built on the first invocation, and each dependency on first use. Adapter modules
are imported lazily, so the Service Bus SDK is not loaded where the SQLite queue is used.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from shared.config import QueueBackend, Settings, StateBackend, get_settings
from shared.mapping import FieldMapping, load_mapping

if TYPE_CHECKING:
    import requests

    from shared.adapters.table_state import TableStateStore
    from shared.backfill.context import Context as BackfillContext
    from shared.backfill.runner import Backfill
    from shared.backfill.staging import StagingStore
    from shared.console.actions import ConsoleActions
    from shared.console.capture import WebhookBeat
    from shared.console.pause import PauseSwitch
    from shared.console.reader import StatusReader
    from shared.dataverse.auth import TokenProvider
    from shared.dataverse.client import DataverseClient
    from shared.flow_step import SyncPersonToMicrosoft
    from shared.marketo.client import MarketoClient
    from shared.ports import (
        GivenUpStore,
        NoticeQueue,
        OperationsStore,
        QueueInspector,
        StateStore,
        SyncError,
    )
    from shared.sync.activity_log import ActivityLog
    from shared.sync.worker import SyncWorker

T = TypeVar("T")


class Container:
    """Every dependency the functions need, built lazily and shared by all invocations."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.RLock()
        self._built: dict[str, object] = {}

    def _once(self, name: str, build: Callable[[], T]) -> T:
        with self._lock:
            if name not in self._built:
                self._built[name] = build()
            return self._built[name]  # type: ignore[return-value]

    @property
    def mapping(self) -> FieldMapping:
        return self._once("mapping", lambda: load_mapping(self.settings.field_mapping_file))

    @property
    def session(self) -> requests.Session:
        from shared.http import make_session

        return self._once("session", lambda: make_session(extra_ca_file=self.settings.extra_ca_file))

    @property
    def queue(self) -> NoticeQueue:
        return self._once("queue", self._build_queue)

    @property
    def state(self) -> StateStore:
        return self._once("state", self._build_state)

    @property
    def given_up(self) -> list[GivenUpStore]:
        """Where the sync keeps what it gave up on (``mdsync replay``): the parked notices of
        the state store and the queue's dead letters."""
        return self._once("given_up", self._build_given_up)

    @property
    def marketo(self) -> MarketoClient:
        return self._once("marketo", self._build_marketo)

    @property
    def dataverse_tokens(self) -> TokenProvider:
        """One credential (and token cache) for every Dataverse client of the process."""
        from shared.dataverse.auth import dataverse_tokens

        return self._once(
            "dataverse_tokens",
            lambda: dataverse_tokens(self.settings.dataverse(), ca_file=self.settings.extra_ca_file),
        )

    @property
    def dataverse(self) -> DataverseClient:
        return self._once(
            "dataverse", lambda: make_dataverse_client(self.settings, self.session, self.dataverse_tokens)
        )

    @property
    def activity_log(self) -> ActivityLog:
        from shared.sync.activity_log import ActivityLog

        return self._once("activity_log", lambda: ActivityLog(self.marketo))

    @property
    def worker(self) -> SyncWorker:
        """Long-lived, so its metadata and activity-type caches outlive one invocation."""
        from shared.sync.worker import SyncWorker

        return self._once(
            "worker",
            lambda: SyncWorker(
                self.marketo,
                self.dataverse,
                self.state,
                self.queue,
                self.mapping,
                activity_log=self.activity_log,
                max_attempts=self.settings.max_attempts,
                base_delay_seconds=self.settings.retry_base_seconds,
                max_delay_seconds=self.settings.retry_max_seconds,
                # A vanished person's deletion is confirmed once the poller read the deletions.
                vanished_retry_seconds=float(self.settings.marketo_deletes_poll_seconds),
                confirm_seconds=float(self.settings.confirm_seconds),
                operations=self.operations,
                pause=self.pause,
            ),
        )

    @property
    def flow_step(self) -> SyncPersonToMicrosoft:
        """With its own short-budget clients: Marketo gives up on a webhook after 30 s."""
        from shared.flow_step import build_flow_step

        return self._once(
            "flow_step",
            lambda: build_flow_step(
                self.settings, self.session, self.state, self.mapping, tokens=self.dataverse_tokens
            ),
        )

    @property
    def backfill_queue(self) -> NoticeQueue:
        """The backfill's own queue (BACKFILL_QUEUE_NAME): a message per step of the job."""
        return self._once("backfill_queue", lambda: self._build_queue(self.settings.backfill_queue_name))

    @property
    def backfill(self) -> Backfill:
        """The backfill job's runner in the function app (its staging beside the state store)."""
        from shared.backfill.runner import Backfill

        lease = self.settings.backfill_step_seconds + 60.0
        return self._once("backfill", lambda: Backfill(self.backfill_context(), lease_seconds=lease))

    # --- the operator console -------------------------------------------------------------------

    @property
    def operations(self) -> OperationsStore:
        """The console's tallies, errors and audit trail, beside the state store."""
        return self._once("operations", self._build_operations)

    @property
    def pause(self) -> PauseSwitch:
        from shared.console.pause import PauseSwitch

        return self._once(
            "pause", lambda: PauseSwitch(self.state, hold_seconds=float(self.settings.pause_hold_seconds))
        )

    @property
    def queue_inspector(self) -> QueueInspector:
        return self._once("queue_inspector", self._build_queue_inspector)

    @property
    def webhook_beat(self) -> WebhookBeat:
        from shared.console.capture import WebhookBeat

        return self._once("webhook_beat", WebhookBeat)

    @property
    def status_reader(self) -> StatusReader:
        from shared.backfill.status import console_progress
        from shared.console.progress import read_progress
        from shared.console.reader import StatusReader

        s = self.settings
        return self._once(
            "status_reader",
            lambda: StatusReader(
                state=self.state,
                operations=self.operations,
                queue=self.queue_inspector,
                pause=self.pause,
                progress=lambda: console_progress(self.state) or read_progress(self.state),
                marketo_daily_quota=s.marketo_daily_quota,
                marketo_window_limit=s.marketo_max_calls_per_20s - s.marketo_flow_step_calls_per_20s,
            ),
        )

    @property
    def console_actions(self) -> ConsoleActions:
        from shared.console.actions import ConsoleActions

        return self._once(
            "console_actions",
            lambda: ConsoleActions(
                operations=self.operations,
                queue=self.queue,
                pause_switch=self.pause,
                given_up=self.given_up,
            ),
        )

    def dead_letter_errors(self, max_count: int) -> list[SyncError]:
        """The queue's dead letters as error-list records (read live, not stored)."""
        return self.console_actions.dead_letters(max_count)

    def _build_operations(self) -> OperationsStore:
        s = self.settings
        s.require_state_connection()
        if s.state_backend is StateBackend.SQLITE:
            from shared.adapters.sqlite_operations import SqliteOperationsStore

            return SqliteOperationsStore(s.sqlite_path.with_suffix(".state.sqlite3"))
        from shared.adapters.table_operations import TableOperationsStore

        return TableOperationsStore(self._table_state())

    def _build_queue_inspector(self) -> QueueInspector:
        from shared.ports import QueueInspector

        queue = self.queue
        if isinstance(queue, QueueInspector):
            return queue  # the embedded queue counts itself
        from shared.adapters.servicebus_inspector import ServiceBusInspector

        s = self.settings
        secret = s.servicebus_connection_string
        return ServiceBusInspector(
            s.queue_name,
            connection_string=secret.get_secret_value() if secret else None,
            fully_qualified_namespace=s.servicebus_namespace,
        )

    def _build_queue(self, name: str | None = None) -> NoticeQueue:
        s = self.settings
        s.require_queue_connection()
        if s.queue_backend is QueueBackend.SQLITE:
            from shared.adapters.sqlite_queue import SqliteQueue

            return SqliteQueue(
                s.sqlite_path, queue_name=name or s.queue_name, max_delivery_count=s.max_delivery_count
            )
        from shared.adapters.servicebus_queue import ServiceBusQueue

        secret = s.servicebus_connection_string
        return ServiceBusQueue(
            name or s.queue_name,
            connection_string=secret.get_secret_value() if secret else None,
            fully_qualified_namespace=s.servicebus_namespace,
        )

    def _build_given_up(self) -> list[GivenUpStore]:
        from shared.replay import ParkedNotices

        s = self.settings
        queue = self.queue
        dead: GivenUpStore
        if s.queue_backend is QueueBackend.SQLITE:
            from shared.adapters.sqlite_queue import LocalDeadLetters, SqliteQueue

            assert isinstance(queue, SqliteQueue)
            dead = LocalDeadLetters(queue)
        else:
            from shared.adapters.servicebus_dead_letters import ServiceBusDeadLetters

            secret = s.servicebus_connection_string
            dead = ServiceBusDeadLetters(
                s.queue_name,
                connection_string=secret.get_secret_value() if secret else None,
                fully_qualified_namespace=s.servicebus_namespace,
            )
        return [ParkedNotices(self.state), dead]

    def _build_state(self) -> StateStore:
        s = self.settings
        s.require_state_connection()
        if s.state_backend is StateBackend.SQLITE:
            from shared.adapters.sqlite_state import SqliteStateStore

            return SqliteStateStore(s.sqlite_path.with_suffix(".state.sqlite3"))
        return self._table_state()

    def _table_state(self) -> TableStateStore:
        """A Table Storage client for the state's tables (the state store's, or the console's)."""
        from shared.adapters.table_state import TableStateStore

        s = self.settings
        secret = s.state_connection_string
        return TableStateStore(
            connection_string=secret.get_secret_value() if secret else None,
            endpoint=s.state_table_endpoint,
            table_prefix=s.state_table_prefix,
        )

    def _build_marketo(self) -> MarketoClient:
        s = self.settings
        share = (
            s.marketo_max_calls_per_20s - s.marketo_flow_step_calls_per_20s - s.marketo_backfill_calls_per_20s
        )
        return make_marketo_client(s, self.session, max_calls_per_20s=share)

    def backfill_context(self, staging_for: Callable[[str], StagingStore] | None = None) -> BackfillContext:
        """What the initial sync runs with: clients of its own, with its own share of each API
        (MARKETO_BACKFILL_CALLS_PER_20S, DATAVERSE_BACKFILL_CONCURRENCY), so live changes keep
        theirs; its staging beside the state store unless ``staging_for`` says otherwise."""
        from shared.backfill.context import Context

        s = self.settings
        marketo = make_marketo_client(
            s,
            self.session,
            max_calls_per_20s=s.marketo_backfill_calls_per_20s,
            max_concurrency=min(2, s.marketo_max_concurrency),
            timeout=120.0,
            retry_budget_seconds=60.0,
        )
        dataverse = make_dataverse_client(
            s,
            self.session,
            self.dataverse_tokens,
            max_concurrency=s.dataverse_backfill_concurrency,
            timeout=300.0,
            retry_budget_seconds=120.0,
        )
        return Context(
            marketo,
            dataverse,
            self.state,
            staging_for or self.backfill_staging,
            self.mapping,
            queue=self.queue,
            poll_seconds=s.backfill_poll_seconds,
        )

    def backfill_staging(self, job_id: str) -> StagingStore:
        """The job's staging beside the state store: a SQLite file next to the local state, or a
        table of the job's own in the state store's account (durable between steps, whichever
        instance runs them)."""
        s = self.settings
        state = self.state
        if s.state_backend is StateBackend.SQLITE:
            from shared.adapters.sqlite_staging import SqliteStaging

            return SqliteStaging(s.sqlite_path.with_suffix(".backfill.sqlite3"))
        from shared.adapters.table_staging import TableStaging
        from shared.adapters.table_state import TableStateStore

        assert isinstance(state, TableStateStore)
        return TableStaging(state.service(), f"{s.state_table_prefix}stg{job_id}")

    def app_started(self) -> None:
        """Called by every function: the first call of a process starts the start-up checks."""
        from shared.startup import check_in_background

        check_in_background(self)

    def verify_instance(self) -> None:
        """Refuse state that belongs to another Marketo instance or Dataverse organization
        (shared/instance.py); once per process. Functions that follow checkpoints or links
        call it before they do."""
        from shared.instance import Instance, check_binding

        with self._lock:
            if "instance" in self._built:
                return
        current = Instance.of(self.settings.marketo().base_url, self.dataverse.organization_id())
        check_binding(self.state, current)
        with self._lock:
            self._built["instance"] = current

    def close(self) -> None:
        for item in self._built.values():
            for each in item if isinstance(item, list) else [item]:
                close = getattr(each, "close", None)
                if callable(close):
                    close()
        self._built.clear()


def make_marketo_client(
    settings: Settings, session: requests.Session, *, max_calls_per_20s: int, **options: Any
) -> MarketoClient:
    """A Marketo client for the settings; ``options``: timeouts, retry budgets, concurrency."""
    from shared.marketo.client import MarketoClient

    access = settings.marketo()
    options.setdefault("max_concurrency", settings.marketo_max_concurrency)
    return MarketoClient(
        access.base_url,
        access.client_id,
        access.client_secret,
        session=session,
        max_calls_per_20s=max_calls_per_20s,
        **options,
    )


def make_dataverse_client(
    settings: Settings, session: requests.Session, tokens: TokenProvider, **options: Any
) -> DataverseClient:
    """A Dataverse client for the settings; ``options``: timeouts, retry budgets, concurrency."""
    from shared.dataverse.client import DataverseClient

    options.setdefault("max_concurrency", settings.dataverse_max_concurrency)
    return DataverseClient(settings.dataverse().api_url, tokens, session=session, **options)


_container: Container | None = None
_container_lock = threading.Lock()


def container() -> Container:
    """The process-wide container, built from the settings on first use."""
    global _container  # noqa: PLW0603 - one container per process is the point
    with _container_lock:
        if _container is None:
            from shared import telemetry

            _container = Container(get_settings())
            telemetry.configure_from_environment()
        return _container


def reset_container() -> None:
    """Forget the container and the settings (tests and the local host change the environment)."""
    global _container  # noqa: PLW0603
    from shared import startup

    with _container_lock:
        if _container is not None:
            _container.close()
        _container = None
        get_settings.cache_clear()
        startup.forget()
