"""A local Dataverse Web API v9.2 simulator (see simulators/README.md, "Dataverse")."""

from simulators.dataverse.app import DataverseSim, DataverseState, create_app
from simulators.dataverse.config import DataverseSimConfig, HumanUser, TokenVerifier
from simulators.dataverse.limits import ServiceLimits

__all__ = [
    "DataverseSim",
    "DataverseSimConfig",
    "DataverseState",
    "HumanUser",
    "ServiceLimits",
    "TokenVerifier",
    "create_app",
]
