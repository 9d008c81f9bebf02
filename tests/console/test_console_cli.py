"""``mdsync status``, ``errors``, ``replay``, ``resync``, ``pause`` and ``resume`` (with ``--json``)
against the same staged local system as the browser tests: the CLI reads and acts on the stores
the settings name, and records its actions as the CLI user."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from mdsync import cli
from mdsync.console_scene import BAD_TITLE, TITLE_RULE, Scene
from mdsync.harness import LocalSystem
from shared.console.progress import PROGRESS_CHECKPOINT
from shared.ports import RawMessage

pytestmark = pytest.mark.timeout(240)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, object]:
    capsys.readouterr()
    code = cli.main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out) if "--json" in argv else out


def test_status_and_errors_as_json(
    capsys: pytest.CaptureFixture[str], system: LocalSystem, scene: Scene
) -> None:
    code, status = run(capsys, "status", "--json")
    assert code == 0
    assert isinstance(status, dict)
    lead = next(lane for lane in status["backlog"]["lanes"] if lane["entity"] == "lead")
    assert lead["waiting"] == len(scene.backlog_leads)
    assert status["errors"]["refused"] >= 1
    assert status["errors"]["parked"] == 1

    code, errors = run(capsys, "errors", "--kind", "refused", "--person", str(scene.ana), "--json")
    assert code == 0
    assert isinstance(errors, dict)
    (refused,) = errors["errors"]
    assert (refused["field"], refused["value"]) == ("jobtitle", BAD_TITLE)

    code, text = run(capsys, "errors", "--csv", "-")
    assert code == 0
    assert BAD_TITLE in str(text)


def test_pause_resume_replay_and_resync(
    capsys: pytest.CaptureFixture[str], system: LocalSystem, scene: Scene
) -> None:
    assert system.host is not None
    code, paused = run(capsys, "pause", "--reason", "deploying", "--json")
    assert code == 0
    assert isinstance(paused, dict)
    assert paused["ok"]
    system.host.hold_queue(False)
    code, status = run(capsys, "status", "--json")
    assert isinstance(status, dict)
    assert status["paused"]["paused"] is True
    assert status["paused"]["reason"] == "deploying"
    assert run(capsys, "resume", "--json")[0] == 0
    system.until(
        lambda: len([p for p in system.marketo_admin.persons() if "queued" in (p.get("email") or "")]) == 3,
        60,
    )

    code, dry = run(capsys, "replay", "--kind", "parked", "--dry-run", "--json")
    assert isinstance(dry, dict)
    (item,) = dry["would_replay"]
    code, replayed = run(capsys, "replay", item["item_id"], "--json")
    assert code == 0
    assert isinstance(replayed, dict)
    assert replayed["count"] == 1
    system.until(
        lambda: (
            (system.dataverse_admin.row("contact", scene.bo_contact) or {}).get("jobtitle") == "Chief Buyer"
        ),
        30,
    )

    system.dataverse_admin.remove_plugin(TITLE_RULE)
    assert run(capsys, "resync", str(scene.ana), "--json")[0] == 0
    system.until(
        lambda: (system.dataverse_admin.row("lead", scene.ana_lead) or {}).get("jobtitle") == BAD_TITLE, 30
    )
    assert run(capsys, "resync", "not-a-person")[0] == 1

    audit = system.deps.operations.read_audit()
    assert {e.action for e in audit} >= {"pause", "resume", "replay", "resync"}
    assert all(e.who.startswith("cli:") for e in audit)


def test_configuration_faults_are_listed_and_cleared_by_replay(
    capsys: pytest.CaptureFixture[str], system: LocalSystem, scene: Scene
) -> None:
    from functions._faults import faults

    faults._last.clear()  # the once-a-minute throttle of this process
    assert system.host is not None
    system.host.hold_queue(False)
    system.wait_idle()
    with system.settings_changed({"MARKETO_BASE_URL": ""}):
        system.poll()
    code, listed = run(capsys, "errors", "--kind", "configuration", "--json")
    assert isinstance(listed, dict)
    (fault,) = listed["errors"]
    assert fault["reason"] == "misconfigured: MARKETO_BASE_URL"
    assert fault["message"].startswith("marketo_poller did not run")
    code, replayed = run(capsys, "replay", fault["key"], "--json")
    assert code == 0
    assert isinstance(replayed, dict)
    assert "cleared 1 configuration fault" in replayed["message"]
    assert run(capsys, "errors", "--kind", "configuration", "--json")[1] == {
        "groups": [],
        "errors": [],
        "cursor": None,
    }


UNREADABLE = '{"source": "marketo", "kind": "teleported"}'


def test_given_up_items_are_listed_and_replayed_through_the_one_replay_path(
    capsys: pytest.CaptureFixture[str], system: LocalSystem, scene: Scene
) -> None:
    """A dead letter and a message the worker could not read are on the error list; the dead
    letter is replayed (shared.replay: a new message, gone from its store once queued) and the
    unreadable one discarded, each in the audit trail."""
    assert system.host is not None
    (got,) = system.queue.receive(1)  # one of the backlog's leads, while the worker is held
    system.queue.dead_letter(got.lock_token, "MaxDeliveryCountExceeded", "the worker crashed 10 times")
    system.queue.send_raw([RawMessage("m-garbage", UNREADABLE)])
    system.host.hold_queue(False)
    system.wait_idle()

    code, listed = run(capsys, "errors", "--kind", "dead_letter", "--json")
    assert isinstance(listed, dict)
    (letter,) = listed["errors"]
    assert (letter["item_id"], letter["reason"]) == (got.message_id, "MaxDeliveryCountExceeded")
    code, listed = run(capsys, "errors", "--kind", "parked", "--text", "unreadable", "--json")
    assert isinstance(listed, dict)
    (unreadable,) = listed["errors"]
    assert unreadable["item_id"] == "unreadable-m-garbage"

    code, replayed = run(capsys, "replay", letter["key"], "--json")
    assert code == 0
    assert isinstance(replayed, dict)
    assert replayed["count"] == 1
    assert system.queue.dead_letters() == []
    system.until(
        lambda: len([p for p in system.marketo_admin.persons() if "queued" in (p.get("email") or "")]) == 3,
        60,
    )

    code, discarded = run(capsys, "replay", "--discard", "unreadable-m-garbage", "--json")
    assert code == 0
    assert isinstance(discarded, dict)
    assert (discarded["action"], discarded["count"]) == ("discard", 1)
    assert [p.dedup_id for p in system.deps.state.parked() if p.dedup_id.startswith("unreadable")] == []
    assert run(capsys, "errors", "--kind", "parked", "--text", "unreadable", "--json")[1] == {
        "groups": [],
        "errors": [],
        "cursor": None,
    }
    code, again = run(capsys, "replay", "--dry-run", "no-such-item")
    assert code == 0
    assert "not found" in str(again)
    assert {e.action for e in system.deps.operations.read_audit()} >= {"replay", "discard"}


def test_the_initial_syncs_progress_is_shown_from_its_record(
    capsys: pytest.CaptureFixture[str], system: LocalSystem, scene: Scene
) -> None:
    """The contract with the initial sync (shared.console.progress): its record in the state
    store is what the status shows, with the fraction done."""
    started = datetime.now(UTC) - timedelta(minutes=10)
    record = {
        "state": "running",
        "phase": "linking leads",
        "done": 250,
        "total": 1000,
        "started_at": started.isoformat(),
        "updated_at": datetime.now(UTC).isoformat(),
        "detail": "page 3 of 12",
    }
    system.deps.state.put_checkpoint(PROGRESS_CHECKPOINT, json.dumps(record), etag=None)
    code, status = run(capsys, "status", "--json")
    assert code == 0
    assert isinstance(status, dict)
    shown = status["initial_sync"]
    assert (shown["state"], shown["phase"], shown["done"], shown["total"]) == (
        "running",
        "linking leads",
        250,
        1000,
    )
    assert shown["fraction"] == 0.25
    assert shown["eta_seconds"] > 0
    code, text = run(capsys, "status")
    assert "linking leads" in str(text)
