"""Access tokens for Dataverse from an azure-identity credential, refreshable on 401.

Which credential is a setting (``DATAVERSE_CREDENTIAL``, docs/configuration.md):

* ``managed_identity``: the Function App's identity (user-assigned when DATAVERSE_CLIENT_ID
  names it). No secret exists to store or rotate; Dataverse knows the identity as an
  application user (docs/deploying.md).
* ``workload_identity``: a federated token file (``AZURE_FEDERATED_TOKEN_FILE``), for hosts
  outside Azure Functions that support workload identity federation.
* ``certificate``: an app registration and its certificate.
* ``client_secret``: an app registration and its secret; what local runs against the Entra ID
  simulator use (its authority is the simulator, reached over HTTPS with the test CA).
* ``azure_cli``: the signed-in user of the Azure CLI (``az login``), for an administrator running
  ``mdsync dynamics setup``, ``register-webhook`` or ``doctor`` from their own machine.

:class:`CredentialTokens` is itself an azure-core ``TokenCredential``: the Dataverse client's
``BearerTokenCredentialPolicy`` asks it for tokens. azure-identity caches tokens inside the
credential and renews them before they expire. When Dataverse still refuses a token (revoked,
or the clocks disagree), the policy calls :meth:`~CredentialTokens.invalidate`, which replaces
the credential, so the next token comes from Entra ID instead of the cache.
Errors are mdsync's: a refusal that fixing a setting cures is a ConfigurationError naming it;
an unreachable or busy token endpoint is a ServiceUnavailableError of service ``entra``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.config import DataverseAccess, DataverseCredential, is_loopback
from shared.errors import ConfigurationError, RateLimitedError, ServiceUnavailableError

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, TokenCredential

log = logging.getLogger(__name__)

# Entra answers that mean the app registration or the settings are wrong, not a passing fault.
_CONFIGURATION_ERRORS = (
    "invalid_client",
    "unauthorized_client",
    "invalid_scope",
    "invalid_resource",
    "invalid_request",
    "invalid_tenant",
    "unsupported_grant_type",
)
_AADSTS = re.compile(r"AADSTS\d+")


class CredentialTokens:
    """An azure-core TokenCredential: tokens for ``scope`` (``{org}/.default``, unless the caller
    names scopes) from an azure-identity credential, with mdsync's errors.

    ``make_credential`` builds the credential; it is called again by :meth:`invalidate`, since a
    credential's own cache would hand back the token Dataverse has just refused.
    ``fix`` names the settings to check when Entra ID refuses the credential."""

    def __init__(
        self,
        make_credential: Callable[[], TokenCredential],
        scope: str,
        *,
        fix: tuple[str, ...] = ("DATAVERSE_CREDENTIAL",),
    ) -> None:
        self.scope = scope
        self.fix = fix
        self._make = make_credential
        self._lock = threading.Lock()
        self._credential: TokenCredential | None = None

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        """A token valid now (from the credential's cache when it can)."""
        from azure.core.exceptions import AzureError, ClientAuthenticationError

        with self._lock:
            if self._credential is None:
                self._credential = self._make()
            credential = self._credential
        try:
            return credential.get_token(*(scopes or (self.scope,)), claims=claims, tenant_id=tenant_id)
        except ClientAuthenticationError as exc:
            raise self._refused(exc) from None
        except AzureError as exc:
            raise ServiceUnavailableError(
                f"token request failed: {type(exc).__name__}", service="entra"
            ) from exc
        except ValueError as exc:
            # The credential's options were refused before a request was sent (bad authority).
            raise ConfigurationError(
                f"Dataverse credential not usable: {exc} (check {', '.join(self.fix)})", settings=self.fix
            ) from None

    def invalidate(self) -> None:
        with self._lock:
            old, self._credential = self._credential, None
        _close(old)
        log.info("dataverse access token dropped; the next call fetches a new one")

    def close(self) -> None:
        self.invalidate()

    def _refused(self, exc: Exception) -> Exception:
        from azure.core.exceptions import ServiceRequestError, ServiceResponseError

        if isinstance(exc.__cause__, ServiceRequestError | ServiceResponseError):
            # Wrapped by azure-identity: the token endpoint did not answer.
            return ServiceUnavailableError(f"token endpoint unreachable: {exc.__cause__}", service="entra")
        text = str(getattr(exc, "message", None) or exc)
        first = text.split(" Trace ID:", 1)[0].strip().splitlines()[0] if text.strip() else type(exc).__name__
        code = _AADSTS.search(text) or re.search(r"\b\w+_\w+\b", text)
        lowered = text.lower()
        status = re.search(r"HTTP Error: (\d{3})", text)
        if status and status.group(1) == "429":
            return RateLimitedError(first, service="entra", status=429)
        if status and status.group(1).startswith("5"):
            return ServiceUnavailableError(first, service="entra", status=int(status.group(1)))
        if "temporarily_unavailable" in lowered or "server_error" in lowered:
            return ServiceUnavailableError(first, service="entra", code=code.group(0) if code else None)
        if "throttl" in lowered or "too_many_requests" in lowered:
            return RateLimitedError(first, service="entra", code=code.group(0) if code else None)
        if any(marker in lowered for marker in _CONFIGURATION_ERRORS) or "aadsts" in lowered:
            return ConfigurationError(
                f"Entra ID refused the Dataverse token request: {first} (check {', '.join(self.fix)})",
                settings=self.fix,
            )
        # CredentialUnavailableError and the like: this machine cannot use that credential.
        return ConfigurationError(
            f"no Dataverse token: {first} (check {', '.join(self.fix)})", settings=self.fix
        )


def _close(credential: Any) -> None:
    close = getattr(credential, "close", None)
    if callable(close):
        close()


def credential_factory(
    access: DataverseAccess, *, ca_file: Path | None = None
) -> Callable[[], TokenCredential]:
    """How to build the credential ``access`` asks for. ``ca_file`` is the extra CA the local
    simulators use; a loopback authority (the Entra ID simulator) skips instance discovery,
    which would ask login.microsoftonline.com about it."""
    # One retry policy per client: the Dataverse transport retries a failed token request within
    # its budget (service "entra"), so the credential's own pipeline does not retry as well.
    options: dict[str, Any] = {"retry_total": 0}
    if ca_file is not None:
        options["connection_verify"] = str(ca_file)
    host = access.authority_host.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
    if is_loopback(host):
        options["disable_instance_discovery"] = True

    def build() -> TokenCredential:
        from azure import identity

        kind = access.credential
        # Settings.dataverse() checked that the chosen credential has what it needs.
        tenant, client = str(access.tenant_id), str(access.client_id)
        if kind is DataverseCredential.CLIENT_SECRET:
            return identity.ClientSecretCredential(
                tenant, client, str(access.client_secret), authority=access.authority_host, **options
            )
        if kind is DataverseCredential.CERTIFICATE:
            return identity.CertificateCredential(
                tenant,
                client,
                certificate_path=str(access.certificate_path),
                password=access.certificate_password,
                authority=access.authority_host,
                **options,
            )
        if kind is DataverseCredential.WORKLOAD_IDENTITY:
            # Tenant, client id and token file default to AZURE_TENANT_ID, AZURE_CLIENT_ID and
            # AZURE_FEDERATED_TOKEN_FILE, as the workload identity webhook sets them.
            return identity.WorkloadIdentityCredential(
                tenant_id=access.tenant_id,
                client_id=access.client_id,
                authority=access.authority_host,
                **options,
            )
        if kind is DataverseCredential.AZURE_CLI:
            return identity.AzureCliCredential(tenant_id=access.tenant_id or "")
        # The managed identity endpoint keeps azure-identity's own retries (IMDS has its rules).
        return identity.ManagedIdentityCredential(client_id=access.client_id)

    return build


def dataverse_tokens(access: DataverseAccess, *, ca_file: Path | None = None) -> CredentialTokens:
    """The token provider for the settings' Dataverse credential."""
    fix = {
        DataverseCredential.CLIENT_SECRET: (
            "DATAVERSE_CLIENT_SECRET",
            "DATAVERSE_CLIENT_ID",
            "DATAVERSE_TENANT_ID",
        ),
        DataverseCredential.CERTIFICATE: (
            "DATAVERSE_CLIENT_CERTIFICATE_PATH",
            "DATAVERSE_CLIENT_ID",
            "DATAVERSE_TENANT_ID",
        ),
        DataverseCredential.WORKLOAD_IDENTITY: (
            "AZURE_FEDERATED_TOKEN_FILE",
            "AZURE_CLIENT_ID",
            "AZURE_TENANT_ID",
        ),
        # managed_identity works only where Azure provides one (the Function App, a VM).
        DataverseCredential.MANAGED_IDENTITY: ("DATAVERSE_CREDENTIAL", "DATAVERSE_CLIENT_ID"),
        DataverseCredential.AZURE_CLI: ("DATAVERSE_CREDENTIAL", "DATAVERSE_TENANT_ID"),
    }[access.credential]
    return CredentialTokens(credential_factory(access, ca_file=ca_file), access.scope, fix=fix)
