"""``mdsync log <email or id>``: a person's sync log, as an operator reads it."""

from __future__ import annotations

import pytest

from mdsync import cli
from mdsync.harness import LocalSystem
from tests.e2e.test_worker_support import create_linked, update_as_user, webhooks_held

EMAIL = "ana.lopez@fabrikam.example"


@pytest.fixture
def history(
    system: LocalSystem, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[str, int]:
    monkeypatch.setenv("COLUMNS", "240")  # rich wraps table cells to the terminal width
    lead_id, marketo_id = create_linked(system, "lead", emailaddress1=EMAIL, jobtitle="Engineer")
    with webhooks_held(system):
        update_as_user(system, "lead", lead_id, jobtitle="Sales Lead")
        system.marketo_admin.user_edit(marketo_id, {"title": "Marketing Lead", "city": "Lisbon"})
    system.sync()
    capsys.readouterr()
    return lead_id, marketo_id


def test_log_by_email_tells_the_persons_story(
    history: tuple[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["log", EMAIL]) == 0
    out = capsys.readouterr().out
    for expected in (
        "created_in_marketo",
        "collision",
        "title: collision (changed on both sides): marketo wins (entity rule)",
        "to_dynamics",
        "city (changed in Marketo)",
    ):
        assert expected in out
    assert EMAIL not in out  # masked in the title, never in the entries
    assert "a***@fabrikam.example" in out


def test_log_by_marketo_id_and_by_dynamics_id(
    history: tuple[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    lead_id, marketo_id = history
    assert cli.main(["log", str(marketo_id)]) == 0
    by_person = capsys.readouterr().out
    assert cli.main(["log", lead_id]) == 0
    by_record = capsys.readouterr().out
    for out in (by_person, by_record):
        assert "collision" in out
        assert lead_id in out


def test_log_of_an_unknown_person_says_so(system: LocalSystem, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["log", "nobody@fabrikam.example"]) == 1
    assert "no sync log entries" in capsys.readouterr().out
