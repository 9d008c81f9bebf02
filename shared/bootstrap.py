"""The composition root: every client, store and use case, built here and nowhere else.

Every trigger in ``functions/`` and every ``mdsync`` command asks the process's
:class:`Container` for what it runs (``container().worker``, ``.marketo_poller``,
``.dynamics_sweep``, ``.flow_step``, ``.doctor()``, ``.queue``, ...) and builds nothing itself.
Each call path gets clients with its own budget (docs/retries.md):

* the background (worker, poller, sweep, CLI commands): :data:`BACKGROUND`;
* the flow step: its own short-budget clients (:class:`~shared.flow_step.TimeBudget`), since
  Marketo abandons the webhook after 30 s; its Marketo client has the share of the rate reserved
  for it, the background's client the rest;
* ``mdsync doctor`` and the start-up checks: :data:`DIAGNOSTIC`, one attempt per request;
* the initial sync (``mdsync backfill``, ``/api/backfill``): :data:`BACKFILL_MARKETO` and
  :data:`BACKFILL_DATAVERSE`, with its own share of each API; its Marketo share is taken from
  the background's only while a job runs (``shared/backfill/share.py``).

Nothing here runs at import time (import time is cold-start time in Azure Functions): the
container is built on the first invocation, and each dependency on first use. Adapter modules
are imported lazily, so the Service Bus SDK is not loaded where the SQLite queue is used.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from shared.config import QueueBackend, Settings, StateBackend, get_settings
from shared.mapping import FieldMapping, load_mapping

if TYPE_CHECKING:
    import requests

    from shared.adapters.table_state import TableStateStore
    from shared.backfill.context import Context as BackfillContext
    from shared.backfill.runner import Backfill
    from shared.backfill.staging import StagingStore
    from shared.capture.dynamics_sweep import DynamicsSweep
    from shared.capture.marketo_poll import MarketoPoller
    from shared.console.actions import ConsoleActions
    from shared.console.capture import WebhookBeat
    from shared.console.pause import PauseSwitch
    from shared.console.reader import StatusReader
    from shared.dataverse.auth import CredentialTokens
    from shared.dataverse.bypass import OwnSteps
    from shared.dataverse.client import DataverseClient
    from shared.doctor import Doctor
    from shared.flow_step import SyncPersonToMicrosoft, TimeBudget
    from shared.marketo.client import MarketoClient
    from shared.pacing import PacingPolicy
    from shared.ports import (
        GivenUpStore,
        NoticeQueue,
        OperationsStore,
        QueueInspector,
        RateBudget,
        StateStore,
        SyncError,
    )
    from shared.retention import Retention
    from shared.sync.activity_log import ActivityLog
    from shared.sync.pacer import Pacer
    from shared.sync.worker import SyncWorker

T = TypeVar("T")


@dataclass(frozen=True)
class CallBudget:
    """One call path's budget: seconds per attempt, and for the retries of one call."""

    timeout: float
    retry_seconds: float


# The worker, the poller, the sweep and the CLI commands: a fault that outlasts the retry budget
# is rescheduled by the worker (or the next timer run) instead of holding the batch.
BACKGROUND = CallBudget(timeout=30.0, retry_seconds=10.0)
# mdsync doctor and the start-up checks: one attempt, 15 s to answer; a fault is reported.
DIAGNOSTIC = CallBudget(timeout=15.0, retry_seconds=0.0)
# The initial sync (mdsync backfill, /api/backfill): bulk calls that take long (an export file,
# 1,000 rows a request); a step that still fails is run again from where it stopped.
BACKFILL_MARKETO = CallBudget(timeout=120.0, retry_seconds=60.0)
BACKFILL_DATAVERSE = CallBudget(timeout=300.0, retry_seconds=120.0)


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
    def retention(self) -> Retention:
        from shared.retention import Retention

        return self._once(
            "retention",
            lambda: Retention(self.state, self.queue, self.settings.sync_log_retention_days),
        )

    @property
    def given_up(self) -> list[GivenUpStore]:
        """Where the sync keeps what it gave up on (``mdsync replay``): the parked notices of
        the state store and the queue's dead letters."""
        return self._once("given_up", self._build_given_up)

    @property
    def marketo(self) -> MarketoClient:
        return self._once("marketo", self._build_marketo)

    @property
    def own_steps(self) -> OwnSteps | None:
        """mdsync's own webhook steps, which its Dataverse writes bypass (one per process);
        None with DYNAMICS_BYPASS_OWN_WEBHOOK=false."""
        from shared.dataverse.bypass import OwnSteps

        settings = self.settings
        if not settings.dynamics_bypass_own_webhook:
            return None
        return self._once("own_steps", lambda: OwnSteps(settings.dynamics_webhook_name))

    @property
    def dataverse_tokens(self) -> CredentialTokens:
        """One credential (and token cache) for every Dataverse client of the process."""
        from shared.dataverse.auth import dataverse_tokens

        return self._once(
            "dataverse_tokens",
            lambda: dataverse_tokens(self.settings.dataverse(), ca_file=self.settings.extra_ca_file),
        )

    @property
    def dataverse(self) -> DataverseClient:
        return self._once("dataverse", lambda: self.dataverse_client(BACKGROUND))

    @property
    def activity_log(self) -> ActivityLog:
        from shared.sync.activity_log import ActivityLog

        return self._once("activity_log", lambda: ActivityLog(self.marketo))

    @property
    def worker(self) -> SyncWorker:
        """Long-lived, so its metadata and activity-type caches outlive one invocation."""
        from shared.backfill.fence import Fence
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
                fence=Fence(self.state),
            ),
        )

    @property
    def pacer(self) -> Pacer | None:
        """The worker's batching window (``shared/sync/pacer.py``); None when it is off."""
        return self._once("pacer", self._build_pacer)

    def _build_pacer(self) -> Pacer | None:
        from shared.sync.pacer import Pacer

        policy = self.pacing_policy()
        return None if policy is None else Pacer(policy, self.operations, self.queue)

    def pacing_policy(self) -> PacingPolicy | None:
        """The batching window's rule as configured; None when it is off."""
        if not self.settings.batch_window:
            return None
        from shared.pacing import PacingPolicy

        budget = self.settings.sync_daily_budget
        # The reserve covers a million changes a day; a smaller quota keeps half for the windows.
        return PacingPolicy(
            float(budget),
            reserve=min(PacingPolicy.reserve, budget / 2),
            max_window=self.settings.batch_window_max_seconds,
        )

    @property
    def marketo_poller(self) -> MarketoPoller:
        """Marketo change capture (the poll timer)."""
        from shared.capture.marketo_poll import MarketoPoller

        s = self.settings
        return self._once(
            "marketo_poller",
            lambda: MarketoPoller(
                self.marketo,
                self.state,
                self.queue,
                self.mapping,
                max_pages=s.marketo_poll_max_pages or None,
                time_budget=s.marketo_poll_max_seconds,
                start_at=s.marketo_poll_start,
                deletes_every=timedelta(seconds=s.marketo_deletes_poll_seconds),
            ),
        )

    @property
    def dynamics_sweep(self) -> DynamicsSweep:
        """Dynamics catch-up capture (the sweep timer)."""
        from shared.capture.dynamics_sweep import DynamicsSweep

        return self._once(
            "dynamics_sweep",
            lambda: DynamicsSweep(
                self.dataverse,
                self.state,
                self.queue,
                self.mapping,
                sync_user_ids=self.settings.dynamics_sync_user_ids,
            ),
        )

    @property
    def flow_step(self) -> SyncPersonToMicrosoft:
        """'Sync Person to Microsoft', with its own short-budget clients (:meth:`build_flow_step`)."""
        return self._once("flow_step", self.build_flow_step)

    def build_flow_step(
        self,
        *,
        settings: Settings | None = None,
        mapping: FieldMapping | None = None,
        budget: TimeBudget | None = None,
    ) -> SyncPersonToMicrosoft:
        """A flow step with Marketo and Dataverse clients of its own, whose timeouts and retry
        budgets fit the webhook's 30 s (the background's clients may retry for longer).

        Its Marketo client has its own limiter with the share of the instance's rate reserved
        for the flow step (MARKETO_FLOW_STEP_CALLS_PER_20S; the background's client gets the
        rest), so the real-time call never queues behind a backlog and together they stay under
        MARKETO_MAX_CALLS_PER_20S. ``settings``, ``mapping``, ``budget``: other than the
        container's (tests)."""
        from shared.flow_step import SyncPersonToMicrosoft, TimeBudget
        from shared.sync.activity_log import ActivityLog

        s = settings or self.settings
        budget = budget or TimeBudget()
        call = CallBudget(budget.attempt_timeout_seconds, budget.retry_seconds)
        marketo = self.marketo_client(
            call,
            settings=s,
            max_calls_per_20s=s.marketo_flow_step_calls_per_20s,
            max_rate_wait_seconds=budget.rate_wait_seconds,
        )
        # The flow step's writes keep their echo: when it runs out of time, the worker writes the
        # person's link fields as it reconciles the new lead's create notice (shared/flow_step.py).
        dataverse = self.dataverse_client(call, settings=s, bypass_own_webhook=False)
        return SyncPersonToMicrosoft(
            marketo,
            dataverse,
            self.state,
            mapping or self.mapping,
            ActivityLog(marketo),
            columns=lambda entity: dataverse.entity_metadata(entity).attributes,
            budget=budget,
        )

    def doctor(self, *, webhook_name: str = "mdsync") -> Doctor:
        """`mdsync doctor` and the start-up checks, with clients that try each request once."""
        from shared.doctor import Doctor

        s = self.settings
        return Doctor(
            self,
            marketo=lambda: self.marketo_client(DIAGNOSTIC, max_calls_per_20s=s.marketo_max_calls_per_20s),
            dataverse=lambda: self.dataverse_client(DIAGNOSTIC),
            webhook_name=webhook_name,
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

    def backfill_command(self, *, owner: str, staging: Path | None = None) -> Backfill:
        """The backfill job's runner for `mdsync backfill`: named ``owner`` (run again after a
        kill, it takes its job back at once), its staging in the SQLite file ``staging`` when
        given, else beside the state store."""
        from shared.adapters.sqlite_staging import SqliteStaging
        from shared.backfill.runner import Backfill

        staging_for = (lambda job_id: SqliteStaging(staging)) if staging is not None else None
        return Backfill(self.backfill_context(staging_for), owner=owner)

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
                pacing=self.pacing_policy(),
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
        """The Table Storage client of the state's tables, the state store's and the console's
        (one connection pool; its ``requests`` count what the process sent)."""
        from shared.adapters.table_state import TableStateStore

        s = self.settings
        secret = s.state_connection_string
        return self._once(
            "table_state",
            lambda: TableStateStore(
                connection_string=secret.get_secret_value() if secret else None,
                endpoint=s.state_table_endpoint,
                table_prefix=s.state_table_prefix,
            ),
        )

    def _build_marketo(self) -> MarketoClient:
        from shared.backfill.share import ShareView

        s = self.settings
        # The background's share of the rate: all but the flow step's, and but the initial
        # sync's while a job holds it (shared/backfill/share.py), asked before each call.
        view = ShareView(self.state, check_seconds=s.backfill_share_check_seconds)
        share = view.share(
            s.marketo_max_calls_per_20s, s.marketo_flow_step_calls_per_20s, s.marketo_backfill_calls_per_20s
        )
        rate = None
        if s.marketo_shared_rate:
            from shared.marketo.budget import StoredCallWindow

            # Every instance's worker and poller together, in the state store they share.
            rate = StoredCallWindow(self.state, "marketo", share)
        return self.marketo_client(BACKGROUND, max_calls_per_20s=share, shared_rate=rate)

    def marketo_client(
        self,
        budget: CallBudget,
        *,
        max_calls_per_20s: int | Callable[[], int],
        settings: Settings | None = None,
        max_rate_wait_seconds: float | None = None,
        max_concurrency: int | None = None,
        shared_rate: RateBudget | None = None,
    ) -> MarketoClient:
        """A Marketo client with a call path's budget and its share of the instance's rate
        (``shared_rate``: that share as one budget for every instance)."""
        from shared.marketo.client import MarketoClient

        s = settings or self.settings
        access = s.marketo()
        return MarketoClient(
            access.base_url,
            access.client_id,
            access.client_secret,
            session=self.session,
            max_calls_per_20s=max_calls_per_20s,
            max_concurrency=max_concurrency or s.marketo_max_concurrency,
            timeout=budget.timeout,
            retry_budget_seconds=budget.retry_seconds,
            max_rate_wait_seconds=max_rate_wait_seconds,
            budget=shared_rate,
        )

    def dataverse_client(
        self,
        budget: CallBudget,
        *,
        settings: Settings | None = None,
        max_concurrency: int | None = None,
        bypass_own_webhook: bool = True,
    ) -> DataverseClient:
        """Every Dataverse client shares the process's credential (one token cache) and, unless
        ``bypass_own_webhook`` is False, the steps of mdsync's webhook its writes bypass."""
        from shared.dataverse.client import DataverseClient

        s = settings or self.settings
        return DataverseClient(
            s.dataverse().api_url,
            self.dataverse_tokens,
            session=self.session,
            max_concurrency=max_concurrency or s.dataverse_max_concurrency,
            timeout=budget.timeout,
            retry_budget_seconds=budget.retry_seconds,
            own_steps=self.own_steps if bypass_own_webhook else None,
        )

    def backfill_context(self, staging_for: Callable[[str], StagingStore] | None = None) -> BackfillContext:
        """What the initial sync runs with: clients of its own, with its own share of each API
        (MARKETO_BACKFILL_CALLS_PER_20S, reserved by its calls and released when it ends;
        DATAVERSE_BACKFILL_CONCURRENCY), so live changes keep theirs; its staging beside the
        state store unless ``staging_for`` says otherwise."""
        from shared.backfill.context import Context
        from shared.backfill.fence import Fence
        from shared.backfill.share import ShareGate

        s = self.settings
        # Its share is reserved by its own calls, and given back when it ends (share.py).
        gate = ShareGate(
            self.state, check_seconds=s.backfill_share_check_seconds, grace=s.backfill_share_grace_seconds
        )
        marketo = self.marketo_client(
            BACKFILL_MARKETO,
            max_calls_per_20s=s.marketo_backfill_calls_per_20s,
            max_concurrency=min(2, s.marketo_max_concurrency),
            shared_rate=gate,
        )
        dataverse = self.dataverse_client(
            BACKFILL_DATAVERSE, max_concurrency=s.dataverse_backfill_concurrency
        )
        return Context(
            marketo,
            dataverse,
            self.state,
            staging_for or self.backfill_staging,
            self.mapping,
            queue=self.queue,
            poll_seconds=s.backfill_poll_seconds,
            share=gate,
            fence=Fence(self.state),
            fence_settle_seconds=s.backfill_fence_settle_seconds,
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
        # A snapshot: the start-up checks may still be building a dependency on their thread.
        with self._lock:
            built = list(self._built.values())
            self._built.clear()
        for item in built:
            for each in item if isinstance(item, list) else [item]:
                close = getattr(each, "close", None)
                if callable(close):
                    close()


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
