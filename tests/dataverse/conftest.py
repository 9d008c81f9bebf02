"""Fixtures for the Dataverse client and simulator tests: real HTTPS servers on localhost.

The Entra ID and Dataverse simulators run once per session; every test starts from a reset
(rows, customisations, limits, faults, counts, webhook jobs). The webhook receiver is a tiny
local HTTPS app that records what it is sent and answers the statuses a test queues.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.config import DataverseAccess, DataverseCredential
from shared.dataverse.auth import CredentialTokens, dataverse_tokens
from shared.dataverse.client import DataverseClient
from shared.http import make_session
from simulators.dataverse import DataverseSim, DataverseSimConfig, create_app
from simulators.dataverse.admin import DataverseAdmin
from simulators.entra import (
    DEFAULT_APP_USER_ID,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_TENANT,
    EntraAdmin,
    EntraSim,
)
from simulators.entra import create_app as create_entra
from simulators.server import ServerThread
from simulators.tls import TlsFiles

APP_USER = DEFAULT_APP_USER_ID
HUMAN = "Jane Doe"


@dataclass
class Sims:
    entra: EntraSim
    dataverse: DataverseSim
    entra_url: str
    url: str

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/data/v9.2"

    @property
    def authority(self) -> str:
        return f"{self.entra_url}/{DEFAULT_TENANT}"


@pytest.fixture(scope="session")
def sims(tls: TlsFiles) -> Iterator[Sims]:
    entra = create_entra()
    dataverse = create_app(DataverseSimConfig(webhook_ca_file=tls.ca_file, webhook_timeout=5), entra)
    with (
        ServerThread(entra.app, tls=tls, name="entra") as e,
        ServerThread(dataverse.app, tls=tls, name="dataverse") as d,
    ):
        yield Sims(entra, dataverse, e.url, d.url)
    dataverse.close()


@pytest.fixture(scope="session")
def http(tls: TlsFiles) -> Iterator[requests.Session]:
    session = make_session(extra_ca_file=tls.ca_file)
    yield session
    session.close()
    # urllib3 2 closes a pool's connections only when the pool is garbage collected, and a
    # traceback kept by pytest.raises can keep one alive; uvicorn would then wait 10 s on stop.
    gc.collect()


@pytest.fixture
def admin(sims: Sims, http: requests.Session) -> DataverseAdmin:
    admin = DataverseAdmin(sims.url, http)
    admin.reset()
    EntraAdmin(sims.entra_url, http).reset()
    return admin


@pytest.fixture
def entra_admin(sims: Sims, http: requests.Session, admin: DataverseAdmin) -> EntraAdmin:
    return EntraAdmin(sims.entra_url, http)


def client_secret_tokens(
    sims: Sims, tls: TlsFiles, *, secret: str = DEFAULT_CLIENT_SECRET, org_url: str | None = None
) -> CredentialTokens:
    """azure-identity's ClientSecretCredential against the Entra ID simulator, as mdsync builds it."""
    access = DataverseAccess(
        url=org_url or sims.url,
        credential=DataverseCredential.CLIENT_SECRET,
        authority_host=sims.entra_url,
        tenant_id=DEFAULT_TENANT,
        client_id=DEFAULT_CLIENT_ID,
        client_secret=secret,
    )
    return dataverse_tokens(access, ca_file=tls.ca_file)


@pytest.fixture
def tokens(sims: Sims, tls: TlsFiles, admin: DataverseAdmin) -> CredentialTokens:
    return client_secret_tokens(sims, tls)


@pytest.fixture
def sleeps() -> list[float]:
    """What the client asked to sleep: retries are checked without waiting for them."""
    return []


@pytest.fixture
def client(
    sims: Sims, http: requests.Session, tokens: CredentialTokens, sleeps: list[float]
) -> DataverseClient:
    return DataverseClient(sims.api_url, tokens, session=http, retry_budget_seconds=10.0, sleep=sleeps.append)


def lead(**extra: Any) -> dict[str, Any]:
    return {
        "firstname": "Ana",
        "lastname": "Lopez",
        "subject": "Web lead",
        "emailaddress1": "ana@fabrikam.example",
        **extra,
    }


# --- webhook receiver ------------------------------------------------------------------------


@dataclass
class Delivery:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    deliveries: list[Delivery] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, *statuses: int) -> None:
        with self.lock:
            self.statuses.extend(statuses)

    def take(self) -> list[Delivery]:
        with self.lock:
            return list(self.deliveries)

    def clear(self) -> None:
        with self.lock:
            self.deliveries.clear()
            self.statuses.clear()


@pytest.fixture(scope="session")
def _receiver_server(tls: TlsFiles) -> Iterator[Receiver]:
    holder: list[Receiver] = []

    async def hook(request: Request) -> Response:
        receiver = holder[0]
        body = await request.body()
        with receiver.lock:
            receiver.deliveries.append(
                Delivery(
                    request.url.path,
                    dict(request.query_params),
                    {k.lower(): v for k, v in request.headers.items()},
                    body,
                )
            )
            status = receiver.statuses.pop(0) if receiver.statuses else 200
        # Connection: close, so no keep-alive connection outlives the session's receiver.
        return Response(status_code=status, headers={"Connection": "close"})

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    with ServerThread(app, tls=tls, name="receiver") as server:
        holder.append(Receiver(f"{server.url}/hook"))
        yield holder[0]


@pytest.fixture
def receiver(_receiver_server: Receiver, admin: DataverseAdmin) -> Receiver:
    _receiver_server.clear()
    return _receiver_server
