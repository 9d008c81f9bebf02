"""Settings, read once from app settings (environment variables) or ``local.settings.json``.

Environment variables win over ``local.settings.json`` (its ``Values`` object, the file the
Functions tooling uses). A value that is set but invalid raises :class:`ConfigurationError` at
load, naming every faulty setting and every place that was looked in. A setting that is simply
not set is asked for only by what uses it (:meth:`Settings.marketo`, :meth:`Settings.dataverse`,
the inbound keys, the queue and state connections): ``mdsync log`` needs the state store, not
every secret of the app. ``docs/configuration.md`` documents each setting; keep the two in step.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shared.errors import ConfigurationError

LOCAL_SETTINGS_ENV = "MDSYNC_LOCAL_SETTINGS"
DEFAULT_LOCAL_SETTINGS = "local.settings.json"


class QueueBackend(StrEnum):
    SERVICEBUS = "servicebus"
    SQLITE = "sqlite"


class StateBackend(StrEnum):
    TABLE = "table"
    SQLITE = "sqlite"


class DataverseCredential(StrEnum):
    """How mdsync proves who it is to Dataverse (azure-identity credentials)."""

    MANAGED_IDENTITY = "managed_identity"  # Azure: no secret to store or rotate
    WORKLOAD_IDENTITY = "workload_identity"  # federated token file (AKS, other clouds' CI)
    CERTIFICATE = "certificate"  # an app registration's certificate
    CLIENT_SECRET = "client_secret"  # noqa: S105 - a name; an app registration's secret (local runs)
    AZURE_CLI = "azure_cli"  # your own `az login`: operator commands (setup, doctor) on your machine


@dataclass(frozen=True)
class MarketoAccess:
    """What the Marketo client needs, every piece present."""

    base_url: str  # no trailing slash
    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True)
class DataverseAccess:
    """What the Dataverse client and its credential need, checked for the chosen credential."""

    url: str  # the organization URL, no trailing slash
    credential: DataverseCredential
    authority_host: str
    tenant_id: str | None
    client_id: str | None
    client_secret: str | None = field(default=None, repr=False)
    certificate_path: Path | None = None
    certificate_password: str | None = field(default=None, repr=False)

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/data/v9.2"

    @property
    def scope(self) -> str:
        return f"{self.url}/.default"

    @property
    def authority(self) -> str:
        return f"{self.authority_host}/{self.tenant_id}"


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def local_settings_path() -> Path:
    return Path(os.environ.get(LOCAL_SETTINGS_ENV, DEFAULT_LOCAL_SETTINGS))


class LocalSettingsSource(PydanticBaseSettingsSource):
    """The ``Values`` object of ``local.settings.json``, as the Functions tooling reads it."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        path = local_settings_path()
        self.values: dict[str, str] = {}
        if path.is_file():
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise ConfigurationError(f"{path} is not valid JSON: {exc}") from exc
            values = document.get("Values", {}) if isinstance(document, dict) else {}
            if not isinstance(values, dict):
                raise ConfigurationError(f"{path}: 'Values' must be an object")
            self.values = {str(k): str(v) for k, v in values.items() if str(v) != ""}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        name = field.alias or field_name
        return self.values.get(name), name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for field_name, info in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(info, field_name)
            if value is not None:
                found[key] = value
        return found


class Settings(BaseSettings):
    """Every setting mdsync reads. Names are the app-setting names (case-sensitive in Azure)."""

    # An empty value is no value: Bicep writes "" for a setting that does not apply.
    model_config = SettingsConfigDict(
        populate_by_name=True, extra="ignore", frozen=True, env_ignore_empty=True
    )

    # --- Marketo -------------------------------------------------------------------------
    marketo_base_url: AnyHttpUrl | None = Field(default=None, alias="MARKETO_BASE_URL")
    marketo_client_id: str | None = Field(default=None, alias="MARKETO_CLIENT_ID", min_length=1)
    marketo_client_secret: SecretStr | None = Field(default=None, alias="MARKETO_CLIENT_SECRET")
    marketo_max_calls_per_20s: int = Field(default=80, alias="MARKETO_MAX_CALLS_PER_20S", ge=1, le=100)
    marketo_max_concurrency: int = Field(default=8, alias="MARKETO_MAX_CONCURRENCY", ge=1, le=10)
    # Of MARKETO_MAX_CALLS_PER_20S, the share reserved for the real-time flow step, so a sync
    # backlog never makes it wait (the worker gets the rest).
    marketo_flow_step_calls_per_20s: int = Field(
        default=20, alias="MARKETO_FLOW_STEP_CALLS_PER_20S", ge=1, le=99
    )
    # The worker's share is one budget for every instance, the rolling window in the state store
    # (shared/marketo/budget.py); off, each instance spends its share on its own.
    marketo_shared_rate: bool = Field(default=True, alias="MARKETO_SHARED_RATE")
    # Of MARKETO_MAX_CALLS_PER_20S, the initial sync's share (mdsync backfill): bulk jobs take a
    # few calls per 31-day window or 10 MB file, and live changes keep the rest.
    marketo_backfill_calls_per_20s: int = Field(
        default=10, alias="MARKETO_BACKFILL_CALLS_PER_20S", ge=1, le=98
    )
    # How stale the live sync's view of a backfill's reservation of that share may be (it reads
    # the record at most this often); a job waits this + one window before its first call.
    backfill_share_check_seconds: float = Field(
        default=5.0, alias="MDSYNC_BACKFILL_SHARE_CHECK_SECONDS", gt=0, le=60
    )
    # Unset: that check + Marketo's 20 s window + 1 s, the wait that keeps live + backfill within
    # the limit. Shorter only where nothing else spends the rate (the simulators, a quiet tenant).
    backfill_share_grace_seconds: float | None = Field(
        default=None, alias="MDSYNC_BACKFILL_SHARE_GRACE_SECONDS", ge=0, le=300
    )
    # How old the backfill's fence must be before its first range of writes: the longest a
    # live batch runs (host.json functionTimeout, 4 min) and a margin (shared/backfill/fence.py).
    backfill_fence_settle_seconds: float = Field(
        default=250.0, alias="MDSYNC_BACKFILL_FENCE_SETTLE_SECONDS", ge=0, le=3600
    )

    # --- Dataverse and Entra ID ------------------------------------------------------------
    dataverse_url: AnyHttpUrl | None = Field(default=None, alias="DATAVERSE_URL")
    # Unset: client_secret when DATAVERSE_CLIENT_SECRET is set, else managed_identity.
    dataverse_credential: DataverseCredential | None = Field(default=None, alias="DATAVERSE_CREDENTIAL")
    dataverse_tenant_id: str | None = Field(default=None, alias="DATAVERSE_TENANT_ID", min_length=1)
    # The app registration's client id; with a managed identity, a user-assigned identity's.
    dataverse_client_id: str | None = Field(default=None, alias="DATAVERSE_CLIENT_ID", min_length=1)
    dataverse_client_secret: SecretStr | None = Field(default=None, alias="DATAVERSE_CLIENT_SECRET")
    dataverse_certificate_path: Path | None = Field(default=None, alias="DATAVERSE_CLIENT_CERTIFICATE_PATH")
    dataverse_certificate_password: SecretStr | None = Field(
        default=None, alias="DATAVERSE_CLIENT_CERTIFICATE_PASSWORD"
    )
    dataverse_authority_host: AnyHttpUrl = Field(
        default=AnyHttpUrl("https://login.microsoftonline.com"), alias="DATAVERSE_AUTHORITY_HOST"
    )
    dataverse_max_concurrency: int = Field(default=16, alias="DATAVERSE_MAX_CONCURRENCY", ge=1, le=52)
    # The initial sync's requests in flight: its share of Dataverse's execution time (20 minutes
    # per 5 minutes per user), so the live sync's writes keep theirs.
    dataverse_backfill_concurrency: int = Field(
        default=2, alias="DATAVERSE_BACKFILL_CONCURRENCY", ge=1, le=52
    )

    # Extra CA bundle trusted for the local simulators only; production keeps the system store.
    extra_ca_file: Path | None = Field(default=None, alias="MDSYNC_CA_FILE")

    # --- Queue -----------------------------------------------------------------------------
    queue_backend: QueueBackend = Field(default=QueueBackend.SERVICEBUS, alias="MDSYNC_QUEUE_BACKEND")
    queue_name: str = Field(default="mdsync-notices", alias="SERVICEBUS_QUEUE_NAME", min_length=1)
    servicebus_connection_string: SecretStr | None = Field(default=None, alias="ServiceBusConnection")
    servicebus_namespace: str | None = Field(
        default=None, alias="ServiceBusConnection__fullyQualifiedNamespace"
    )
    max_delivery_count: int = Field(default=10, alias="MDSYNC_MAX_DELIVERY_COUNT", ge=1, le=2000)
    # Attempts of a notice whose sync hit transient faults before it is parked for replay.
    max_attempts: int = Field(default=8, alias="MDSYNC_MAX_ATTEMPTS", ge=1, le=100)
    # The backoff between those attempts: base doubling per attempt, capped (Retry-After wins).
    retry_base_seconds: float = Field(default=5.0, alias="MDSYNC_RETRY_BASE_SECONDS", gt=0, le=3600)
    retry_max_seconds: float = Field(default=900.0, alias="MDSYNC_RETRY_MAX_SECONDS", gt=0, le=86_400)
    # After writing Marketo values, when to look whether Marketo took them if no echo (Change
    # Data Value, read by the poller) confirmed them by then: a few poll intervals.
    confirm_seconds: int = Field(default=180, alias="MDSYNC_CONFIRM_SECONDS", ge=0, le=86_400)

    # --- The initial sync (mdsync backfill) in the function app -----------------------------------
    # Its own queue: a message advances the job by one step and schedules the next.
    backfill_queue_name: str = Field(default="mdsync-backfill", alias="BACKFILL_QUEUE_NAME", min_length=1)
    # How often a running bulk job at Marketo is asked for its status.
    backfill_poll_seconds: float = Field(default=30.0, alias="MDSYNC_BACKFILL_POLL_SECONDS", gt=0, le=600)
    # How long one step works before it hands on to the next message (well inside the lock).
    backfill_step_seconds: float = Field(default=120.0, alias="MDSYNC_BACKFILL_STEP_SECONDS", gt=0, le=240)

    # --- State store -----------------------------------------------------------------------
    state_backend: StateBackend = Field(default=StateBackend.TABLE, alias="MDSYNC_STATE_BACKEND")
    state_table_endpoint: str | None = Field(default=None, alias="STATE_TABLE_ENDPOINT")
    state_connection_string: SecretStr | None = Field(default=None, alias="STATE_CONNECTION_STRING")
    state_table_prefix: str = Field(
        default="mdsync", alias="STATE_TABLE_PREFIX", pattern=r"^[A-Za-z][A-Za-z0-9]{0,40}$"
    )
    sqlite_path: Path = Field(default=Path(".mdsync/mdsync.sqlite3"), alias="MDSYNC_SQLITE_PATH")
    # How long the sync log keeps an entry (the sync_log_retention timer, daily; Table Storage
    # drops whole days, so an entry stays up to a day longer there).
    sync_log_retention_days: int = Field(default=30, alias="SYNC_LOG_RETENTION_DAYS", ge=1, le=3650)

    # The doctor's checks on a background thread at a process's first invocation (shared/startup.py).
    startup_checks: bool = Field(default=True, alias="MDSYNC_STARTUP_CHECKS")

    # --- Sync behaviour ----------------------------------------------------------------------
    field_mapping_file: Path | None = Field(default=None, alias="MDSYNC_FIELD_MAPPING")

    # --- Inbound keys ----------------------------------------------------------------------
    # The HttpHeader secret configured on the Dataverse service endpoint.
    dynamics_webhook_header: str = Field(default="x-mdsync-key", alias="DYNAMICS_WEBHOOK_HEADER")
    dynamics_webhook_secret: SecretStr | None = Field(default=None, alias="DYNAMICS_WEBHOOK_SECRET")
    # The custom header Marketo's "Call Webhook" sends on the flow step.
    flow_step_header: str = Field(default="x-mdsync-key", alias="FLOW_STEP_HEADER")
    flow_step_secret: SecretStr | None = Field(default=None, alias="FLOW_STEP_SECRET")
    # The custom header Marketo's "Call Webhook" sends from the change campaign (marketo_change).
    marketo_webhook_header: str = Field(default="x-mdsync-key", alias="MARKETO_WEBHOOK_HEADER")
    marketo_webhook_secret: SecretStr | None = Field(default=None, alias="MARKETO_WEBHOOK_SECRET")

    # systemuserids of mdsync's own Dataverse application users (comma-separated): notices they
    # caused are marked so the worker can skip echoes cheaply. Correctness never depends on it.
    dynamics_sync_user_ids_raw: str = Field(default="", alias="DYNAMICS_SYNC_USER_IDS")
    # The service endpoint `mdsync dynamics register-webhook` registered: its steps are what
    # mdsync's own writes bypass (MSCRM.BypassBusinessLogicExecutionStepIds), unless turned off.
    dynamics_webhook_name: str = Field(default="mdsync", alias="DYNAMICS_WEBHOOK_NAME", min_length=1)
    dynamics_bypass_own_webhook: bool = Field(default=True, alias="DYNAMICS_BYPASS_OWN_WEBHOOK")

    # --- The operator console ---------------------------------------------------------------
    # The app role (Entra ID) a signed-in user needs for the console (docs/operations.md).
    console_role: str = Field(default="mdsync.operator", alias="MDSYNC_CONSOLE_ROLE", min_length=1)
    # Set to True by App Service when its authentication (Easy Auth) is on, and by the local
    # host, which plays that part: only then is the X-MS-CLIENT-PRINCIPAL header trusted.
    platform_auth_enabled: bool = Field(default=False, alias="WEBSITE_AUTH_ENABLED")
    # While paused, a held batch comes back after this long (shared/console/pause.py).
    pause_hold_seconds: int = Field(default=60, alias="MDSYNC_PAUSE_HOLD_SECONDS", ge=5, le=3600)
    # The instance's Marketo daily API quota (the console's "calls today" figure and alert).
    marketo_daily_quota: int = Field(default=50_000, alias="MARKETO_DAILY_QUOTA", ge=1)

    # --- The batching window (shared/pacing.py) -------------------------------------------------
    # Small batches wait for company when the day's Marketo spend runs ahead of its budget.
    batch_window: bool = Field(default=True, alias="MDSYNC_BATCH_WINDOW")
    # Marketo calls a day the worker and the poller may spend; unset: MARKETO_DAILY_QUOTA times
    # the sync's share of the rate, (MARKETO_MAX_CALLS_PER_20S - MARKETO_FLOW_STEP_CALLS_PER_20S) / 100.
    marketo_daily_budget: int | None = Field(default=None, alias="MDSYNC_MARKETO_DAILY_BUDGET", ge=1)
    # The longest a small batch waits (rounded down to 2 s times a power of two).
    batch_window_max_seconds: float = Field(
        default=512.0, alias="MDSYNC_BATCH_WINDOW_MAX_SECONDS", ge=4, le=3600
    )

    # --- Schedules (NCRONTAB, six fields) ------------------------------------------------------
    marketo_poll_schedule: str = Field(default="0 */1 * * * *", alias="MARKETO_POLL_SCHEDULE")
    dynamics_sweep_schedule: str = Field(default="0 */15 * * * *", alias="DYNAMICS_SWEEP_SCHEDULE")
    # The console's figures as metrics for Azure Monitor (the workbook and the alerts).
    metrics_schedule: str = Field(default="0 */5 * * * *", alias="MDSYNC_METRICS_SCHEDULE")
    # Where the very first poll starts (ISO 8601 with a zone); unset = from the first run on.
    marketo_poll_start: datetime | None = Field(default=None, alias="MARKETO_POLL_START")
    # Pages of Marketo activities one poll run reads at most (0: no cap; the run's time bounds it).
    marketo_poll_max_pages: int = Field(default=0, alias="MARKETO_POLL_MAX_PAGES", ge=0, le=100_000)
    # How long one poll run reads pages (it checkpoints after each): inside functionTimeout (4 min).
    marketo_poll_max_seconds: float = Field(default=180, alias="MARKETO_POLL_MAX_SECONDS", ge=5, le=3600)
    # Deletions are read on a poll run at most this often (0: every run).
    marketo_deletes_poll_seconds: int = Field(
        default=300, alias="MARKETO_DELETES_POLL_SECONDS", ge=0, le=86_400
    )

    @field_validator("marketo_poll_schedule", "dynamics_sweep_schedule", "metrics_schedule")
    @classmethod
    def _ncrontab(cls, value: str) -> str:
        if len(value.split()) != 6:
            raise ValueError(
                "must be an NCRONTAB expression with six fields (sec min hour day month weekday)"
            )
        return value

    @field_validator("marketo_poll_max_pages")
    @classmethod
    def _page_cap(cls, value: int) -> int:
        if 0 < value < 3:
            raise ValueError("must be 0 (no cap) or at least 3 (one each for changes, merges and deletions)")
        return value

    @field_validator("marketo_poll_start")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a time zone, e.g. 2026-11-20T00:00:00Z")
        return value

    @field_validator("extra_ca_file")
    @classmethod
    def _ca_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} does not exist (the simulators write it: run `mdsync simulate`)")
        return value

    @field_validator("dynamics_webhook_secret", "flow_step_secret", "marketo_webhook_secret")
    @classmethod
    def _strong_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @field_validator("marketo_base_url", "dataverse_url", "dataverse_authority_host")
    @classmethod
    def _https(cls, value: AnyHttpUrl | None) -> AnyHttpUrl | None:
        # Secrets and tokens travel to these hosts: plain HTTP only to this machine.
        if value is not None and value.scheme != "https" and not is_loopback(value.host):
            raise ValueError("must be an https:// URL (http:// is accepted for localhost only)")
        return value

    @field_validator("dataverse_certificate_path")
    @classmethod
    def _certificate_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} does not exist (a PEM or PKCS12 file with the private key)")
        return value

    @model_validator(mode="after")
    def _backends_have_connections(self) -> Settings:
        shares = self.marketo_flow_step_calls_per_20s + self.marketo_backfill_calls_per_20s
        if shares >= self.marketo_max_calls_per_20s:
            raise ValueError(
                "MARKETO_FLOW_STEP_CALLS_PER_20S + MARKETO_BACKFILL_CALLS_PER_20S must be smaller than "
                "MARKETO_MAX_CALLS_PER_20S (the sync worker gets the rest)"
            )
        if self.retry_max_seconds < self.retry_base_seconds:
            raise ValueError("MDSYNC_RETRY_MAX_SECONDS must not be smaller than MDSYNC_RETRY_BASE_SECONDS")
        return self

    @property
    def sync_daily_budget(self) -> int:
        """The Marketo calls a day the worker and the poller may spend (the batching window's)."""
        if self.marketo_daily_budget is not None:
            return self.marketo_daily_budget
        share = self.marketo_max_calls_per_20s - self.marketo_flow_step_calls_per_20s
        return self.marketo_daily_quota * share // 100

    @property
    def dynamics_sync_user_ids(self) -> frozenset[str]:
        return frozenset(u.strip().lower() for u in self.dynamics_sync_user_ids_raw.split(",") if u.strip())

    # --- what each part of mdsync needs: asked for on use, so a command needs only its own --------

    def marketo(self) -> MarketoAccess:
        """The Marketo connection; ConfigurationError names whatever is not set."""
        url, client_id, secret = self.marketo_base_url, self.marketo_client_id, self.marketo_client_secret
        if url is None or client_id is None or secret is None:
            raise _missing(
                "the Marketo client",
                MARKETO_BASE_URL=url,
                MARKETO_CLIENT_ID=client_id,
                MARKETO_CLIENT_SECRET=secret,
            )
        return MarketoAccess(str(url).rstrip("/"), client_id, secret.get_secret_value())

    @property
    def dataverse_credential_kind(self) -> DataverseCredential:
        if self.dataverse_credential is not None:
            return self.dataverse_credential
        if self.dataverse_client_secret is not None:
            return DataverseCredential.CLIENT_SECRET
        return DataverseCredential.MANAGED_IDENTITY

    def dataverse(self) -> DataverseAccess:
        """The Dataverse connection with the settings its credential needs (see
        docs/configuration.md); ConfigurationError names whatever is not set."""
        kind = self.dataverse_credential_kind
        needed: dict[str, object] = {"DATAVERSE_URL": self.dataverse_url}
        if kind is DataverseCredential.CLIENT_SECRET:
            needed.update(
                DATAVERSE_TENANT_ID=self.dataverse_tenant_id,
                DATAVERSE_CLIENT_ID=self.dataverse_client_id,
                DATAVERSE_CLIENT_SECRET=self.dataverse_client_secret,
            )
        elif kind is DataverseCredential.CERTIFICATE:
            needed.update(
                DATAVERSE_TENANT_ID=self.dataverse_tenant_id,
                DATAVERSE_CLIENT_ID=self.dataverse_client_id,
                DATAVERSE_CLIENT_CERTIFICATE_PATH=self.dataverse_certificate_path,
            )
        if any(value is None for value in needed.values()):
            raise _missing(f"the Dataverse client with DATAVERSE_CREDENTIAL={kind.value}", **needed)
        secret, password = self.dataverse_client_secret, self.dataverse_certificate_password
        return DataverseAccess(
            url=str(self.dataverse_url).rstrip("/"),
            credential=kind,
            authority_host=str(self.dataverse_authority_host).rstrip("/"),
            tenant_id=self.dataverse_tenant_id,
            client_id=self.dataverse_client_id,
            client_secret=secret.get_secret_value() if secret else None,
            certificate_path=self.dataverse_certificate_path,
            certificate_password=password.get_secret_value() if password else None,
        )

    def dynamics_webhook_key(self) -> str:
        if self.dynamics_webhook_secret is None:
            raise _missing("the Dataverse webhook", DYNAMICS_WEBHOOK_SECRET=None)
        return self.dynamics_webhook_secret.get_secret_value()

    def marketo_webhook_key(self) -> str:
        if self.marketo_webhook_secret is None:
            raise _missing("the Marketo change campaign's webhook", MARKETO_WEBHOOK_SECRET=None)
        return self.marketo_webhook_secret.get_secret_value()

    def flow_step_key(self) -> str:
        if self.flow_step_secret is None:
            raise _missing("the flow step", FLOW_STEP_SECRET=None)
        return self.flow_step_secret.get_secret_value()

    def require_queue_connection(self) -> None:
        if self.queue_backend is QueueBackend.SERVICEBUS and not (
            self.servicebus_connection_string or self.servicebus_namespace
        ):
            raise ConfigurationError(
                "MDSYNC_QUEUE_BACKEND=servicebus needs ServiceBusConnection (a connection string) or "
                f"ServiceBusConnection__fullyQualifiedNamespace (identity-based); looked in: {_where()}",
                settings=("ServiceBusConnection__fullyQualifiedNamespace",),
            )

    def require_state_connection(self) -> None:
        if self.state_backend is StateBackend.TABLE and not (
            self.state_connection_string or self.state_table_endpoint
        ):
            raise ConfigurationError(
                "MDSYNC_STATE_BACKEND=table needs STATE_TABLE_ENDPOINT (identity-based) or "
                f"STATE_CONNECTION_STRING; looked in: {_where()}",
                settings=("STATE_TABLE_ENDPOINT",),
            )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, LocalSettingsSource(settings_cls))


def _where() -> str:
    return f"environment variables, then {local_settings_path().resolve()} ('Values')"


def _missing(purpose: str, **values: object) -> ConfigurationError:
    """The error naming which of ``values`` are not set."""
    missing = tuple(name for name, value in values.items() if value is None)
    verb = "is" if len(missing) == 1 else "are"
    return ConfigurationError(
        f"{', '.join(missing)} {verb} not set (needed by {purpose}); looked in: {_where()}",
        settings=missing,
    )


def _describe(error: PydanticValidationError) -> tuple[str, tuple[str, ...]]:
    lines, names = [], []
    for problem in error.errors():
        name = ".".join(str(part) for part in problem["loc"]) or "(settings)"
        info = Settings.model_fields.get(name)
        setting = (info.alias if info and info.alias else name) if problem["loc"] else "(settings)"
        names.append(setting)
        if problem["type"] == "missing":
            lines.append(f"  {setting}: missing")
        else:
            lines.append(f"  {setting}: {problem['msg']}")
    text = "invalid configuration:\n" + "\n".join(lines) + f"\nlooked in: {_where()}"
    return text, tuple(n for n in names if n != "(settings)")


def load_settings(**overrides: Any) -> Settings:
    """Read and validate every setting that is set; raise ConfigurationError naming each faulty one."""
    try:
        return Settings(**overrides)
    except PydanticValidationError as exc:
        message, names = _describe(exc)
        raise ConfigurationError(message, settings=names) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read on first use (never at import: that is cold-start time)."""
    return load_settings()
