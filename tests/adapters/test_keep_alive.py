"""The Table store's transport never sends a request on a connection its server is closing.

A local HTTP/1.1 server stands in for Azurite's keep-alive behaviour: it advertises
``Keep-Alive: timeout=5`` and, when told to, resets (RST, no answer) any request that arrives on
a connection it has already answered on, as a server does that closes an idle connection just as
a request arrives on it. The pool's clock is moved by hand: no test waits for time to pass.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest

from shared.adapters import _keep_alive
from shared.adapters._keep_alive import FreshConnectionAdapter, advertised_timeout, fresh_connection_transport
from shared.adapters.table_state import TableStateStore


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    keep_alive: str | None = "timeout=5"
    reset_reused = False
    ports: list[int]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.answered = 0

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if self.answered and self.server.reset_reused:
            # Close with unread data and SO_LINGER 0: the client sees a reset, no answer.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        self.rfile.read(length)
        self.server.ports.append(self.client_address[1])
        body = b"{}"
        self.send_response(202 if self.command == "POST" else 200)
        self.send_header("Content-Length", str(len(body)))
        if self.server.keep_alive is not None:
            self.send_header("Keep-Alive", self.server.keep_alive)
        self.end_headers()
        self.wfile.write(body)
        self.answered += 1

    do_GET = _answer
    do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.ports = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    fake = _Clock()
    monkeypatch.setattr(_keep_alive._FreshPool, "clock", staticmethod(fake))
    return fake


def _url(server: _Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/devstoreaccount1/$batch"


def _session(adapter: requests.adapters.HTTPAdapter) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.mount("http://", adapter)
    return session


def test_the_header_s_timeout_is_read() -> None:
    assert advertised_timeout("timeout=5") == 5.0
    assert advertised_timeout("max=100, timeout=2.5") == 2.5
    assert advertised_timeout("max=100") is None
    assert advertised_timeout(None) is None


def test_a_post_on_a_connection_the_server_is_closing_is_lost_with_plain_pooling(server: _Server) -> None:
    """The failure this transport prevents, reproduced with requests' own adapter."""
    session = _session(requests.adapters.HTTPAdapter(max_retries=0))
    assert session.post(_url(server), data=b"x").status_code == 202
    server.reset_reused = True
    with pytest.raises(requests.ConnectionError):
        session.post(_url(server), data=b"x")


def test_a_connection_idle_half_the_advertised_timeout_is_not_reused(server: _Server, clock: _Clock) -> None:
    session = _session(FreshConnectionAdapter())
    assert session.post(_url(server), data=b"x").status_code == 202
    server.reset_reused = True  # the server is closing what it has answered on
    clock.now += 2.5
    assert session.post(_url(server), data=b"x").status_code == 202
    assert len(set(server.ports)) == 2  # a fresh connection


def test_a_recently_used_connection_is_reused(server: _Server, clock: _Clock) -> None:
    session = _session(FreshConnectionAdapter())
    for _ in range(3):
        assert session.post(_url(server), data=b"x").status_code == 202
        clock.now += 2.4
    assert len(set(server.ports)) == 1


def test_without_the_header_pooling_is_unchanged(server: _Server, clock: _Clock) -> None:
    server.keep_alive = None
    session = _session(FreshConnectionAdapter())
    for _ in range(3):
        assert session.post(_url(server), data=b"x").status_code == 202
        clock.now += 3600
    assert len(set(server.ports)) == 1


def test_azure_core_s_transport_on_it_sends_the_post_on_a_fresh_connection(
    server: _Server, clock: _Clock
) -> None:
    with fresh_connection_transport() as transport:
        assert isinstance(transport, RequestsTransport)
        assert transport.session is not None
        transport.session.trust_env = False
        assert transport.send(HttpRequest("POST", _url(server), content=b"x")).status_code == 202
        server.reset_reused = True
        clock.now += 3
        assert transport.send(HttpRequest("POST", _url(server), content=b"x")).status_code == 202
    assert len(set(server.ports)) == 2


def test_the_table_store_sends_through_it_unless_given_a_transport() -> None:
    store = TableStateStore(connection_string="UseDevelopmentStorage=true", read_timeout=7)
    given = RequestsTransport()
    other = TableStateStore(connection_string="UseDevelopmentStorage=true", transport=given)
    try:
        transport = store.service()._client._client._pipeline._transport
        assert isinstance(transport, RequestsTransport)
        assert transport.session is not None
        assert isinstance(transport.session.get_adapter("http://x"), FreshConnectionAdapter)
        assert transport.connection_config.read_timeout == 7  # the client's options still apply
        assert other.service()._client._client._pipeline._transport is given
    finally:
        store.close()
        other.close()
