"""Which Marketo instance and Dataverse organization the state store belongs to.

Checkpoints (the Marketo paging token, the Dataverse delta link) and links (person id to lead
or contact id) mean something only in the instance that issued them. Pointed at another
Marketo instance or Dataverse organization, a poller would follow a paging token past every
activity there and sync nothing, silently, and links would join unrelated records. So the state
store remembers where it belongs (the checkpoint ``instance``: the Marketo REST host and the
Dataverse organization id that WhoAmI answers), the app refuses to start on state from
elsewhere, and ``mdsync doctor`` names the mismatch and the fix.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from shared.errors import ConfigurationError, ConflictError
from shared.ports import StateStore

CHECKPOINT = "instance"
FIX = (
    "point mdsync at fresh state (STATE_TABLE_PREFIX in Azure, MDSYNC_SQLITE_PATH or "
    "`mdsync devhost --reset-state` locally), or, if these are the same systems under a new "
    "address, run `mdsync doctor --rebind-state`"
)


@dataclass(frozen=True)
class Instance:
    marketo: str  # the REST host, e.g. 123-abc-456.mktorest.com
    dataverse: str  # the organization id (WhoAmI OrganizationId)

    @classmethod
    def of(cls, marketo_base_url: str, dataverse_organization_id: str) -> Instance:
        host = (urlsplit(marketo_base_url).netloc or marketo_base_url).lower()
        return cls(host, dataverse_organization_id.lower())

    def describe(self) -> str:
        return f"Marketo {self.marketo} and Dataverse organization {self.dataverse}"


def bound_instance(state: StateStore) -> Instance | None:
    checkpoint = state.get_checkpoint(CHECKPOINT)
    if checkpoint is None:
        return None
    data = json.loads(checkpoint.value)
    return Instance(str(data["marketo"]), str(data["dataverse"]))


def check_binding(state: StateStore, current: Instance) -> bool:
    """Raise ConfigurationError if the state belongs to other systems; bind unbound state to
    ``current`` (True when it did)."""
    bound = bound_instance(state)
    if bound == current:
        return False
    if bound is not None:
        raise ConfigurationError(
            f"the state store belongs to {bound.describe()}, but the settings point at "
            f"{current.describe()}: its checkpoints and links would be followed there; {FIX}",
            settings=("STATE_TABLE_PREFIX", "MDSYNC_SQLITE_PATH"),
        )
    bind(state, current, force=False)
    return True


def bind(state: StateStore, current: Instance, *, force: bool) -> None:
    """Record ``current`` as the state's systems (``force``: replace another binding)."""
    existing = state.get_checkpoint(CHECKPOINT)
    if existing is not None and not force:
        return
    try:
        state.put_checkpoint(
            CHECKPOINT, json.dumps(asdict(current)), etag=existing.etag if existing else None
        )
    except ConflictError:
        return  # another instance of the app bound it at the same moment; the next check reads it
