"""Serve an ASGI app on localhost from a background thread (tests, the CLI, the demo)."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import threading
import time
from typing import Any

import uvicorn

from simulators.tls import TlsFiles


class _QuietShutdown(logging.Filter):
    """Idle keep-alive connections at shutdown are normal here, not an error worth a line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "timeout graceful shutdown exceeded" not in record.getMessage()


logging.getLogger("uvicorn.error").addFilter(_QuietShutdown())


class PortInUse(OSError):
    """The port is taken (another simulator, local host or demo is running)."""

    def __init__(self, name: str, port: int) -> None:
        super().__init__(errno.EADDRINUSE, f"{name}: port {port} on 127.0.0.1 is already in use")
        self.name = name
        self.port = port


class ServerThread:
    """Run ``app`` with uvicorn on 127.0.0.1:``port`` (0 = ephemeral) until :meth:`stop`."""

    def __init__(self, app: Any, *, port: int = 0, tls: TlsFiles | None = None, name: str = "server") -> None:
        self.app = app
        self.tls = tls
        self.name = name
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind(("127.0.0.1", port))
        except OSError as exc:
            self._sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(name, port) from None
            raise
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ssl_certfile=str(tls.cert_file) if tls else None,
            ssl_keyfile=str(tls.key_file) if tls else None,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=1,
            backlog=512,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"{name}-thread", daemon=True)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://localhost:{self.port}"

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def start(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
