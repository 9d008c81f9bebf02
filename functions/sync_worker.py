"""The sync worker, triggered by batches of notices from the queue (cardinality many)."""

from __future__ import annotations

import logging
import typing

import azure.functions as func

from functions._faults import BatchNotRun, log_fault
from shared.adapters.messages import read_messages
from shared.bootstrap import Container, container
from shared.console import failures
from shared.errors import ConfigurationError, MdsyncError
from shared.ports import ParkedNotice

log = logging.getLogger(__name__)
bp = func.Blueprint()


@bp.function_name("sync_worker")
@bp.service_bus_queue_trigger(
    arg_name="messages",
    queue_name="%SERVICEBUS_QUEUE_NAME%",
    connection="ServiceBusConnection",
    cardinality="many",
)
# typing.List, not list: the Python worker refuses a PEP 585 annotation on a binding parameter
# ("invalid non-type annotation") and then loads no function at all. Keep ruff's UP006 away.
def sync_worker(messages: typing.List[func.ServiceBusMessage]) -> None:  # noqa: UP006
    try:
        _run(messages)
    except ConfigurationError as exc:
        # One line for the batch, then the host abandons it: the notices wait in the queue (or,
        # after the delivery count, in its dead-letter queue, for `mdsync replay`).
        log_fault("sync_worker", exc)
        raise BatchNotRun("configuration fault; batch handed back to the queue") from None


def _run(messages: list[func.ServiceBusMessage]) -> None:
    deps = container()
    deps.app_started()
    deps.verify_instance()
    notices, unreadable = read_messages(messages)
    if unreadable:
        # Kept with its raw body for `mdsync replay`; if that write fails, this raises and the
        # host abandons the batch: nothing is dropped.
        deps.state.park(unreadable)
        for item in unreadable:
            log.error("parked unreadable message %s: %s", item.dedup_id, item.reason)
        note_unreadable(deps, unreadable)
    # A small batch may wait for company (the batching window, shared/sync/pacer.py): its
    # notices are queued again for the window's boundary, and this batch completes. Raises when
    # the queue refuses them: the host then abandons the batch, and nothing is lost.
    if deps.pacer is not None and deps.pacer.hold_back(notices):
        return
    # Raises only when rescheduled notices could not be queued: the host then abandons the
    # batch and Service Bus redelivers it.
    result = deps.worker.process(notices)
    log.info(
        "synced %d persons from %d notices (%d echoes skipped): %d written to Marketo, %d to Dynamics, "
        "%d created in Marketo, %d in Dynamics, collisions %s, %d failures, %d rescheduled, %d parked; "
        "API calls: Marketo %d, Dataverse %d",
        result.persons,
        result.notices,
        result.skipped_echoes,
        result.to_marketo,
        result.to_dynamics,
        result.created_in_marketo,
        result.created_in_dynamics,
        result.collisions or "none",
        result.failures,
        result.rescheduled,
        result.parked,
        result.marketo_calls,
        result.dataverse_calls,
    )


def note_unreadable(deps: Container, parked: list[ParkedNotice]) -> None:
    """List the parked messages on the console's error list. The item is already safe in the
    parked store (``mdsync replay`` finds it there): a failed write here costs only the listing."""
    try:
        deps.operations.record_errors([failures.unreadable(item) for item in parked])
    except MdsyncError as exc:
        log.warning("%d unreadable message(s) not listed on the console: %s", len(parked), exc)
