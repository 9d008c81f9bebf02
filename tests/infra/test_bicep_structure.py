"""Structural checks of infra/ that need no checkov: the properties mdsync relies on, and that
the app settings the Bicep writes are the ones shared/config.py reads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, cast, get_args

import pytest
import yaml
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from shared.config import Settings
from tests.infra.bicep_text import (
    INFRA,
    REPO,
    bicep_files,
    block,
    inline_skips,
    name_values,
    object_entries,
    params,
    prop,
    read,
    resource,
)

# App settings the Bicep writes that mdsync's Settings does not read: they configure the
# platform. docs/deploying.md ("App settings") explains each one.
PLATFORM_SETTINGS = {
    "AzureWebJobsStorage__accountName": "Functions host storage, identity-based",
    "AzureWebJobsStorage__credential": "Functions host storage, identity-based",
    "AzureWebJobsStorage__clientId": "Functions host storage, identity-based",
    "ServiceBusConnection__credential": "Service Bus trigger connection, identity-based",
    "ServiceBusConnection__clientId": "Service Bus trigger connection, identity-based",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "telemetry destination",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "telemetry with Entra ID (local auth is off)",
    "AZURE_CLIENT_ID": "azure-identity picks the user-assigned identity",
}

# App settings that other hosting plans use and Flex Consumption rejects or ignores.
FLEX_FORBIDDEN_SETTINGS = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
    "WEBSITE_TIME_ZONE",
    "FUNCTIONS_WORKER_PROCESS_COUNT",
}

ROLE_IDS = {
    "Azure Service Bus Data Sender": "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39",
    "Azure Service Bus Data Receiver": "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0",
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
}


def _app_settings() -> dict[str, str]:
    """Every setting the Bicep may write: the base list and the Dataverse secret's."""
    text = read("app/api.bicep")
    assert "var appSettings = concat(baseSettings, dataverseSecretSettings)" in text
    settings = name_values(block(text, r"^var baseSettings = \["))
    settings.update(name_values(block(text, r"^var dataverseSecretSettings = .+\? \[")))
    return settings


def _settings_aliases() -> dict[str, FieldInfo]:
    return {field.alias: field for field in Settings.model_fields.values() if field.alias}


def _deploying_doc() -> str:
    return (REPO / "docs" / "deploying.md").read_text(encoding="utf-8")


def test_queue_has_duplicate_detection_and_dead_lettering() -> None:
    text = read("core/servicebus.bicep")
    queue = resource(text, "queue")
    assert prop(queue, "requiresDuplicateDetection") == "true"
    assert prop(queue, "duplicateDetectionHistoryTimeWindow") == "'PT10M'"
    assert prop(queue, "deadLetteringOnMessageExpiration") == "true"
    assert prop(queue, "requiresSession") == "false"
    assert prop(queue, "lockDuration") == "'PT5M'"
    assert prop(queue, "maxDeliveryCount") == "maxDeliveryCount"
    assert params(text)["maxDeliveryCount"] == "10"
    assert params(text)["queueName"] == "'mdsync-notices'"
    namespace = resource(text, "namespace")
    assert prop(block(namespace, r"sku: \{"), "name") == "'Standard'"
    assert prop(namespace, "disableLocalAuth") == "true"
    assert prop(namespace, "minimumTlsVersion") == "'1.2'"


def test_queue_and_app_share_one_max_delivery_count() -> None:
    main = read("main.bicep")
    # The queue's maxDeliveryCount and MDSYNC_MAX_DELIVERY_COUNT must agree, so both modules
    # receive the same main.bicep parameter.
    for symbol in ("serviceBus", "api"):
        module = block(main, rf"^module {symbol} '[^']+'\s*=\s*\{{")
        assert prop(module, "maxDeliveryCount") == "maxDeliveryCount", symbol
    assert _app_settings()["MDSYNC_MAX_DELIVERY_COUNT"] == "string(maxDeliveryCount)"


def test_storage_disallows_shared_keys_and_anonymous_access() -> None:
    account = resource(read("core/storage.bicep"), "account")
    assert prop(account, "kind") == "'StorageV2'"
    assert prop(account, "allowSharedKeyAccess") == "false"
    assert prop(account, "allowBlobPublicAccess") == "false"
    assert prop(account, "minimumTlsVersion") == "'TLS1_2'"
    assert prop(account, "supportsHttpsTrafficOnly") == "true"
    container = resource(read("core/storage.bicep"), "deploymentContainer")
    assert prop(container, "publicAccess") == "'None'"


def test_key_vault_uses_rbac_soft_delete_and_purge_protection() -> None:
    vault = resource(read("core/keyvault.bicep"), "vault")
    assert prop(vault, "enableRbacAuthorization") == "true"
    assert prop(vault, "enableSoftDelete") == "true"
    assert prop(vault, "enablePurgeProtection") == "true"
    text = read("core/keyvault.bicep")
    names = object_entries(block(text, r"^var secretNames = \{"))
    assert set(names.values()) == {
        "'marketo-client-secret'",
        "'dataverse-client-secret'",
        "'dynamics-webhook-secret'",
        "'flow-step-secret'",
    }
    for key in names:
        assert text.count(f"secretNames.{key}") == 2, f"secret {key}: one resource, one output URI"


def test_app_settings_are_read_by_the_app_or_documented_platform_settings() -> None:
    aliases = _settings_aliases()
    unknown = sorted(set(_app_settings()) - set(aliases) - set(PLATFORM_SETTINGS))
    assert not unknown, f"app settings neither in shared/config.py Settings nor platform: {unknown}"


@pytest.mark.parametrize("credential", ["managed_identity", "client_secret"])
def test_every_setting_the_app_uses_in_azure_is_provided(
    credential: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Settings built from what the Bicep writes (a placeholder for each expression) satisfy
    everything the functions ask for, with either Dataverse credential."""
    written = {name: _placeholder(name, value) for name, value in _app_settings().items()}
    written["DATAVERSE_CREDENTIAL"] = credential
    if credential == "managed_identity":
        written.pop("DATAVERSE_CLIENT_SECRET")
    for alias in _settings_aliases():
        monkeypatch.delenv(alias, raising=False)
    monkeypatch.setenv("MDSYNC_LOCAL_SETTINGS", str(tmp_path / "none.json"))
    settings = cast(Any, Settings)(**written)  # aliases as keywords, as the environment gives them
    settings.marketo()
    access = settings.dataverse()
    assert access.credential.value == credential
    assert access.client_id  # the user-assigned identity's or the app registration's
    settings.dynamics_webhook_key()
    settings.flow_step_key()
    settings.require_queue_connection()
    settings.require_state_connection()


def _placeholder(name: str, value: str) -> str:
    if value.startswith("'") and "${" not in value:
        return value.strip("'")
    if name.endswith("URL"):
        return "https://placeholder.example"
    if "SCHEDULE" in name:
        return "0 */5 * * * *"
    if "COUNT" in name or "QUOTA" in name:
        return "10"
    return "placeholder-value-of-32-characters"


def test_the_dataverse_secret_is_written_only_for_an_app_registration() -> None:
    text = read("app/api.bicep")
    assert "var dataverseSecretSettings = dataverseCredential == 'client_secret' ? [" in text
    assert params(read("main.bicep"))["dataverseCredential"] == "'managed_identity'"
    vault = read("core/keyvault.bicep")
    assert (
        "resource dataverseSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01'"
        " = if (!empty(dataverseClientSecret))" in vault
    )


def test_state_tables_are_the_ones_the_code_uses() -> None:
    from shared.adapters.table_operations import TABLES as CONSOLE_TABLES
    from shared.adapters.table_state import TABLES

    main = read("main.bicep")
    listed = re.findall(r"'([a-z]+)'", block(main, r"^param stateTableNames array = \["))
    prefix = Settings.model_fields["state_table_prefix"].default
    assert listed == [prefix + kind for kind in (*TABLES, *CONSOLE_TABLES)]


def test_the_operator_can_be_granted_the_data_roles_of_the_commands() -> None:
    main = read("main.bicep")
    assert params(main)["operatorPrincipalId"] == "''"
    document = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))
    assert document["parameters"]["operatorPrincipalId"]["value"] == "${AZURE_PRINCIPAL_ID}"
    rbac = read("app/rbac.bicep")
    storage = block(rbac, r"^var operatorStorageRoles = !empty\(operatorPrincipalId\) \? \[")
    service_bus = block(rbac, r"^var operatorServiceBusRoles = !empty\(operatorPrincipalId\) \? \[")
    assert "roles.storageTableDataContributor" in storage
    assert "roles.serviceBusDataSender" in service_bus
    assert "roles.serviceBusDataReceiver" in service_bus
    # `mdsync status`: the queue's counts need the Manage right, on the queue only.
    owner = block(rbac, r"^resource operatorQueueOwner '[^']+' = if \(!empty\(operatorPrincipalId\)\) \{")
    assert prop(owner, "scope") == "queue"
    assert "roles.serviceBusDataOwner" in owner
    assert rbac.count("principalType: operatorPrincipalType") == 3


def test_host_json_fits_every_batch_inside_the_queue_lock() -> None:
    """Batch triggers get no lock renewal: waiting for the batch plus running it must end
    before the lock does, and the wait may be at most half the lock (reference section 1)."""
    host = json.loads((REPO / "host.json").read_text(encoding="utf-8"))
    lock = _seconds(prop(resource(read("core/servicebus.bicep"), "queue"), "lockDuration").strip("'"))
    assert lock == 300  # the maximum Service Bus allows
    wait = _timespan(host["extensions"]["serviceBus"]["maxBatchWaitTime"])
    timeout = _timespan(host["functionTimeout"])
    assert wait <= lock / 2
    assert wait + timeout <= lock - 30  # a margin for settling the messages


def _seconds(iso: str) -> float:
    match = re.fullmatch(r"PT(?:(\d+)M)?(?:(\d+)S)?", iso)
    assert match, iso
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


def _timespan(value: str) -> float:
    hours, minutes, seconds = value.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def test_secret_settings_are_key_vault_references() -> None:
    settings = _app_settings()
    secret_aliases = [
        alias
        for alias, field in _settings_aliases().items()
        if SecretStr in (field.annotation, *get_args(field.annotation)) and alias in settings
    ]
    assert len(secret_aliases) == 4, secret_aliases
    for alias in secret_aliases:
        assert settings[alias].startswith("'@Microsoft.KeyVault(SecretUri=${"), alias


def test_backends_are_the_azure_ones() -> None:
    settings = _app_settings()
    assert settings["MDSYNC_QUEUE_BACKEND"] == "'servicebus'"
    assert settings["MDSYNC_STATE_BACKEND"] == "'table'"
    assert settings["ServiceBusConnection__credential"] == "'managedidentity'"
    assert settings["AzureWebJobsStorage__credential"] == "'managedidentity'"
    assert not FLEX_FORBIDDEN_SETTINGS & set(settings)


def test_every_app_setting_is_documented() -> None:
    doc = _deploying_doc()
    undocumented = sorted(name for name in _app_settings() if f"`{name}`" not in doc)
    assert not undocumented, f"app settings missing from docs/deploying.md: {undocumented}"


def test_function_app_is_flex_python_311_https_only() -> None:
    text = read("app/api.bicep")
    plan = resource(text, "plan")
    sku = block(plan, r"sku: \{")
    assert prop(sku, "name") == "'FC1'"
    assert prop(sku, "tier") == "'FlexConsumption'"
    site = resource(text, "site")
    assert prop(site, "kind") == "'functionapp,linux'"
    assert prop(site, "httpsOnly") == "true"
    assert prop(site, "minTlsVersion") == "'1.2'"
    assert prop(site, "keyVaultReferenceIdentity") == "identityId"
    assert "'azd-service-name': serviceName" in prop(site, "tags")
    assert params(text)["serviceName"] == "'api'"
    runtime = block(site, r"runtime: \{")
    assert prop(runtime, "name") == "'python'"
    assert prop(runtime, "version") == "'3.11'"
    authentication = block(site, r"authentication: \{")
    assert prop(authentication, "type") == "'UserAssignedIdentity'"
    # ARM rejects these siteConfig properties on Flex Consumption sites.
    for rejected in ("ftpsState", "use32BitWorkerProcess", "netFrameworkVersion", "linuxFxVersion"):
        assert f"{rejected}:" not in site, rejected


def test_identity_holds_every_data_role() -> None:
    rbac = read("app/rbac.bicep")
    for role, role_id in ROLE_IDS.items():
        assert f"'{role_id}'" in rbac, role
    assert rbac.count("principalType: 'ServicePrincipal'") >= 4


def test_every_bicep_file_is_a_module_of_main() -> None:
    main = read("main.bicep")
    modules = set(re.findall(r"^module \w+ '([^']+)'", main, flags=re.MULTILINE))
    others = {str(path.relative_to(INFRA)) for path in bicep_files()} - {"main.bicep"}
    assert modules == others


def test_parameters_file_matches_main_bicep() -> None:
    declared = params(read("main.bicep"))
    document = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))
    supplied = document["parameters"]
    assert set(supplied) <= set(declared), set(supplied) - set(declared)
    required = {name for name, default in declared.items() if default is None}
    assert required <= set(supplied), required - set(supplied)
    for name, entry in supplied.items():
        assert re.fullmatch(r"\$\{[A-Z_]+(=[a-z_]+)?\}", entry["value"]), name
    assert supplied["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert supplied["location"]["value"] == "${AZURE_LOCATION}"


def test_resource_group_is_tagged_for_azd() -> None:
    main = read("main.bicep")
    assert "targetScope = 'subscription'" in main
    assert "'azd-env-name': environmentName" in main
    assert "uniqueString(subscription().id, environmentName, location)" in main


def test_azure_yaml_declares_the_function_service() -> None:
    document = yaml.safe_load((REPO / "azure.yaml").read_text(encoding="utf-8"))
    assert document["services"]["api"] == {"project": ".", "language": "python", "host": "function"}


def test_every_checkov_skip_has_a_reason_and_is_documented() -> None:
    skips = inline_skips()
    assert skips, "no checkov:skip comment found: the pattern no longer matches the Bicep"
    section = _deploying_doc().split("## checkov", 1)[-1]
    for path, check_id, reason in skips:
        assert len(reason) > 20, f"{path}: {check_id} needs a reason"
        explained = f"`{check_id}`" in section
        assert explained, f"{check_id} ({path}) is not explained in docs/deploying.md"


def test_checkov_config_skips_nothing_undocumented() -> None:
    config = yaml.safe_load((INFRA / ".checkov.yaml").read_text(encoding="utf-8"))
    assert config["framework"] == ["bicep"]
    doc = _deploying_doc()
    for check_id in config.get("skip-check") or []:
        assert f"`{check_id}`" in doc, check_id


# --- the operator console: sign-in, alerts, workbook --------------------------------------------


def test_app_service_authentication_guards_all_but_the_webhooks() -> None:
    from shared.console.auth import WEBHOOK_PATHS

    text = read("app/console-auth.bicep")
    auth = resource(text, "authSettings")
    assert prop(auth, "name") == "'authsettingsV2'"
    assert prop(block(auth, r"platform: \{"), "enabled") == "true"
    validation = block(auth, r"globalValidation: \{")
    assert prop(validation, "requireAuthentication") == "true"
    assert prop(validation, "unauthenticatedClientAction") == "'RedirectToLoginPage'"
    assert prop(validation, "excludedPaths") == "webhookPaths"
    excluded = re.findall(r"'([^']+)'", block(text, r"^param webhookPaths array = \["))
    assert tuple(excluded) == WEBHOOK_PATHS
    # Sign-in only, with the registration's id token: no client secret anywhere.
    assert "clientSecret" not in text
    assert prop(block(auth, r"registration: \{"), "clientId") == "clientId"


def test_the_app_registration_carries_the_operator_role_the_console_checks() -> None:
    text = read("app/console-app.bicep")
    assert text.startswith("//")
    assert "extension 'br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:" in text
    assert params(text)["consoleRole"] == f"'{Settings.model_fields['console_role'].default}'"
    application = resource(text, "consoleApp")
    role = block(application, r"appRoles: \[")
    assert prop(role, "value") == "consoleRole"
    assert "'User'" in block(role, r"allowedMemberTypes: \[")
    assert "'https://${defaultHostName}/.auth/login/aad/callback'" in application
    assert prop(block(application, r"implicitGrantSettings: \{"), "enableIdTokenIssuance") == "true"
    assert prop(resource(text, "consolePrincipal"), "appRoleAssignmentRequired") == "true"
    assignment = block(text, r"^resource operatorAssignment '[^']+' = if \(.+\) \{")
    assert prop(assignment, "principalId") == "operatorPrincipalId"
    main = read("main.bicep")
    assert prop(
        block(main, r"^module consoleAuth '[^']+'\s*=\s*if \(consoleSignIn\) \{"), "clientId"
    ).startswith("consoleSignIn ? consoleApp.outputs.clientId")


def test_alerts_email_the_operators_address_given_at_deployment() -> None:
    main = read("main.bicep")
    assert params(main)["alertEmail"] is None  # required: every deployment names it
    document = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))
    assert document["parameters"]["alertEmail"]["value"] == "${MDSYNC_ALERT_EMAIL}"
    assert prop(block(main, r"^module alerts '[^']+'\s*=\s*\{"), "alertEmail") == "alertEmail"
    text = read("core/alerts.bicep")
    group = resource(text, "operators")
    assert prop(block(group, r"emailReceivers: \["), "emailAddress") == "alertEmail"
    assert prop(group, "location") == "'Global'"


def test_the_four_alerts_watch_what_the_issue_names() -> None:
    text = read("core/alerts.bicep")
    dead = resource(text, "deadLetters")
    assert prop(dead, "metricName") == "'DeadletteredMessages'"
    assert prop(dead, "operator") == "'GreaterThan'"
    assert prop(dead, "threshold") == "0"
    assert "queueName" in block(dead, r"dimensions: \[")
    rules = block(text, r"^var logAlerts = \[")
    names = re.findall(r"name: '([^']+)'", rules)
    assert names == ["mdsync-oldest-backlog", "mdsync-failure-rate", "mdsync-marketo-quota"]
    assert "threshold: oldestBacklogMinutes * 60" in rules
    assert "threshold: failureRatePercent" in rules
    assert "threshold: marketoQuotaPercent" in rules
    assert params(text)["marketoQuotaPercent"] == "80"
    assert "actions: actions" in resource(text, "rules")


def test_the_workbook_and_alerts_read_only_metrics_the_app_emits() -> None:
    source = (REPO / "shared" / "telemetry.py").read_text(encoding="utf-8")
    emitted = set(re.findall(r'create_\w+\(\s*"(mdsync\.[a-z_.]+)"', source))
    assert len(emitted) > 10
    text = read("core/alerts.bicep")
    named = set(re.findall(r'"(mdsync\.[a-z_.]+)"', text)) | set(re.findall(r"'(mdsync\.[a-z_.]+)'", text))
    assert named
    assert named <= emitted, sorted(named - emitted)
    workbook = resource(text, "workbook")
    assert prop(workbook, "kind") == "'shared'"
    assert prop(workbook, "sourceId") == "appInsights.id"
    for figure in ("mdsync.backlog.queued", "mdsync.backlog.oldest_age", "mdsync.writes", "mdsync.collisions",
                   "mdsync.given_up", "mdsync.capture.behind", "mdsync.marketo.quota_used",
                   "mdsync.dataverse.requests_in_window", "mdsync.paused"):  # fmt: skip
        assert figure in text, figure


def test_the_app_may_read_the_queues_counts() -> None:
    rbac = read("app/rbac.bicep")
    owner = resource(rbac, "queueOwner")
    assert prop(owner, "scope") == "queue"
    assert "'090c5cfd-751d-490a-894a-3ce6f1109419'" in rbac  # Azure Service Bus Data Owner
    assert prop(block(read("main.bicep"), r"^module rbac '[^']+'\s*=\s*\{"), "serviceBusQueueName") == (
        "serviceBus.outputs.queueName"
    )
