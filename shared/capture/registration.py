"""The Dataverse webhook steps mdsync needs, derived from the field mapping.

Per synced table: Create (post-image), Update filtered on the mapped columns and ``statecode``
(pre- and post-image, so a notice carries old and new values; a lead's qualification and a
merged record's deactivation show as a state change), Delete (pre-image) and Merge (the record
merged away moves its person to the master), all asynchronous post-operation steps.
``mdsync dynamics register-webhook`` and the demo register exactly these; :func:`steps_markdown`
prints them for an admin registering by hand (``mdsync dynamics webhook-steps``), and
docs/dataverse-webhook.md carries that table for the default mapping.
"""

from __future__ import annotations

from shared.dataverse.models import StepSpec
from shared.mapping import FieldMapping


def webhook_steps(mapping: FieldMapping) -> list[StepSpec]:
    steps = []
    for entity in ("lead", "contact"):
        columns = tuple(mapping.dynamics_columns(entity))
        images = tuple(sorted({*columns, "emailaddress1"}))
        # A lead's qualification, a merged record's deactivation: an Update of statecode.
        watched = tuple(sorted({*columns, "statecode"}))
        create_image = tuple(sorted({*images, "originatingleadid"})) if entity == "contact" else images
        steps += [
            StepSpec(entity, "Create", post_image=create_image),
            StepSpec(entity, "Update", filtering_attributes=watched, pre_image=images, post_image=images),
            StepSpec(entity, "Delete", pre_image=images),
            StepSpec(entity, "Merge"),
        ]
    return steps


def steps_markdown(steps: list[StepSpec]) -> str:
    """The steps as the Markdown table docs/dataverse-webhook.md shows (Dataverse allows no
    pre-image on Create and no post-image on Delete, so none is listed)."""

    def columns(names: tuple[str, ...] | None) -> str:
        return ", ".join(f"`{n}`" for n in names) if names else "-"

    rows = [
        "| Message | Table | Filtering attributes | `PreImage` columns | `PostImage` columns |",
        "| --- | --- | --- | --- | --- |",
    ]
    for step in steps:
        pre = None if step.message == "Create" else step.pre_image
        post = None if step.message == "Delete" else step.post_image
        filtering = step.filtering_attributes if step.message == "Update" else None
        rows.append(
            f"| {step.message} | {step.entity} | {columns(filtering)} | {columns(pre)} | {columns(post)} |"
        )
    return "\n".join(rows)
