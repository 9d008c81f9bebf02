"""The sync worker, triggered by batches of notices from the queue (cardinality many)."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.adapters.messages import read_messages
from shared.bootstrap import container

log = logging.getLogger(__name__)
bp = func.Blueprint()


@bp.function_name("sync_worker")
@bp.service_bus_queue_trigger(
    arg_name="messages",
    queue_name="%SERVICEBUS_QUEUE_NAME%",
    connection="ServiceBusConnection",
    cardinality="many",
)
def sync_worker(messages: list[func.ServiceBusMessage]) -> None:
    deps = container()
    notices, unreadable = read_messages(messages)
    if unreadable:
        # Kept with its raw body for `mdsync replay`; if that write fails, this raises and the
        # host abandons the batch: nothing is dropped.
        deps.state.park(unreadable)
        for item in unreadable:
            log.error("parked unreadable message %s: %s", item.dedup_id, item.reason)
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
