"""Registering mdsync's webhook the documented way: a service endpoint (contract 8, HttpHeader
auth), one async post-operation step per message and table, and the steps' entity images.

Registration is idempotent by name: an existing endpoint of that name, its steps and images are
removed first, so re-running the demo or a deployment script never leaves duplicates behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING

from shared.dataverse import odata
from shared.dataverse.models import StepSpec, WebhookRegistration

if TYPE_CHECKING:
    from shared.dataverse.client import DataverseClient

CONTRACT_WEBHOOK = 8
AUTH_HTTP_HEADER = 5
MESSAGE_FORMAT_JSON = 2


def settings_xml(values: Mapping[str, str]) -> str:
    """``<settings><setting name="k" value="v" /></settings>``: the HttpHeader authvalue."""
    items = "".join(
        f'<setting name="{escape(k, quote=True)}" value="{escape(v, quote=True)}" />'
        for k, v in values.items()
    )
    return f"<settings>{items}</settings>"


def unregister(client: DataverseClient, name: str) -> int:
    """Delete the endpoint called ``name`` with its steps and images; returns endpoints removed."""
    endpoints = list(
        client.query("serviceendpoints", select=["serviceendpointid"], filter=odata.eq("name", name))
    )
    for endpoint in endpoints:
        endpoint_id = str(endpoint["serviceendpointid"])
        steps = client.query(
            "sdkmessageprocessingsteps",
            select=["sdkmessageprocessingstepid"],
            filter=odata.eq("_eventhandler_value", uuid.UUID(endpoint_id)),
        )
        for step in list(steps):
            step_id = str(step["sdkmessageprocessingstepid"])
            images = client.query(
                "sdkmessageprocessingstepimages",
                select=["sdkmessageprocessingstepimageid"],
                filter=odata.eq("_sdkmessageprocessingstepid_value", uuid.UUID(step_id)),
            )
            for image in list(images):
                client.delete("sdkmessageprocessingstepimages", str(image["sdkmessageprocessingstepimageid"]))
            client.delete("sdkmessageprocessingsteps", step_id)
        client.delete("serviceendpoints", endpoint_id)
    return len(endpoints)


def _message_ids(client: DataverseClient, names: set[str]) -> dict[str, str]:
    rows = client.query(
        "sdkmessages", select=["sdkmessageid", "name"], filter=odata.in_("name", sorted(names))
    )
    return {str(r["name"]): str(r["sdkmessageid"]) for r in rows}


def _filter_id(client: DataverseClient, message_id: str, entity: str) -> str:
    clause = odata.and_(
        odata.eq("primaryobjecttypecode", entity), odata.eq("_sdkmessageid_value", uuid.UUID(message_id))
    )
    for row in client.query("sdkmessagefilters", select=["sdkmessagefilterid"], filter=clause, top=1):
        return str(row["sdkmessagefilterid"])
    raise ValueError(f"no sdkmessagefilter for {entity}: the table does not support this message")


def register(
    client: DataverseClient,
    name: str,
    url: str,
    headers: Mapping[str, str],
    steps: Sequence[StepSpec],
) -> WebhookRegistration:
    unregister(client, name)
    endpoint = client.create(
        "serviceendpoints",
        {
            "name": name,
            "url": url,
            "contract": CONTRACT_WEBHOOK,
            "authtype": AUTH_HTTP_HEADER,
            "authvalue": settings_xml(headers),
            "messageformat": MESSAGE_FORMAT_JSON,
        },
        select=["serviceendpointid"],
    )
    endpoint_id = str(endpoint["serviceendpointid"])
    messages = _message_ids(client, {s.message for s in steps})
    step_ids: list[str] = []
    image_ids: list[str] = []
    for spec in steps:
        message_id = messages[spec.message]
        filter_id = _filter_id(client, message_id, spec.entity)
        step = client.create(
            "sdkmessageprocessingsteps",
            {
                "name": f"{name}: {spec.message} of {spec.entity}",
                "stage": spec.stage,
                "mode": spec.mode,
                "rank": spec.rank,
                "supporteddeployment": 0,
                "asyncautodelete": spec.mode == 1,
                "filteringattributes": ",".join(spec.filtering_attributes) or None,
                "eventhandler_serviceendpoint@odata.bind": f"/serviceendpoints({endpoint_id})",
                "sdkmessageid@odata.bind": f"/sdkmessages({message_id})",
                "sdkmessagefilterid@odata.bind": f"/sdkmessagefilters({filter_id})",
            },
            select=["sdkmessageprocessingstepid"],
        )
        step_id = str(step["sdkmessageprocessingstepid"])
        step_ids.append(step_id)
        images = (("PreImage", 0, spec.pre_image), ("PostImage", 1, spec.post_image))
        for alias, image_type, columns in images:
            # No pre-image exists on Create, no post-image on Delete.
            if columns is None or (spec.message, image_type) in (("Create", 0), ("Delete", 1)):
                continue
            image = client.create(
                "sdkmessageprocessingstepimages",
                {
                    "name": alias,
                    "entityalias": alias,
                    "imagetype": image_type,
                    "messagepropertyname": "Target",
                    "attributes": ",".join(columns) or None,
                    "sdkmessageprocessingstepid@odata.bind": f"/sdkmessageprocessingsteps({step_id})",
                },
                select=["sdkmessageprocessingstepimageid"],
            )
            image_ids.append(str(image["sdkmessageprocessingstepimageid"]))
    return WebhookRegistration(name, endpoint_id, tuple(step_ids), tuple(image_ids))
