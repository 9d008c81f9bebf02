"""The optional parameter ``BypassBusinessLogicExecutionStepIds``: named steps do not run.

Documented (Microsoft Learn, "Bypass custom Dataverse logic"): the Web API request header
``MSCRM.BypassBusinessLogicExecutionStepIds`` carries a comma-separated list of
``sdkmessageprocessingstep`` ids; those registered steps do not run for that request, every other
step does, and an id of a step that would not run for the request is ignored. The caller needs
the ``prvBypassCustomBusinessLogic`` privilege (id ``0ea552b0-a491-4470-9a1b-82068deccf66``; system
administrators have it, another role gets it only through the API). By default at most three ids
may be passed (``BypassBusinessLogicExecutionStepIdsLimit`` in the organization's
OrgDbOrgSettings; ten at most is recommended).

Not documented, the simulator's choices: the caller without the privilege gets 403 PrivilegeDenied
(0x80040220) with Dataverse's usual "missing privilege" wording; too many ids, or an id that is
not a GUID, is a 400 InvalidArgument; the header of a ``$batch`` request applies to each request
in it that carries none of its own (each inner request is checked on its own); the
``canbebypassed`` column of a step (a Boolean with no description, default False) does not
decide anything, since with that default no step could be bypassed at all.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

from simulators.dataverse.faults import INVALID_ARGUMENT, PRIVILEGE_DENIED, DataverseFault
from simulators.dataverse.messages import ApiRequest

HEADER = "mscrm.bypassbusinesslogicexecutionstepids"
PRIVILEGE = "prvBypassCustomBusinessLogic"
PRIVILEGE_ID = "0ea552b0-a491-4470-9a1b-82068deccf66"
DEFAULT_LIMIT = 3
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def privilege_asked(function: str) -> str:
    """The privilege ``RetrieveUserPrivilegeByPrivilegeName(PrivilegeName='...')`` asks about."""
    match = re.fullmatch(r"RetrieveUserPrivilegeByPrivilegeName\(PrivilegeName='([^']*)'\)", function)
    if match is None:
        raise DataverseFault(404, INVALID_ARGUMENT, f"Resource not found for the segment '{function}'.")
    if match.group(1) != PRIVILEGE:
        raise DataverseFault(400, INVALID_ARGUMENT, f"The simulator models only the privilege {PRIVILEGE}.")
    return PRIVILEGE


def step_ids(value: str, limit: int) -> frozenset[str]:
    """The ids a header value names (the documented example wraps the list in quotes)."""
    ids = [part.strip().strip('"').strip().lower() for part in value.strip().strip('"').split(",")]
    ids = [i for i in ids if i]
    bad = [i for i in ids if not _GUID.match(i)]
    if bad or not ids:
        raise DataverseFault(
            400,
            INVALID_ARGUMENT,
            f"BypassBusinessLogicExecutionStepIds must be a comma-separated list of step ids; "
            f"'{bad[0] if bad else value}' is not a Guid.",
        )
    if len(set(ids)) > limit:
        raise DataverseFault(
            400,
            INVALID_ARGUMENT,
            f"BypassBusinessLogicExecutionStepIds names {len(set(ids))} steps; at most {limit} may be "
            "passed (BypassBusinessLogicExecutionStepIdsLimit).",
        )
    return frozenset(ids)


class BypassPolicy:
    """Who holds ``prvBypassCustomBusinessLogic`` and the organization's step-id limit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lacking: set[str] = set()
        self.limit = DEFAULT_LIMIT

    def reset(self, *, lacking: Iterable[str], limit: int) -> None:
        with self._lock:
            self._lacking = {u.lower() for u in lacking}
            self.limit = limit

    def grant(self, user_id: str, granted: bool) -> None:
        with self._lock:
            if granted:
                self._lacking.discard(user_id.lower())
            else:
                self._lacking.add(user_id.lower())

    def to_json(self) -> dict[str, object]:
        with self._lock:
            return {"privilege": PRIVILEGE, "lacking": sorted(self._lacking), "limit": self.limit}

    def holds(self, user_id: str) -> bool:
        with self._lock:
            return user_id.lower() not in self._lacking

    def apply(self, req: ApiRequest) -> None:
        """Check the request's header and make its caller bypass the steps it names."""
        value = req.headers.get(HEADER)
        if value is None:
            return
        ids = step_ids(value, self.limit)
        user = req.caller.user_id
        if not self.holds(user):
            raise DataverseFault(
                403,
                PRIVILEGE_DENIED,
                f"Principal user (Id={user}, type=8) is missing {PRIVILEGE} privilege (Id={PRIVILEGE_ID}).",
            )
        req.caller = req.caller.bypassing(ids)
