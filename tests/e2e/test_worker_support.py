"""Helpers for the worker's end-to-end tests (no tests here): build linked persons through the
product itself, read both sides, read the sync log."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from mdsync.harness import LocalSystem
from shared.bootstrap import reset_container
from shared.ports import LogEntry

USER = "Jane Doe"
_serial = itertools.count(1)
SETS = {"lead": "leads", "contact": "contacts"}


def create_linked(system: LocalSystem, entity: str, **columns: Any) -> tuple[str, int]:
    """A lead or contact created by a Dynamics user, synced: (record id, Marketo person id)."""
    record = {"lastname": "Lopez", "emailaddress1": f"{entity}-{next(_serial)}@fabrikam.example", **columns}
    record_id = system.dataverse_admin.create_as(USER, SETS[entity], record)
    system.sync()
    return record_id, person_of(system, entity, record_id)


def person_of(system: LocalSystem, entity: str, record_id: str) -> int:
    link = system.deps.state.get_links_by_dynamics(entity, [record_id]).get(record_id)
    assert link is not None, f"{entity} {record_id} is not linked"
    return link.marketo_id


def person(system: LocalSystem, marketo_id: int) -> dict[str, Any]:
    return system.marketo_admin.person(marketo_id)


def row(system: LocalSystem, entity: str, record_id: str) -> dict[str, Any]:
    found = system.dataverse_admin.row(entity, record_id)
    assert found is not None, f"{entity} {record_id} does not exist"
    return found


def update_as_user(system: LocalSystem, entity: str, record_id: str, **columns: Any) -> None:
    system.dataverse_admin.update_as(USER, SETS[entity], record_id, columns)


def log_of(system: LocalSystem, marketo_id: int) -> list[LogEntry]:
    return system.deps.state.read_log(marketo_id=marketo_id)


def actions(system: LocalSystem, marketo_id: int) -> list[str]:
    return [e.action for e in log_of(system, marketo_id)]


def failure_activities(system: LocalSystem, marketo_id: int) -> list[dict[str, Any]]:
    """The person's "Microsoft Sync Failed" activities, as attribute dicts."""
    found = []
    for activity in system.marketo_admin.activities(marketo_id):
        values = {a.get("apiName"): a.get("value") for a in activity.get("attributes", [])}
        if "errorMessage" in values:
            found.append({**values, "entity": activity.get("primaryAttributeValue")})
    return found


@contextmanager
def webhooks_held(system: LocalSystem) -> Iterator[None]:
    """Dynamics webhooks are held inside the block, so edits on both sides meet in one sync."""
    system.dataverse_admin.pause_webhooks(True)
    try:
        yield
    finally:
        system.dataverse_admin.pause_webhooks(False)


@contextmanager
def mapping_edited(system: LocalSystem, folder: Path, edits: dict[str, str]) -> Iterator[LocalSystem]:
    """The default mapping with text replacements, named by MDSYNC_FIELD_MAPPING as an operator
    would; the functions build their dependencies again with it, and without it afterwards."""
    text = resources.files("shared").joinpath("default_mapping.yaml").read_text(encoding="utf-8")
    for old, new in edits.items():
        assert old in text, old
        text = text.replace(old, new)
    path = folder / "mapping.yaml"
    path.write_text(text, encoding="utf-8")
    with _mapping_named(path):
        yield system


@contextmanager
def mapping_extended(
    system: LocalSystem,
    folder: Path,
    *,
    lead: Sequence[dict[str, Any]] = (),
    contact: Sequence[dict[str, Any]] = (),
    options: dict[str, Any] | None = None,
) -> Iterator[LocalSystem]:
    """The default mapping with more fields and other options, named by MDSYNC_FIELD_MAPPING
    as an operator would; the functions build their dependencies again with it."""
    document = yaml.safe_load(
        resources.files("shared").joinpath("default_mapping.yaml").read_text(encoding="utf-8")
    )
    document["lead"]["fields"].extend(lead)
    document["contact"]["fields"].extend(contact)
    document["options"].update(options or {})
    path = folder / "mapping.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    with _mapping_named(path):
        yield system


@contextmanager
def _mapping_named(path: Path) -> Iterator[None]:
    previous = os.environ.get("MDSYNC_FIELD_MAPPING")
    os.environ["MDSYNC_FIELD_MAPPING"] = str(path)
    reset_container()
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MDSYNC_FIELD_MAPPING", None)
        else:
            os.environ["MDSYNC_FIELD_MAPPING"] = previous
        reset_container()
