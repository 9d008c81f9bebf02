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
    from azure.core.credentials import TokenCredential

    from shared.dataverse.client import DataverseClient
    from shared.flow_step import SyncPersonToMicrosoft
    from shared.marketo.client import MarketoClient
    from shared.ports import GivenUpStore, NoticeQueue, StateStore
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
    def dataverse_tokens(self) -> TokenCredential:
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

    def _build_queue(self) -> NoticeQueue:
        s = self.settings
        s.require_queue_connection()
        if s.queue_backend is QueueBackend.SQLITE:
            from shared.adapters.sqlite_queue import SqliteQueue

            return SqliteQueue(
                s.sqlite_path, queue_name=s.queue_name, max_delivery_count=s.max_delivery_count
            )
        from shared.adapters.servicebus_queue import ServiceBusQueue

        secret = s.servicebus_connection_string
        return ServiceBusQueue(
            s.queue_name,
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
        from shared.adapters.table_state import TableStateStore

        secret = s.state_connection_string
        return TableStateStore(
            connection_string=secret.get_secret_value() if secret else None,
            endpoint=s.state_table_endpoint,
            table_prefix=s.state_table_prefix,
        )

    def _build_marketo(self) -> MarketoClient:
        s = self.settings
        return make_marketo_client(
            s, self.session, max_calls_per_20s=s.marketo_max_calls_per_20s - s.marketo_flow_step_calls_per_20s
        )

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
    """A Marketo client for the settings; ``options``: timeouts and retry budgets."""
    from shared.marketo.client import MarketoClient

    access = settings.marketo()
    return MarketoClient(
        access.base_url,
        access.client_id,
        access.client_secret,
        session=session,
        max_calls_per_20s=max_calls_per_20s,
        max_concurrency=settings.marketo_max_concurrency,
        **options,
    )


def make_dataverse_client(
    settings: Settings, session: requests.Session, tokens: TokenCredential, **options: Any
) -> DataverseClient:
    """A Dataverse client for the settings; ``options``: timeouts and retry budgets."""
    from shared.dataverse.client import DataverseClient

    return DataverseClient(
        settings.dataverse().api_url,
        tokens,
        session=session,
        max_concurrency=settings.dataverse_max_concurrency,
        **options,
    )


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
