"""Everything a simulated instance holds, behind one lock.

Handlers run on the server's event loop while tests read and poke the same state from their
own thread, so every access goes through ``lock`` (a re-entrant threading lock; no handler
awaits while holding it). The methods here are also what the admin API exposes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from simulators.marketo.activities import ActivityLog
from simulators.marketo.bulk import BulkState
from simulators.marketo.config import MarketoSimConfig
from simulators.marketo.custom_activities import CustomTypes
from simulators.marketo.fields import FieldCatalog, coerce
from simulators.marketo.gate import Gate
from simulators.marketo.persons import USER, Person, PersonStore
from simulators.marketo.stats import CallStats
from simulators.marketo.tokens import TokenStore
from simulators.marketo.webhooks import Webhook, parse_webhook


class SimState:
    def __init__(self, config: MarketoSimConfig) -> None:
        self.config = config
        self.clock = config.clock
        self.lock = threading.RLock()
        self.catalog = FieldCatalog(config.extra_fields)
        self.log = ActivityLog()
        self.persons = PersonStore(self.catalog, self.log, self.clock, config.first_lead_id)
        self.custom_types = CustomTypes(self.clock)
        self.tokens = TokenStore(config.token_ttl_seconds, self.clock)
        self.gate = Gate(config.limits, self.clock)
        self.stats = CallStats()
        self.webhooks: dict[str, Webhook] = {}
        self.bulk = BulkState(config.bulk, self.clock, self.lock)
        # The person partitions the API user's role reaches (None: all). Persons elsewhere are
        # not returned by reads, and writes to them answer 1008.
        self.api_partitions: frozenset[int] | None = None

    def visible(self, person: Mapping[str, Any]) -> bool:
        """Whether the API user can see this person (its partition is in the user's reach)."""
        return self.api_partitions is None or person.get("leadPartitionId") in self.api_partitions

    def reset(self) -> None:
        """Back to an empty instance with the configured limits (tokens are kept)."""
        with self.lock:
            self.log = ActivityLog()
            self.persons = PersonStore(self.catalog, self.log, self.clock, self.config.first_lead_id)
            self.custom_types.clear()
            self.gate.reset(self.config.limits)
            self.stats.reset()
            self.webhooks.clear()
            self.api_partitions = None
            self.bulk.reset(self.config.bulk)

    def close(self) -> None:
        """Stop the bulk worker and delete the bulk files (the instance is not used again)."""
        self.bulk.close()

    # --- persons, as seeded or as a Marketo user sees them -----------------------------------

    def seed(self, records: Iterable[Mapping[str, Any]]) -> list[int]:
        """Create persons silently (no activities): the instance as it was before the test.
        ``createdAt``/``updatedAt`` may be given, as for data that is years old."""
        with self.lock:
            stamped = [_stamps(self.catalog, r) for r in records]
            clean = [(self.persons.validate(r), stamps) for r, stamps in stamped]
            ids = []
            for values, stamps in clean:
                lead_id = self.persons.create(values, None)
                person = self.persons.get(lead_id)
                assert person is not None
                person.update(stamps)
                ids.append(lead_id)
            return ids

    def person(self, lead_id: int) -> Person | None:
        with self.lock:
            found = self.persons.get(lead_id)
            return dict(found) if found else None

    def all_persons(self) -> list[Person]:
        with self.lock:
            return self.persons.all()

    def activities(self, lead_id: int, type_ids: Iterable[int] | None = None) -> list[dict[str, Any]]:
        """A person's Activity Log (standard and custom activities), oldest first."""
        wanted = frozenset(type_ids) if type_ids is not None else None
        with self.lock:
            return [a.to_json() for a in self.log.for_lead(lead_id, wanted)]

    def user_create(self, values: Mapping[str, Any]) -> int:
        with self.lock:
            return self.persons.create(self.persons.validate(values), USER)

    def user_edit(self, lead_id: int, values: Mapping[str, Any]) -> list[str]:
        with self.lock:
            if self.persons.get(lead_id) is None:
                raise KeyError(lead_id)
            return self.persons.update(lead_id, self.persons.validate(values), USER)

    def user_delete(self, lead_id: int) -> bool:
        with self.lock:
            return self.persons.delete(lead_id)

    def user_merge(self, winner: int, losers: Iterable[int]) -> list[str]:
        """Merge People in the UI: the winner stays, the losers are merged into it."""
        with self.lock:
            ids = [i for i in dict.fromkeys(losers) if i != winner]
            for lead_id in (winner, *ids):
                if self.persons.get(lead_id) is None:
                    raise KeyError(lead_id)
            return self.persons.merge(winner, ids)

    # --- partitions ------------------------------------------------------------------------------

    def move_to_partition(self, lead_ids: Iterable[int], partition: int) -> None:
        """Admin > Person Partitions: move persons (silently: no activity)."""
        with self.lock:
            for lead_id in lead_ids:
                person = self.persons.get(lead_id)
                if person is None:
                    raise KeyError(lead_id)
                person["leadPartitionId"] = partition

    def set_api_partitions(self, partitions: Iterable[int] | None) -> None:
        """The partitions the API user's role reaches (None: all), as a changed role or
        workspace would leave them."""
        with self.lock:
            self.api_partitions = None if partitions is None else frozenset(partitions)

    # --- field management --------------------------------------------------------------------

    def block_field_updates(self, name: str, sources: Iterable[str]) -> None:
        """Block Field Updates for ``sources`` (e.g. "Web service API"); none lifts the block."""
        with self.lock:
            self.catalog.require(name)
            blocked = frozenset(sources)
            if blocked:
                self.persons.blocked[name] = blocked
            else:
                self.persons.blocked.pop(name, None)

    def blocked_fields(self) -> dict[str, list[str]]:
        with self.lock:
            return {name: sorted(sources) for name, sources in self.persons.blocked.items()}

    # --- limits and faults ---------------------------------------------------------------

    def set_limits(self, **changes: Any) -> dict[str, Any]:
        with self.lock:
            return vars(self.gate.set_limits(**changes)).copy()

    def inject_fault(self, code: str, count: int = 1) -> None:
        with self.lock:
            self.gate.inject(code, count)

    def refuse_content(self, text: str, code: str = "1003", count: int | None = None) -> None:
        with self.lock:
            self.gate.refuse_content(text, code, count)

    def faults(self) -> dict[str, Any]:
        with self.lock:
            return self.gate.armed()

    def inject_latency(self, seconds: float, count: int = 1) -> None:
        with self.lock:
            self.gate.inject_latency(seconds, count)

    def clear_faults(self) -> None:
        with self.lock:
            self.gate.clear_faults()

    def expire_tokens(self) -> int:
        with self.lock:
            return self.tokens.expire_all()

    def set_quota(self, *, daily: int | None = None, used: int | None = None) -> None:
        with self.lock:
            self.gate.set_quota(daily=daily, used=used)

    def calls(self) -> dict[str, Any]:
        with self.lock:
            snapshot = self.stats.snapshot()
            snapshot.update(
                quotaUsed=self.gate.quota_used,
                callsInWindow=self.gate.calls_in_window(),
                inFlight=self.gate.in_flight,
                peakInFlight=self.gate.peak_in_flight,
                peakCallsInWindow=self.gate.peak_in_window,
            )
            return snapshot

    def reset_calls(self) -> None:
        with self.lock:
            self.stats.reset()
            self.gate.peak_in_flight = self.gate.in_flight
            self.gate.peak_in_window = self.gate.calls_in_window()

    # --- webhooks ----------------------------------------------------------------------------

    def define_webhook(self, body: Mapping[str, Any]) -> Webhook:
        with self.lock:
            hook = parse_webhook(len(self.webhooks) + 1, dict(body), self.catalog)
            existing = self.webhooks.get(hook.name)
            if existing is not None:
                hook = parse_webhook(existing.webhook_id, dict(body), self.catalog)
            self.webhooks[hook.name] = hook
            return hook


_STAMPS = ("createdAt", "updatedAt")


def _stamps(catalog: FieldCatalog, record: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A seed record without its timestamps, and the timestamps in Marketo's stored form."""
    rest = {k: v for k, v in record.items() if k not in _STAMPS}
    stamps = {
        name: coerce(catalog.require(name), record[name]) for name in _STAMPS if record.get(name) is not None
    }
    if "createdAt" in stamps and "updatedAt" not in stamps:
        stamps["updatedAt"] = stamps["createdAt"]
    return rest, stamps
