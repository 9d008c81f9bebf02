"""`mdsync backfill` as an administrator runs it: the preview, the progress and the results it
prints, `--status`, and `--since` reconciling only what changed since a date (the repair of a
poller stopped longer than Marketo keeps its activities)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from mdsync.cli import main
from mdsync.harness import LocalSystem
from tests.backfill.conftest import CREATED_FROM, World

LONG_AGO = "2025-01-01T00:00:00Z"


def _out(capsys: pytest.CaptureFixture[str]) -> str:
    return " ".join(capsys.readouterr().out.split())


def test_the_dry_run_prints_the_preview_and_writes_nothing(
    world: World, system: LocalSystem, capsys: pytest.CaptureFixture[str]
) -> None:
    world.person("ana", email="ana@fabrikam.example", lastName="Lopez")
    world.record("ana", emailaddress1="ANA@fabrikam.example", lastname="Lopez", jobtitle="CTO")
    world.record("cy", emailaddress1="cy@tailspin.example", lastname="Chan")
    world.record("dee", emailaddress1="dee@adatum.example", lastname="Dee", new_synctomkto=False)
    persons_before = system.marketo_admin.persons()

    code = main(["backfill", "--dry-run", "--restart", "--created-from", CREATED_FROM.isoformat()])

    out = _out(capsys)
    assert code == 0, out
    assert "preview of backfill" in out
    assert "nothing was written" in out
    assert "pairs to link by email │ 1" in out
    assert "persons that would be created │ 1" in out
    assert "records the sync filter excludes │ 1" in out
    assert "lead.title" in out  # the field that differs, and which side fills it
    assert "matching: by email" in out  # the progress display names each phase
    assert system.marketo_admin.persons() == persons_before
    assert world.links() == {}

    assert main(["backfill", "--status"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["status"] == "previewed"
    assert status["counts"]["persons_to_create"] == 1
    assert status["phases"]["match_emails"]["done"] == status["phases"]["match_emails"]["total"]

    # The operator console's status shows the same job (shared.console.progress's shape).
    assert main(["status", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["initial_sync"]
    assert (shown["state"], shown["phase"]) == ("done", "preview")
    assert shown["detail"] == "preview done: nothing was written"


def test_since_reconciles_only_what_changed_since_the_date(
    world: World, system: LocalSystem, capsys: pytest.CaptureFixture[str]
) -> None:
    old = {"createdAt": LONG_AGO, "updatedAt": LONG_AGO}
    # Neither side changed since: left alone.
    world.person("ann", email="ann@old.example", lastName="Ann", **old)
    world.record("ann", emailaddress1="ann@old.example", lastname="Ann", jobtitle="Old", modifiedon=LONG_AGO)
    # The record changed since (modifiedon now): read, its person found by email.
    world.person("ben", email="ben@changed.example", lastName="Ben", **old)
    world.record("ben", emailaddress1="ben@changed.example", lastname="Ben", jobtitle="CFO")
    # The person changed since (updatedAt now): read, its record found by email.
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    world.person("cat", email="cat@changed.example", lastName="Cat", createdAt=LONG_AGO, updatedAt=now)
    world.record(
        "cat", emailaddress1="cat@changed.example", lastname="Cat", jobtitle="COO", modifiedon=LONG_AGO
    )
    since = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    code = main(["backfill", "--restart", "--since", since])

    out = _out(capsys)
    assert code == 0, out
    assert "backfill" in out
    assert " done" in out
    system.wait_idle(60)
    assert world.linked("ben", "ben")
    assert world.linked("cat", "cat"), out
    assert world.persons["ann"] not in world.links()
    assert world.marketo("ben")["title"] == "CFO"
    assert world.marketo("cat")["title"] == "COO"
    assert world.marketo("ann")["title"] is None
    assert not world.dynamics("ann").get("mdsync_marketoid")


def test_bad_options_are_refused_before_anything_runs(
    system: LocalSystem, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (["backfill", "--since", "last tuesday"], ["backfill", "--ambiguous", "guess"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "last tuesday" in err
    assert "guess" in err
    assert main(["backfill", "--status"]) == 0
    assert "no backfill has run" in _out(capsys)
