"""Settings: where they are read from, and the one message naming every faulty setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.config import DataverseCredential, Settings, load_settings
from shared.errors import ConfigurationError

REQUIRED = {
    "MARKETO_BASE_URL": "https://123-abc-456.mktorest.com",
    "MARKETO_CLIENT_ID": "client",
    "MARKETO_CLIENT_SECRET": "secret",
    "DATAVERSE_URL": "https://contoso.crm.dynamics.com",
    "DATAVERSE_TENANT_ID": "tenant",
    "DATAVERSE_CLIENT_ID": "client",
    "DATAVERSE_CLIENT_SECRET": "secret",
    "DYNAMICS_WEBHOOK_SECRET": "a-webhook-secret-of-32-characters",
    "FLOW_STEP_SECRET": "a-flow-step-secret-of-32-characters",
    "MDSYNC_QUEUE_BACKEND": "sqlite",
    "MDSYNC_STATE_BACKEND": "sqlite",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """Only the settings a test sets: every mdsync name cleared, no local.settings.json."""
    for field in Settings.model_fields.values():
        if field.alias:
            monkeypatch.delenv(field.alias, raising=False)
    monkeypatch.setenv("MDSYNC_LOCAL_SETTINGS", str(tmp_path / "local.settings.json"))
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_the_defaults_are_the_documented_ones(env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.marketo_max_calls_per_20s == 80
    assert settings.marketo_flow_step_calls_per_20s == 20
    assert settings.marketo_deletes_poll_seconds == 300
    assert (settings.retry_base_seconds, settings.retry_max_seconds) == (5.0, 900.0)


def test_every_faulty_setting_is_named_in_one_message(env: pytest.MonkeyPatch) -> None:
    env.setenv("MARKETO_BASE_URL", "not a url")
    env.setenv("DYNAMICS_WEBHOOK_SECRET", "short")
    env.setenv("MARKETO_DELETES_POLL_SECONDS", "-1")
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    message = str(raised.value)
    assert "MARKETO_BASE_URL:" in message
    assert "DYNAMICS_WEBHOOK_SECRET: Value error, must be at least 16 characters" in message
    assert "MARKETO_DELETES_POLL_SECONDS:" in message
    assert "looked in: environment variables, then" in message
    assert set(raised.value.settings) == {
        "MARKETO_BASE_URL",
        "DYNAMICS_WEBHOOK_SECRET",
        "MARKETO_DELETES_POLL_SECONDS",
    }


def test_a_missing_setting_is_asked_for_only_by_what_uses_it(env: pytest.MonkeyPatch) -> None:
    """`mdsync log` reads the state store: it needs no Marketo or Dataverse secret."""
    for name in ("MARKETO_CLIENT_SECRET", "DATAVERSE_CLIENT_SECRET", "FLOW_STEP_SECRET"):
        env.delenv(name)
    settings = load_settings()
    settings.require_state_connection()
    with pytest.raises(ConfigurationError) as raised:
        settings.marketo()
    assert raised.value.settings == ("MARKETO_CLIENT_SECRET",)
    assert "MARKETO_CLIENT_SECRET is not set (needed by the Marketo client)" in str(raised.value)
    with pytest.raises(ConfigurationError, match="FLOW_STEP_SECRET is not set"):
        settings.flow_step_key()
    assert settings.dynamics_webhook_key() == REQUIRED["DYNAMICS_WEBHOOK_SECRET"]


def test_the_dataverse_credential_decides_which_settings_it_needs(env: pytest.MonkeyPatch) -> None:
    assert load_settings().dataverse().credential is DataverseCredential.CLIENT_SECRET
    env.delenv("DATAVERSE_CLIENT_SECRET")
    env.delenv("DATAVERSE_TENANT_ID")
    managed = load_settings().dataverse()  # no secret at all: the managed identity
    assert managed.credential is DataverseCredential.MANAGED_IDENTITY
    assert managed.scope == "https://contoso.crm.dynamics.com/.default"
    env.setenv("DATAVERSE_CREDENTIAL", "certificate")
    with pytest.raises(ConfigurationError) as raised:
        load_settings().dataverse()
    assert raised.value.settings == ("DATAVERSE_TENANT_ID", "DATAVERSE_CLIENT_CERTIFICATE_PATH")


@pytest.mark.parametrize("name", ["MARKETO_BASE_URL", "DATAVERSE_URL", "DATAVERSE_AUTHORITY_HOST"])
def test_service_urls_must_be_https_except_on_this_machine(env: pytest.MonkeyPatch, name: str) -> None:
    env.setenv(name, "http://contoso.example")
    with pytest.raises(ConfigurationError, match=f"{name}: Value error, must be an https:// URL"):
        load_settings()
    for local in ("http://localhost:7444", "http://127.0.0.1:7444", "http://[::1]:7444"):
        env.setenv(name, local)
        load_settings()


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        (
            {"MARKETO_MAX_CALLS_PER_20S": "20", "MARKETO_FLOW_STEP_CALLS_PER_20S": "20"},
            "MARKETO_FLOW_STEP_CALLS_PER_20S \\+ MARKETO_BACKFILL_CALLS_PER_20S must be smaller than "
            "MARKETO_MAX_CALLS_PER_20S",
        ),
        (
            {"MDSYNC_RETRY_BASE_SECONDS": "60", "MDSYNC_RETRY_MAX_SECONDS": "30"},
            "MDSYNC_RETRY_MAX_SECONDS must not be smaller than MDSYNC_RETRY_BASE_SECONDS",
        ),
    ],
)
def test_settings_that_contradict_each_other_are_refused(
    env: pytest.MonkeyPatch, settings: dict[str, str], complaint: str
) -> None:
    for name, value in settings.items():
        env.setenv(name, value)
    with pytest.raises(ConfigurationError, match=complaint):
        load_settings()


def test_an_environment_variable_wins_over_local_settings(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    values = {"MARKETO_MAX_CALLS_PER_20S": "50", "MDSYNC_RETRY_BASE_SECONDS": "1"}
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": values}), encoding="utf-8")
    env.setenv("MARKETO_MAX_CALLS_PER_20S", "60")
    settings = load_settings()
    assert settings.marketo_max_calls_per_20s == 60  # the environment
    assert settings.retry_base_seconds == 1.0  # the file, where the environment is silent
