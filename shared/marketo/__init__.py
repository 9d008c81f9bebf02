"""The Marketo Engage REST client (Lead Database, Activities, custom activities)."""

from shared.marketo.client import MarketoClient
from shared.marketo.models import (
    Activity,
    ActivityPage,
    CustomActivityResult,
    CustomActivityType,
    CustomActivityTypeSpec,
    FieldDescription,
    PushResult,
    Reason,
)

__all__ = [
    "Activity",
    "ActivityPage",
    "CustomActivityResult",
    "CustomActivityType",
    "CustomActivityTypeSpec",
    "FieldDescription",
    "MarketoClient",
    "PushResult",
    "Reason",
]
