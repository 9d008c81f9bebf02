"""Fixtures for the change-capture tests: the real functions against their own simulators.

These tests call the functions registered in ``function_app.py`` (``dynamics_webhook``,
``marketo_poller``, ``dynamics_sweep``) directly, with ``azure.functions`` request and timer
objects, so they can look at the queue before any worker consumes it. They therefore use a
simulator stack of their own (no host, no worker) and point the app's settings at it and at a
SQLite queue and state store in a temporary directory (``isolated_app``); the settings and the
container are restored afterwards, so the session's LocalSystem (used by the end-to-end tests)
is untouched.

What Dataverse sends is captured by a tiny HTTPS receiver (the "tap") registered as a webhook with
the same steps mdsync registers; its deliveries are fed to the function byte for byte.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mdsync.harness import PATIENCE
from shared.adapters.sqlite_queue import SqliteQueue
from shared.adapters.sqlite_state import SqliteStateStore
from shared.bootstrap import Container, container, reset_container
from shared.capture.registration import webhook_steps
from shared.errors import ServiceUnavailableError
from shared.http import make_session
from shared.notices import Notice
from shared.ports import Checkpoint, ReceivedMessage
from simulators.dataverse.admin import DataverseAdmin
from simulators.marketo.admin import MarketoAdmin
from simulators.server import ServerThread
from simulators.stack import WEBHOOK_SECRET, SimulatorStack, StackConfig
from simulators.tls import TlsFiles

NEVER = "0 0 0 1 1 *"
HUMAN = "Jane Doe"
TAP = "capture-tap"


# --- the webhook tap -------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def context(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class Tap:
    url: str
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> list[Delivery]:
        with self.lock:
            taken, self.deliveries = self.deliveries, []
        return taken


@pytest.fixture(scope="session")
def tap(tls: TlsFiles) -> Iterator[Tap]:
    holder: list[Tap] = []

    async def hook(request: Request) -> Response:
        body = await request.body()
        with holder[0].lock:
            holder[0].deliveries.append(Delivery({k.lower(): v for k, v in request.headers.items()}, body))
        return Response(status_code=200, headers={"Connection": "close"})

    app = Starlette(routes=[Route("/tap", hook, methods=["POST"])])
    with ServerThread(app, tls=tls, name="capture-tap") as server:
        holder.append(Tap(f"{server.url}/tap"))
        yield holder[0]


# --- simulators and the app pointed at them -------------------------------------------------------


@pytest.fixture(scope="session")
def capture_stack(tls: TlsFiles) -> Iterator[SimulatorStack]:
    stack = SimulatorStack(StackConfig(), tls=tls)
    with stack:
        yield stack
    stack.dataverse.close()


@dataclass
class App:
    """The function app's dependencies, pointed at ``stack`` and a private SQLite queue/state."""

    deps: Container
    stack: SimulatorStack
    dataverse_admin: DataverseAdmin
    marketo_admin: MarketoAdmin
    tap: Tap

    @property
    def queue(self) -> SqliteQueue:
        queue = self.deps.queue
        assert isinstance(queue, SqliteQueue)
        return queue

    def queued(self) -> list[ReceivedMessage]:
        """Every queued notice, taken off the queue (nothing else consumes it here)."""
        received = self.queue.receive(100_000, lock_seconds=300)
        for message in received:
            self.queue.complete(message.lock_token)
        return received

    def notices(self) -> list[Notice]:
        return [r.notice for r in self.queued()]

    def register_tap(self) -> None:
        self.deps.dataverse.register_webhook(
            TAP, self.tap.url, {"x-mdsync-key": WEBHOOK_SECRET}, webhook_steps(self.deps.mapping)
        )

    def deliveries(self, expected: int) -> list[Delivery]:
        assert self.dataverse_admin.wait_for_webhooks(PATIENCE)
        taken = self.tap.take()
        assert len(taken) == expected, [d.headers.get("x-ms-dynamics-request-name") for d in taken]
        return taken


def app_settings(stack: SimulatorStack, workdir: Path) -> dict[str, str]:
    return {
        **stack.settings(),
        "MDSYNC_LOCAL_SETTINGS": str(workdir / "no-local-settings.json"),
        "MDSYNC_QUEUE_BACKEND": "sqlite",
        "MDSYNC_STATE_BACKEND": "sqlite",
        "MDSYNC_SQLITE_PATH": str(workdir / "capture.sqlite3"),
        "SERVICEBUS_QUEUE_NAME": "capture-notices",
        "MARKETO_POLL_SCHEDULE": NEVER,
        "DYNAMICS_SWEEP_SCHEDULE": NEVER,
        "DYNAMICS_WEBHOOK_HEADER": "x-mdsync-key",
    }


@contextmanager
def isolated_app(stack: SimulatorStack, tap: Tap, workdir: Path, **overrides: str) -> Iterator[App]:
    """Point ``container()`` at ``stack`` and a fresh SQLite queue/state in ``workdir``; restore
    the environment and forget that container afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    stack.dataverse.state.reset()
    stack.marketo.state.reset()
    session = make_session(extra_ca_file=stack.tls.ca_file)
    with pytest.MonkeyPatch.context() as env:
        for name, value in {**app_settings(stack, workdir), **overrides}.items():
            env.setenv(name, value)
        reset_container()
        try:
            yield App(
                container(),
                stack,
                DataverseAdmin(stack.urls["dataverse"], session),
                MarketoAdmin(stack.urls["marketo"], session),
                tap,
            )
        finally:
            reset_container()
            session.close()
    tap.take()


@pytest.fixture
def app(capture_stack: SimulatorStack, tap: Tap, tmp_path: Path) -> Iterator[App]:
    with isolated_app(capture_stack, tap, tmp_path / "app") as isolated:
        yield isolated


# --- real adapters that let a test watch (or break) the checkpoint discipline -----------------------


class CountingState(SqliteStateStore):
    """The real SQLite state store; counts checkpoint writes and can crash on the next ones."""

    def __init__(self, path: Path, *, crashes: int = 0) -> None:
        super().__init__(path)
        self.writes = 0
        self.crashes = crashes

    def put_checkpoint(self, name: str, value: str, *, etag: str | None) -> Checkpoint:
        self.writes += 1
        if etag is not None and self.crashes:
            self.crashes -= 1
            raise RuntimeError("the process died before the checkpoint was written")
        return super().put_checkpoint(name, value, etag=etag)


class RecordingQueue(SqliteQueue):
    """The real SQLite queue; remembers the dedup ids of each send, and can fail one send."""

    def __init__(self, path: Path, *, fail_on_send: int | None = None) -> None:
        super().__init__(path, queue_name="poller-test")
        self.sent: list[str] = []
        self.sends = 0
        self.fail_on_send = fail_on_send

    def send(self, notices: Sequence[Notice]) -> None:
        self.sends += 1
        if self.sends == self.fail_on_send:
            raise ServiceUnavailableError("queue unavailable", service="queue")
        super().send(notices)
        self.sent += [n.dedup_id for n in notices]

    def drain(self) -> list[Notice]:
        received = self.receive(100_000, lock_seconds=300)
        for message in received:
            self.complete(message.lock_token)
        return [r.notice for r in received]


# --- azure.functions inputs ------------------------------------------------------------------------


def webhook_request(
    body: bytes, headers: dict[str, str] | None = None, *, url: str = "/api/dynamics/webhook"
) -> func.HttpRequest:
    return func.HttpRequest(method="POST", url=url, headers=headers or {}, params={}, body=body)


def request_from(delivery: Delivery, **header_changes: str | None) -> func.HttpRequest:
    """The request the Functions host would build from what Dataverse sent."""
    headers = dict(delivery.headers)
    for name, value in header_changes.items():
        key = name.replace("_", "-")
        if value is None:
            headers.pop(key, None)
        else:
            headers[key] = value
    return webhook_request(delivery.body, headers)


def timer() -> TimerRequest:
    return TimerRequest(past_due=False)


def response_json(response: func.HttpResponse) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(response.get_body() or b"{}")
    return data


def utc_now() -> datetime:
    return datetime.now(UTC)
