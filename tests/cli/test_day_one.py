"""Day one in a new tenant: `mdsync dynamics setup` against a fresh Dataverse organization, and
`mdsync doctor` naming each fault a first deployment meets, with its fix.

The fresh organization is its own simulator stack (no mdsync column, key, publisher or
solution); the doctor's faults are played on the session's system by changing one setting.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mdsync.cli import main
from mdsync.harness import WEBHOOK_NAME, LocalSystem
from shared.bootstrap import container, reset_container
from shared.errors import PermanentError
from simulators.dataverse import DataverseSimConfig
from simulators.stack import SYNC_USER_ID, SimulatorStack, StackConfig
from simulators.tls import TlsFiles

DOCTOR = ["doctor", "--webhook-name", WEBHOOK_NAME]


def _out(capsys: pytest.CaptureFixture[str]) -> str:
    return " ".join(capsys.readouterr().out.split())


@pytest.fixture
def fresh_org(tls: TlsFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatorStack]:
    """A new tenant: the simulators with a Dataverse organization that has nothing of mdsync's;
    mdsync's settings point at it for the test (and back at the session's system after)."""
    stack = SimulatorStack(
        StackConfig(tls_dir=tmp_path / "tls", dataverse=DataverseSimConfig(provisioned=False)), tls=tls
    )
    with stack:
        settings = {
            **stack.settings(),
            "MDSYNC_LOCAL_SETTINGS": str(tmp_path / "none.json"),
            "MDSYNC_QUEUE_BACKEND": "sqlite",
            "MDSYNC_STATE_BACKEND": "sqlite",
            "MDSYNC_SQLITE_PATH": str(tmp_path / "mdsync.sqlite3"),
        }
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        reset_container()
        yield stack
        reset_container()
    monkeypatch.undo()
    reset_container()


def test_a_fresh_organization_refuses_the_reads_the_sync_makes(fresh_org: SimulatorStack) -> None:
    dataverse = container().dataverse
    with pytest.raises(PermanentError, match="Could not find a property named 'mdsync_marketoid'"):
        list(dataverse.query("leads", select=["leadid", "mdsync_marketoid"]))
    with pytest.raises(PermanentError, match="do not match a key defined on 'lead'"):
        dataverse.get("leads", {"mdsync_marketoid": "1001"}, select=["leadid"])


def test_setup_creates_what_is_missing_once_and_doctor_then_passes(
    fresh_org: SimulatorStack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(DOCTOR) == 1
    before = _out(capsys)
    assert "FAIL Dataverse set-up: lead: text column mdsync_marketoid" in before
    assert (
        "alternate key mdsync_marketoid_key on mdsync_marketoid: create -> fix: mdsync dynamics setup"
        in before
    )

    assert main(["dynamics", "setup", "--dry-run"]) == 0
    dry = _out(capsys)
    assert dry.count("would create") == 8
    assert "dry run: 8 step(s) to create, nothing sent" in dry
    assert "mdsync_marketoid" not in container().dataverse.entity_metadata("lead", refresh=True).attributes

    assert main(["dynamics", "setup", "--key-wait", "60"]) == 0
    created = _out(capsys)
    assert created.count("created") >= 8
    assert "contact: alternate key mdsync_marketoid_key on mdsync_marketoid (index Active)" in created
    dataverse = container().dataverse
    assert {k.columns for k in dataverse.keys("lead") if k.active} == {("mdsync_marketoid",)}
    list(dataverse.query("leads", select=["leadid", "mdsync_marketoid", "new_synctomkto"]))

    assert main(["dynamics", "setup"]) == 0  # idempotent: nothing left to create
    again = _out(capsys)
    assert "created" not in again
    assert again.count("exists") == 8

    main(DOCTOR)
    after = _out(capsys)
    assert "Dataverse set-up: columns, alternate keys, publisher and solution are there" in after
    assert "field mapping: 20 mapped fields exist" in after


def test_doctor_passes_on_a_set_up_system(system: LocalSystem, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(DOCTOR) == 0
    out = _out(capsys)
    assert "FAIL" not in out
    assert "ok state: sqlite state reachable; belongs to these instances" in out
    assert f"ok own-write bypass: mdsync's writes skip the 8 steps of '{WEBHOOK_NAME}'" in out


def test_doctor_names_the_missing_bypass_privilege(
    system: LocalSystem, capsys: pytest.CaptureFixture[str]
) -> None:
    system.dataverse_admin.grant_bypass(SYNC_USER_ID, granted=False)
    assert main(DOCTOR) == 1
    out = _out(capsys)
    assert "FAIL own-write bypass: the application user lacks prvBypassCustomBusinessLogic" in out
    assert "fix: add prvBypassCustomBusinessLogic to the application user's role" in out


@pytest.mark.parametrize(
    ("setting", "value", "failure", "fix"),
    [
        (
            "DATAVERSE_CLIENT_SECRET",
            "not-the-client-secret",
            "AADSTS7000215: Invalid client secret provided",
            "fix: DATAVERSE_CLIENT_SECRET",
        ),
        (
            "MARKETO_CLIENT_SECRET",
            "not-the-client-secret",
            "FAIL Marketo credentials",
            "fix: MARKETO_CLIENT_ID and MARKETO_CLIENT_SECRET",
        ),
        (
            "MARKETO_BASE_URL",
            "https://localhost:9",
            "FAIL Marketo: https://localhost:9 did not answer",
            "fix: MARKETO_BASE_URL",
        ),
        (
            "DATAVERSE_URL",
            "https://localhost:9",
            "FAIL Dataverse organization: https://localhost:9 did not answer",
            "fix: DATAVERSE_URL",
        ),
    ],
)
def test_doctor_names_the_fault_and_its_fix(
    system: LocalSystem,
    capsys: pytest.CaptureFixture[str],
    setting: str,
    value: str,
    failure: str,
    fix: str,
) -> None:
    with system.settings_changed({setting: value}):
        assert main(DOCTOR) == 1
    out = _out(capsys)
    assert failure in out
    assert fix in out
    if setting.endswith("SECRET"):
        assert value not in out  # a secret is never printed


def test_doctor_names_an_unknown_mapped_field(
    system: LocalSystem, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        "lead:\n  collision_winner: marketo\n  fields:\n"
        "    - {marketo: email, dynamics: emailaddress1, type: email}\n"
        "    - {marketo: favouriteColour, dynamics: new_favouritecolour}\n"
        "contact:\n  collision_winner: dynamics\n  fields:\n"
        "    - {marketo: email, dynamics: emailaddress1, type: email}\n",
        encoding="utf-8",
    )
    with system.settings_changed({"MDSYNC_FIELD_MAPPING": str(mapping)}):
        assert main(DOCTOR) == 1
    out = _out(capsys)
    assert "FAIL field mapping: lead.favouriteColour -> new_favouritecolour: marketo: unknown field" in out
    assert "fix: create the field in Marketo (Admin > Field Management) or edit MDSYNC_FIELD_MAPPING" in out
    assert "unknown column 'new_favouritecolour' -> fix: create the column in Dataverse" in out
    assert "FAIL Dataverse webhook: steps differ from the mapping's" in out
