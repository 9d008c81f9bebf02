"""One poll or sweep at a time, and never stalled by a crash: a short lease, renewed while the run
goes on, and taken back at once by a restarted host.

A run holds its lease for ``LEASE_SECONDS`` (30 s) and a heartbeat thread renews it every third
of that for as long as the run goes on, so a long run keeps it however long it takes. A run that
dies stops renewing: its lease lapses within 30 s, and the next run after that takes it. A
restarted host does not even wait for that: the owner names the host instance and the process
(``host/pid/token``), and a run that finds the lease held by a process of its own host instance
that no longer exists takes it over at once (``StateStore.acquire_lease(..., replacing=...)``,
conditional on that holder still holding it). So after a crash, capture resumes on the first
schedule tick after the restart; on another instance, within 30 s more.

Overlapping runs are harmless anyway (checkpoints are written conditionally on their etag, and
notices carry deterministic dedup ids); the lease only keeps them from doing the work twice.
A run whose heartbeat finds the lease taken (``lost``) goes on and lets the checkpoint decide.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from types import TracebackType

from shared.errors import MdsyncError
from shared.ports import StateStore

log = logging.getLogger(__name__)

LEASE_SECONDS = 30.0


def this_host() -> str:
    """The host instance: Azure's WEBSITE_INSTANCE_ID (stable across host restarts on one
    instance), else the machine's name."""
    return (os.environ.get("WEBSITE_INSTANCE_ID") or socket.gethostname() or "localhost").replace("/", "_")


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    token: str

    def __str__(self) -> str:
        return f"{self.host}/{self.pid}/{self.token}"

    @classmethod
    def mine(cls) -> Owner:
        return cls(this_host(), os.getpid(), uuid.uuid4().hex[:12])

    @classmethod
    def parse(cls, text: str) -> Owner | None:
        host, _, rest = text.rpartition("/")
        host, _, pid = host.rpartition("/")
        if not host or not pid.isdigit():
            return None
        return cls(host, int(pid), rest)


def holder_is_gone(owner: str) -> bool:
    """Whether ``owner`` was a process of this host instance that no longer runs. Unknowable for
    another instance (or an owner written by older code): then only expiry frees the lease."""
    holder = Owner.parse(owner)
    if holder is None or holder.host != this_host() or holder.pid == os.getpid():
        return False
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # a process of another user has that pid: alive
    return False


class Lease:
    """``with Lease(state, "marketo-poll") as lease: if lease.held: ...``: held for the block,
    renewed in the background, released at the end."""

    def __init__(
        self,
        state: StateStore,
        name: str,
        *,
        seconds: float = LEASE_SECONDS,
        renew_every: float | None = None,
    ) -> None:
        self.state = state
        self.name = name
        self.seconds = seconds
        self.renew_every = renew_every if renew_every is not None else seconds / 3
        self.owner = str(Owner.mine())
        self.held = False
        self.renewals = 0
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def acquire(self) -> bool:
        if self.state.acquire_lease(self.name, self.owner, self.seconds):
            self.held = True
            return True
        current = self.state.get_lease(self.name)
        if current is not None and holder_is_gone(current.owner):
            log.warning("lease %s: holder %s is gone (restarted); taking it over", self.name, current.owner)
            self.held = self.state.acquire_lease(self.name, self.owner, self.seconds, replacing=current.owner)
        return self.held

    def renew(self) -> bool:
        """Extend the lease by ``seconds`` from now; False (and ``lost`` set) once it is taken."""
        if self.state.acquire_lease(self.name, self.owner, self.seconds):
            self.renewals += 1
            return True
        self.lost.set()
        return False

    def _beat(self) -> None:
        while not self._stop.wait(self.renew_every):
            try:
                if not self.renew():
                    log.warning("lease %s was taken by another run; this run goes on", self.name)
                    return
            except MdsyncError as exc:  # the store hiccuped: try again at the next beat
                log.warning("lease %s: renewal failed (%s); trying again", self.name, exc)

    def __enter__(self) -> Lease:
        if self.acquire():
            self._heartbeat = threading.Thread(target=self._beat, name=f"lease-{self.name}", daemon=True)
            self._heartbeat.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        if self.held:
            self.state.release_lease(self.name, self.owner)
