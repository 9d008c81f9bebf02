"""mdsync's own writes do not wake mdsync's own webhook.

Every lead or contact mdsync writes would run mdsync's own webhook step: in Dataverse an
asynchronous system job, then a call to ``dynamics_webhook``, a notice on the queue and worker
time, all to learn what the worker already knows (it sets the echo aside, docs/change-capture.md
"Own writes"). The optional parameter ``BypassBusinessLogicExecutionStepIds`` (Web API header
``MSCRM.BypassBusinessLogicExecutionStepIds``) names registered steps that do not run for one
request; every other step (a customer's plug-ins, flows, other webhooks) still does.

Which steps: only those of the service endpoint mdsync's set-up registered
(``DYNAMICS_WEBHOOK_NAME``), found in Dataverse (``sdkmessageprocessingsteps`` by that endpoint)
and kept for :data:`REFRESH_SECONDS`; per request only the ones its message would run (an Update
of a lead: the lead's Update step), so a request names one or two, within Dataverse's default
limit of three. A request that writes nothing of a lead or contact carries no header.

Never at the cost of a write: the caller needs the ``prvBypassCustomBusinessLogic`` privilege,
and a write Dataverse refuses while it carries the header is sent again without it. When that
one goes through, the header was the reason: it is not sent again by this process, and a warning
says once what to grant (docs/dataverse-webhook.md). Steps that cannot be read (no privilege to
read them, no endpoint of that name) mean no header, with a warning once. Correctness never
depends on any of this: without the header the echoes come back and are set aside as before.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from shared.dataverse import odata
from shared.errors import AccessDeniedError, ServiceError, TransientError, ValidationError

if TYPE_CHECKING:
    from shared.dataverse.client import DataverseClient

log = logging.getLogger(__name__)

HEADER = "MSCRM.BypassBusinessLogicExecutionStepIds"
PRIVILEGE = "prvBypassCustomBusinessLogic"
MAX_IDS = 3  # Dataverse's default BypassBusinessLogicExecutionStepIdsLimit
REFRESH_SECONDS = 600.0  # a re-registration (new step ids) is taken up within this
RETRY_SECONDS = 60.0  # after a transient failure to read the steps
_TABLES = {entity_set: logical for logical, entity_set in odata.ENTITY_SETS.items()}
_BULK = {"CreateMultiple": ("Create",), "UpdateMultiple": ("Update",), "UpsertMultiple": ("Create", "Update")}

Steps = Mapping[tuple[str, str], tuple[str, ...]]


def messages_of(method: str, path: str, headers: Mapping[str, str]) -> tuple[str, tuple[str, ...]] | None:
    """(table, the messages whose steps the request runs) for a write of a lead or contact that
    mdsync makes (create, update, upsert, their bulk forms); None for anything else."""
    head, _, rest = path.split("?", 1)[0].lstrip("/").partition("/")
    name, keyed, _ = head.partition("(")
    logical = _TABLES.get(name)
    if logical is None or method not in ("POST", "PATCH"):
        return None
    if method == "POST" and not keyed:
        if not rest:
            return logical, ("Create",)
        bulk = _BULK.get(rest.removeprefix(odata.NS))
        return (logical, bulk) if bulk else None
    if method == "PATCH" and keyed and not rest:
        lower = {k.lower(): v for k, v in headers.items()}
        if lower.get("if-none-match") == "*":
            return logical, ("Create",)
        if lower.get("if-match"):
            return logical, ("Update",)
        return logical, ("Create", "Update")
    return None


def refuses_bypass(error: ServiceError) -> bool:
    """Whether a refusal of a request that carried the header may be the header's doing: any
    403 (Dataverse does not document the answer without the privilege) or a 400 about it."""
    if isinstance(error, AccessDeniedError):
        return True
    return isinstance(error, ValidationError) and "bypass" in error.message.lower()


def read_steps(client: DataverseClient, endpoint_name: str) -> dict[tuple[str, str], tuple[str, ...]]:
    """The step ids of the service endpoint(s) called ``endpoint_name``, by (table, message)."""
    endpoints = client.query(
        "serviceendpoints", select=["serviceendpointid"], filter=odata.eq("name", endpoint_name)
    )
    steps: list[dict[str, Any]] = []
    for endpoint in list(endpoints):
        steps += client.query(
            "sdkmessageprocessingsteps",
            select=["sdkmessageprocessingstepid", "_sdkmessageid_value", "_sdkmessagefilterid_value"],
            filter=odata.eq("_eventhandler_value", uuid.UUID(str(endpoint["serviceendpointid"]))),
        )
    messages = _names(
        client, "sdkmessages", "sdkmessageid", "name", (s.get("_sdkmessageid_value") for s in steps)
    )
    tables = _names(
        client,
        "sdkmessagefilters",
        "sdkmessagefilterid",
        "primaryobjecttypecode",
        (s.get("_sdkmessagefilterid_value") for s in steps),
    )
    found: dict[tuple[str, str], tuple[str, ...]] = {}
    for step in steps:
        table = tables.get(str(step.get("_sdkmessagefilterid_value")))
        message = messages.get(str(step.get("_sdkmessageid_value")))
        if table and message:
            found[(table, message)] = (
                *found.get((table, message), ()),
                str(step["sdkmessageprocessingstepid"]),
            )
    return found


def _names(
    client: DataverseClient, entity_set: str, key: str, column: str, ids: Iterable[object]
) -> dict[str, str]:
    wanted = sorted({str(i) for i in ids if i})
    if not wanted:
        return {}
    clause = odata.or_(*(odata.eq(key, uuid.UUID(i)) for i in wanted))
    return {
        str(r[key]): str(r.get(column) or "")
        for r in client.query(entity_set, select=[key, column], filter=clause)
    }


class OwnSteps:
    """mdsync's webhook steps, read from Dataverse and kept; one per process, shared by its
    clients (each reads through the client that asks)."""

    def __init__(
        self,
        endpoint_name: str,
        *,
        read: Callable[[DataverseClient, str], Steps] = read_steps,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint_name = endpoint_name
        self._read = read
        self._clock = clock
        self._lock = threading.Lock()
        self._steps: Steps = {}
        self._due = 0.0
        self._refused = False
        self._warned: set[str] = set()

    @property
    def refused(self) -> bool:
        return self._refused

    def header(
        self, client: DataverseClient, method: str, path: str, headers: Mapping[str, str]
    ) -> dict[str, str]:
        """The header for one request: the ids of the steps it would run; empty when none."""
        wanted = messages_of(method, path, headers)
        if wanted is None or self._refused:
            return {}
        logical, names = wanted
        return self.header_for(self.ids(client, [(logical, m) for m in names]))

    @staticmethod
    def header_for(ids: Iterable[str]) -> dict[str, str]:
        unique = sorted(set(ids))
        return {HEADER: ",".join(unique)} if 0 < len(unique) <= MAX_IDS else {}

    def ids(self, client: DataverseClient, keys: Iterable[tuple[str, str]]) -> list[str]:
        steps = self._current(client)
        return [step for key in keys for step in steps.get(key, ())]

    def _current(self, client: DataverseClient) -> Steps:
        with self._lock:
            if self._clock() < self._due:
                return self._steps
            # One reader; the others use what is known until it is done.
            self._due = self._clock() + RETRY_SECONDS
        try:
            steps = dict(self._read(client, self.endpoint_name))
        except TransientError as exc:
            log.info("could not read mdsync's webhook steps now (%s); writes carry no bypass", exc)
            return self._steps
        except ServiceError as exc:
            self._warn(
                "unreadable",
                "cannot read the steps of the Dataverse webhook %r (%s): mdsync's own writes will "
                "run it, and the worker sets those echoes aside (docs/dataverse-webhook.md)",
                self.endpoint_name,
                exc,
            )
            steps = {}
        if not steps:
            self._warn(
                "none",
                "no webhook steps of a service endpoint named %r (DYNAMICS_WEBHOOK_NAME): mdsync's "
                "own writes bypass none",
                self.endpoint_name,
            )
        with self._lock:
            self._steps = steps
            self._due = self._clock() + REFRESH_SECONDS
        return steps

    def forget(self) -> None:
        """Read the steps again at the next write (the webhook was just registered)."""
        with self._lock:
            self._due = 0.0

    def refuse(self, error: ServiceError) -> None:
        """Dataverse refused the header: never again in this process."""
        self._refused = True
        self._warn(
            "refused",
            "Dataverse refused MSCRM.BypassBusinessLogicExecutionStepIds (%s): mdsync writes without "
            "it from now on, and its own writes run its webhook again. Grant the application user's "
            "role the %s privilege (docs/dataverse-webhook.md) and restart the app",
            error,
            PRIVILEGE,
        )

    def _warn(self, kind: str, message: str, *args: object) -> None:
        with self._lock:
            if kind in self._warned:
                return
            self._warned.add(kind)
        log.warning(message, *args)
