"""Trigger campaigns whose flow is one Call Webhook step, run the way Marketo runs them.

A campaign listens for activities as they are recorded: **Person is Created** (a New Lead
activity) and **Data Value Changes** (a Change Data Value activity) on the attributes it names,
optionally constrained to sources other than some (the trigger's "Source" constraint, e.g. not
"Web service API"). A qualifying activity queues a run for the person; a small pool of runners
works the queue asynchronously, as Marketo's campaign processor does, and each run renders the
webhook with the person's values **at run time** (lead tokens are read when the step runs, not
when the trigger fired) and records a Call Webhook activity. Every activity qualifies ("each
person can run through the flow every time"); Marketo never retries a failed call.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from simulators.admin_body import Body
from simulators.marketo.activities import CHANGE_DATA_VALUE, NEW_LEAD, Activity

log = logging.getLogger(__name__)

CREATED = "Person is Created"
CHANGED = "Data Value Changes"
TRIGGERS = frozenset({CREATED, CHANGED})
# Marketo bounds a webhook's outstanding connections per instance (about 20, a third-party
# measurement); a handful of runners keeps the simulator light and still overlaps calls.
RUNNERS = 4


class CampaignDefinitionError(ValueError):
    """The admin API was given an unusable campaign definition."""


@dataclass(frozen=True)
class Trigger:
    kind: str
    attributes: frozenset[str] = frozenset()  # REST names; Data Value Changes only
    source_is_not: frozenset[str] = frozenset()

    def matches(self, activity: Activity) -> bool:
        if self.kind == CREATED:
            return (
                activity.type_id == NEW_LEAD and _attribute(activity, "Source Type") not in self.source_is_not
            )
        if activity.type_id != CHANGE_DATA_VALUE:
            return False
        names = {str(f.get("name")) for f in activity.fields}
        return bool(names & self.attributes) and _attribute(activity, "Source") not in self.source_is_not


@dataclass(frozen=True)
class Campaign:
    name: str
    webhook: str
    triggers: tuple[Trigger, ...]
    active: bool = True

    def qualifies(self, activity: Activity) -> bool:
        return self.active and any(t.matches(activity) for t in self.triggers)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "webhook": self.webhook,
            "active": self.active,
            "triggers": [
                {"type": t.kind, "attributes": sorted(t.attributes), "sourceIsNot": sorted(t.source_is_not)}
                for t in self.triggers
            ],
        }


def parse_campaign(body: Mapping[str, Any], webhooks: Mapping[str, object], fields: set[str]) -> Campaign:
    name, webhook = body.get("name"), body.get("webhook")
    if not isinstance(name, str) or not name.strip():
        raise CampaignDefinitionError("name is required")
    if webhook not in webhooks:
        raise CampaignDefinitionError(f"no webhook named {webhook!r} (define it first)")
    raw = body.get("triggers")
    if not isinstance(raw, list) or not raw:
        raise CampaignDefinitionError("triggers must be a non-empty list")
    active = Body(body).flag("active", True)
    return Campaign(name, str(webhook), tuple(_trigger(t, fields) for t in raw), active)


def _trigger(raw: object, fields: set[str]) -> Trigger:
    if not isinstance(raw, dict) or raw.get("type") not in TRIGGERS:
        raise CampaignDefinitionError(f"each trigger needs a type, one of {sorted(TRIGGERS)}")
    trigger = Body(raw)
    attributes = frozenset(trigger.texts("attributes", []))
    if raw["type"] == CHANGED and not attributes:
        raise CampaignDefinitionError("Data Value Changes needs at least one attribute")
    unknown = attributes - fields
    if unknown:
        raise CampaignDefinitionError(f"unknown attributes: {sorted(unknown)}")
    return Trigger(str(raw["type"]), attributes, frozenset(trigger.texts("sourceIsNot", [])))


def _attribute(activity: Activity, name: str) -> object:
    return next((a.get("value") for a in activity.attributes if a.get("name") == name), None)


class CampaignRunner:
    """The queue of campaign runs and the threads that work it. ``fire(webhook, lead_id)`` runs
    the Call Webhook step (``simulators.marketo.firing.fire_now``)."""

    def __init__(self, fire: Callable[[str, int], object]) -> None:
        self._fire = fire
        self.campaigns: dict[str, Campaign] = {}
        self._queue: queue.Queue[tuple[str, int] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        self._threads: list[threading.Thread] = []
        self.runs = 0
        self.paused = threading.Event()
        self.paused.set()  # set: running

    def define(self, campaign: Campaign) -> None:
        with self._lock:
            self.campaigns[campaign.name] = campaign
            if not self._threads:
                for i in range(RUNNERS):
                    thread = threading.Thread(target=self._work, name=f"marketo-campaign-{i}", daemon=True)
                    thread.start()
                    self._threads.append(thread)

    def observe(self, activity: Activity) -> None:
        """Called for each recorded activity (with the instance's lock held: only queue here)."""
        if not self.campaigns:
            return
        for campaign in list(self.campaigns.values()):
            if campaign.qualifies(activity):
                with self._lock:
                    self._pending += 1
                self._queue.put((campaign.webhook, activity.lead_id))

    def pause(self, paused: bool) -> None:
        """Held runs stay queued (a campaign processor that is behind, or a test that wants a
        backlog); releasing runs them all."""
        if paused:
            self.paused.clear()
        else:
            self.paused.set()

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def pending(self) -> int:
        with self._lock:
            return self._pending

    def clear(self) -> None:
        """Forget the campaigns and any queued run (the instance was reset)."""
        with self._lock:
            self.campaigns.clear()
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self._done()
        self.paused.set()

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self.paused.wait()
            webhook, lead_id = item
            try:
                self._fire(webhook, lead_id)
            except Exception as exc:  # a person deleted meanwhile, a webhook redefined: no run
                log.debug("campaign run for person %d skipped: %s", lead_id, exc)
            finally:
                self._done()

    def _done(self) -> None:
        with self._idle:
            self._pending -= 1
            self.runs += 1
            self._idle.notify_all()
