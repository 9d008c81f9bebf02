"""Small JSON records the console keeps in the state store's checkpoints: the pause switch, the
capture runs, the API budgets seen by the worker. Each is read-modify-written under its etag; a
writer that loses a race to a concurrent one lets the newer record stand (these are
"last seen" facts, not counters)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from shared.errors import ConflictError, MdsyncError
from shared.ports import Checkpoint, StateStore

log = logging.getLogger(__name__)

PAUSE = "console:pause"
BUDGETS = "console:budgets"
CAPTURE_PREFIX = "console:capture:"


def read(state: StateStore, name: str) -> dict[str, Any]:
    """The record (a JSON object in a checkpoint); {} when there is none or it is unreadable."""
    return _loaded(state.get_checkpoint(name))


def _loaded(checkpoint: Checkpoint | None) -> dict[str, Any]:
    if checkpoint is None:
        return {}
    try:
        value = json.loads(checkpoint.value)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def update(
    state: StateStore, name: str, change: Callable[[dict[str, Any]], dict[str, Any]], *, attempts: int = 3
) -> dict[str, Any]:
    """Apply ``change`` to the record and write it back under its etag; retried on a race."""
    for _ in range(attempts):
        checkpoint = state.get_checkpoint(name)
        new = change(_loaded(checkpoint))
        try:
            state.put_checkpoint(name, json.dumps(new), etag=checkpoint.etag if checkpoint else None)
            return new
        except ConflictError:
            continue
    raise ConflictError(f"{name} kept changing; try again", service="state", code="Conflict")


def note(state: StateStore, name: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """``update`` for a figure the console shows: a failure is logged, never raised (it must not
    fail the capture run or the batch that reports it)."""
    try:
        update(state, name, change, attempts=2)
    except MdsyncError as exc:
        log.info("console record %s not updated: %s", name, exc)


def moment(value: object) -> datetime | None:
    """An ISO 8601 time from a record (naive taken as UTC); None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
