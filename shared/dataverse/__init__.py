"""The Dataverse (Dynamics 365) Web API client: tokens, OData literals, reads, writes, webhooks.

Import from the modules (``shared.dataverse.client``, ``shared.dataverse.models``, ...).
"""
