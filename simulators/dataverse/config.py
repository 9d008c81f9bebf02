"""Configuration of one Dataverse simulator instance."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from simulators.dataverse.limits import ServiceLimits
from simulators.entra import DEFAULT_TENANT, TokenClaims

DEFAULT_HUMAN_USER_ID = "5e0f2c3a-8b1d-4f6e-9a7c-2d4b6f8a0c1e"


@dataclass(frozen=True)
class HumanUser:
    """A licensed (non-application) user: admin calls "as" this user look like a salesperson."""

    systemuserid: str
    fullname: str


class TokenVerifier(Protocol):
    """What the simulator needs from Entra ID: :class:`simulators.entra.EntraSim` is one."""

    def verify(self, token: str, *, audience: str) -> TokenClaims: ...


@dataclass
class DataverseSimConfig:
    # The organization URL: token audience and x-ms-dynamics-organization. None = the URL the
    # simulator is reached at (https://localhost:<port>), which is what a local client uses.
    org_url: str | None = None
    # Each simulator instance is a new organization (WhoAmI's OrganizationId), as a restarted
    # simulator holds none of the old one's rows: state kept from another run is detectable.
    organization_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    organization_name: str = "unq6042beb1a93aef118e4b00224802c"
    business_unit_id: str = "a3c20b02-4e38-ef11-a315-000d3a5a54dc"
    tenant_id: str = DEFAULT_TENANT
    users: tuple[HumanUser, ...] = (HumanUser(DEFAULT_HUMAN_USER_ID, "Jane Doe"),)
    limits: ServiceLimits = field(default_factory=ServiceLimits)
    # Tables offering CreateMultiple/UpdateMultiple/UpsertMultiple (probe: sdkmessagefilters).
    bulk_tables: tuple[str, ...] = ("lead", "contact", "account")
    # Extra CA trusted by outbound webhook calls (a local receiver's test CA).
    webhook_ca_file: Path | None = None
    webhook_timeout: float = 60.0
    webhook_size_limit: int = 256 * 1024
    # True: lead and contact already carry what `mdsync dynamics setup` creates (the columns,
    # the alternate key, the mdsync publisher and solution); False: a fresh organization.
    provisioned: bool = True
    # Seconds the system job takes to build a new alternate key's index (Pending, then Active).
    key_activation_seconds: float = 0.2
    # BypassBusinessLogicExecutionStepIdsLimit (OrgDbOrgSettings): step ids one request may name.
    bypass_step_ids_limit: int = 3
    # The Default Publisher's customization prefix (recent organizations have "cr" + 3 chars).
    default_publisher_prefix: str = "new"
