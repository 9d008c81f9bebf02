"""An HTTP transport that does not send a request on a connection the server is about to close.

A server that answers ``Keep-Alive: timeout=N`` closes a connection left idle for N seconds
(Azurite: 5). A request sent on a pooled connection just as the server closes it is lost with
``ConnectionResetError``; azure-core retries a GET then, but not a POST, so an entity-group
transaction (``POST $batch``) failed and its whole worker batch was delivered and done again.
Whether such a request was applied cannot be known from the client, so it is not sent again;
instead a pooled connection idle for half the server's advertised timeout or longer is closed
and a fresh one opened. Without the header (Azure's Table service does not send one) pooling is
unchanged.

The pool is urllib3's own (``requests`` and azure-core's ``RequestsTransport`` above it); only
the choice of connection is ours. urllib3 already drops a connection the server has closed
(a readable socket at EOF); what it cannot see is a close still on its way.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import requests
from azure.core.pipeline.transport import RequestsTransport
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry

_TIMEOUT = re.compile(r"(?:^|[\s,])timeout\s*=\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_IDLE_SINCE = "_mdsync_idle_since"
_KEEP_ALIVE = "_mdsync_keep_alive"


def advertised_timeout(header: str | None) -> float | None:
    """The ``timeout`` of a ``Keep-Alive`` header, in seconds; None without one."""
    match = _TIMEOUT.search(header or "")
    return float(match.group(1)) if match else None


class _FreshPool:
    """Mixed into urllib3's pools: stamp a connection when it is put back, and close it instead
    of reusing it once it has been idle half its server's keep-alive timeout."""

    clock: Callable[[], float] = time.monotonic

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        keep_alive = getattr(conn, _KEEP_ALIVE, None)
        idle_since = getattr(conn, _IDLE_SINCE, None)
        if keep_alive is not None and idle_since is not None and self.clock() - idle_since >= keep_alive / 2:
            conn.close()  # it connects again when used
        return conn

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            setattr(conn, _IDLE_SINCE, self.clock())
        super()._put_conn(conn)  # type: ignore[misc]

    def _make_request(self, conn: Any, *args: Any, **kwargs: Any) -> Any:
        response = super()._make_request(conn, *args, **kwargs)  # type: ignore[misc]
        setattr(conn, _KEEP_ALIVE, advertised_timeout(response.headers.get("Keep-Alive")))
        return response


class FreshHTTPConnectionPool(_FreshPool, HTTPConnectionPool):
    pass


class FreshHTTPSConnectionPool(_FreshPool, HTTPSConnectionPool):
    pass


class FreshConnectionAdapter(HTTPAdapter):
    """``requests``' adapter on the pools above, with urllib3's retries off (azure-core's retry
    policy decides, as with the adapter azure-core mounts itself)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_retries", Retry(total=False, redirect=False, raise_on_status=False))
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": FreshHTTPConnectionPool,
            "https": FreshHTTPSConnectionPool,
        }


# The client options azure-core hands the transport it builds itself (timeouts, TLS, proxies).
TRANSPORT_OPTIONS = frozenset(
    {
        "connection_timeout",
        "read_timeout",
        "connection_verify",
        "connection_cert",
        "connection_data_block_size",
        "use_env_settings",
    }
)


def fresh_connection_transport(**options: Any) -> RequestsTransport:
    """azure-core's requests transport on a session that never reuses a connection its server
    is about to close (it owns the session and closes it with the client). ``options``: those
    of :data:`TRANSPORT_OPTIONS` a client was given, as azure-core would pass them."""
    session = requests.Session()
    session.trust_env = options.get("use_env_settings", True)
    adapter = FreshConnectionAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return RequestsTransport(session=session, session_owner=True, **options)
