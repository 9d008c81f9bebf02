"""The Dataverse (Dynamics 365) Web API client: tokens, OData literals, reads, writes, webhooks."""

from shared.dataverse.auth import CredentialTokens, TokenProvider
from shared.dataverse.client import DataverseClient
from shared.dataverse.models import (
    AttributeMetadata,
    BatchRequest,
    BatchResponse,
    DeltaPage,
    EntityMetadata,
    StepSpec,
    TableInfo,
    WebhookRegistration,
)

__all__ = [
    "AttributeMetadata",
    "BatchRequest",
    "BatchResponse",
    "CredentialTokens",
    "DataverseClient",
    "DeltaPage",
    "EntityMetadata",
    "StepSpec",
    "TableInfo",
    "TokenProvider",
    "WebhookRegistration",
]
