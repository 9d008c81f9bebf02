"""Fixtures for the Marketo simulator and client tests: a fresh simulated instance per test,
served over HTTPS, an admin client, and a fake clock shared by the simulator and the client so
that token expiry and the rolling rate window can be tested without waiting."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
import requests

from shared.http import make_session
from shared.marketo.client import MarketoClient
from simulators.marketo import Limits, MarketoSim, MarketoSimConfig, create_app
from simulators.marketo.admin import MarketoAdmin
from simulators.server import ServerThread
from simulators.tls import TlsFiles

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-secret-0123456789"


class FakeClock:
    """Seconds since the epoch that move only when someone sleeps or the test advances them."""

    def __init__(self) -> None:
        self._now = time.time()
        self._lock = threading.Lock()
        self.slept = 0.0

    def time(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
            self.slept += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


@dataclass
class Marketo:
    sim: MarketoSim
    server: ServerThread
    session: requests.Session
    clock: FakeClock | None

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def admin(self) -> MarketoAdmin:
        return MarketoAdmin(self.url, self.session)

    def client(self, **options: Any) -> MarketoClient:
        if self.clock is not None:
            options.setdefault("clock", self.clock.time)
            options.setdefault("sleep", self.clock.sleep)
        return MarketoClient(self.url, CLIENT_ID, CLIENT_SECRET, session=self.session, **options)

    def token(self) -> str:
        response = self.session.get(
            f"{self.url}/identity/oauth/token",
            params={
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            },
            timeout=10,
        )
        return str(response.json()["access_token"])

    def rest(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> requests.Response:
        """A raw REST call with a fresh (or the given) bearer token."""
        headers = dict(kwargs.pop("headers", {}))
        headers.setdefault("Authorization", f"Bearer {token or self.token()}")
        return self.session.request(method, self.url + path, headers=headers, timeout=30, **kwargs)


@pytest.fixture
def session(tls: TlsFiles) -> Iterator[requests.Session]:
    session = make_session(extra_ca_file=tls.ca_file)
    yield session
    session.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def start_marketo(tls: TlsFiles, session: requests.Session) -> Iterator[Callable[..., Marketo]]:
    """``start_marketo(clock=None, **limits_or_config)`` -> a running simulated instance."""
    running: list[ServerThread] = []
    sims: list[MarketoSim] = []

    def start(clock: FakeClock | None = None, **overrides: Any) -> Marketo:
        limit_names = set(Limits.__dataclass_fields__)
        limits = replace(Limits(), **{k: v for k, v in overrides.items() if k in limit_names})
        options: dict[str, Any] = {k: v for k, v in overrides.items() if k not in limit_names}
        if clock:
            options["clock"] = clock.time
        config = MarketoSimConfig(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            limits=limits,
            extra_ca_file=tls.ca_file,
            **options,
        )
        sim = create_app(config)
        sims.append(sim)
        server = ServerThread(sim.app, tls=tls, name="marketo-sim").start()
        running.append(server)
        return Marketo(sim, server, session, clock)

    yield start
    # An open client connection holds up the server's shutdown: close the pool, and collect
    # responses still referenced from caught exceptions' tracebacks (their sockets stay open).
    session.close()
    gc.collect()
    for server in running:
        server.stop()
    for sim in sims:
        sim.close()


@pytest.fixture
def marketo(start_marketo: Callable[..., Marketo]) -> Marketo:
    return start_marketo()


@pytest.fixture
def timed(start_marketo: Callable[..., Marketo], clock: FakeClock) -> Marketo:
    """An instance whose clock (tokens, rate window, quota day) is the test's fake clock."""
    return start_marketo(clock=clock)
