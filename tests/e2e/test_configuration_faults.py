"""A configuration fault at run time: one log line naming the setting, the documented answer,
never a traceback; and state from another Dataverse organization is refused, not followed."""

from __future__ import annotations

import logging

import pytest

from mdsync.cli import main
from mdsync.harness import WEBHOOK_NAME, LocalSystem
from shared import startup
from shared.bootstrap import container, reset_container
from shared.instance import Instance, bind
from tests.flow_step.conftest import post

WRONG = {"DATAVERSE_CLIENT_SECRET": "not-the-client-secret"}


def _fault_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "mdsync.configuration"]


def test_the_flow_step_answers_its_documented_503_naming_the_setting(
    system: LocalSystem, caplog: pytest.LogCaptureFixture
) -> None:
    person = system.marketo_admin.user_create({"email": "cfg@fabrikam.example", "lastName": "Cfg"})
    with system.settings_changed(WRONG), caplog.at_level(logging.INFO):
        answer = post(system, {"marketoId": person})
    assert answer.status == 503
    assert answer.headers["retry-after"] == "60"
    assert answer.body["status"] == "error"
    assert "mdsync is misconfigured (DATAVERSE_CLIENT_SECRET" in answer.body["error"]
    assert "not-the-client-secret" not in str(answer.body)
    [line] = _fault_lines(caplog)
    assert line.getMessage().startswith("sync_person_to_microsoft did not run: mdsync is misconfigured")
    assert "AADSTS7000215" in line.getMessage()
    assert line.exc_info is None
    assert not [r for r in caplog.records if r.exc_info]  # no traceback anywhere


def test_a_timer_logs_one_line_per_run_and_keeps_its_checkpoint(
    system: LocalSystem, caplog: pytest.LogCaptureFixture
) -> None:
    with system.settings_changed(WRONG), caplog.at_level(logging.INFO):
        system.poll()
        system.sweep()
    lines = [r.getMessage() for r in _fault_lines(caplog)]
    assert len(lines) == 2
    assert lines[0].startswith("marketo_poller did not run: mdsync is misconfigured")
    assert lines[1].startswith("dynamics_sweep did not run")
    assert all("DATAVERSE_CLIENT_SECRET" in line for line in lines)
    assert not [r for r in caplog.records if r.exc_info]


def test_state_of_another_organization_is_refused_and_named(
    system: LocalSystem, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """After `make demo`, `mdsync simulate` starts new systems: the old checkpoints and links
    must not be followed there."""
    bind(container().state, Instance.of("https://123-abc-456.mktorest.com", "elsewhere"), force=True)
    reset_container()  # as the app starts: the binding is checked once per process
    try:
        with caplog.at_level(logging.INFO):
            system.poll()
        [line] = [r.getMessage() for r in _fault_lines(caplog)]
        assert "the state store belongs to Marketo 123-abc-456.mktorest.com" in line
        assert "MDSYNC_SQLITE_PATH" in line
        assert main(["doctor", "--webhook-name", WEBHOOK_NAME]) == 1
        out = " ".join(capsys.readouterr().out.split())
        assert (
            "FAIL state: belongs to Marketo 123-abc-456.mktorest.com and Dataverse organization elsewhere"
            in out
        )
        assert "--rebind-state" in out
        assert main(["doctor", "--webhook-name", WEBHOOK_NAME, "--rebind-state"]) == 0
    finally:
        system.reset()


def test_the_app_runs_the_doctors_checks_when_it_starts(
    system: LocalSystem, caplog: pytest.LogCaptureFixture
) -> None:
    """At a process's first invocation the checks run in the background: a wrong secret is
    named with its fix in the log before anyone runs `mdsync doctor`."""
    with system.settings_changed({"MDSYNC_STARTUP_CHECKS": "true", **WRONG}), caplog.at_level(logging.INFO):
        thread = startup.check_in_background(container())  # what the first invocation does
        assert thread is not None
        assert startup.check_in_background(container()) is None  # once per process
        thread.join(timeout=60)
        assert not thread.is_alive()
    lines = [r.getMessage() for r in caplog.records if r.name == "mdsync.startup"]
    assert any(
        "FAIL Dataverse credential" in line and "fix: DATAVERSE_CLIENT_SECRET" in line for line in lines
    ), lines
    assert lines[-1].startswith("start-up checks: ")
    assert "problem(s)" in lines[-1]
