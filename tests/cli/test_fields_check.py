"""`mdsync fields check` against the live simulators: the default mapping passes; unknown and
read-only fields are named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mdsync.cli import main
from mdsync.harness import LocalSystem
from simulators.marketo.webhooks import render

BAD_MAPPING = """
lead:
  collision_winner: marketo
  fields:
    - {marketo: email, dynamics: emailaddress1, type: email}
    - {marketo: favouriteColour, dynamics: firstname}
    - {marketo: updatedAt, dynamics: lastname, direction: both}
    - {marketo: lastName, dynamics: fullname, direction: to_dynamics}
    - {marketo: company, dynamics: new_nosuchcolumn}
    - {marketo: msftDoNotEmail, dynamics: jobtitle, type: boolean}
contact:
  collision_winner: dynamics
  fields:
    - {marketo: email, dynamics: emailaddress1, type: email}
"""


def test_default_mapping_passes(system: LocalSystem, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fields", "check"]) == 0
    assert "ok" in capsys.readouterr().out


def test_unknown_read_only_and_mistyped_fields_are_named(
    system: LocalSystem, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = tmp_path / "bad.yaml"
    mapping.write_text(BAD_MAPPING)
    assert main(["fields", "check", "--mapping", str(mapping)]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "unknown field 'favouriteColour'" in out
    assert "updatedAt is read-only" in out
    assert "fullname is read-only" in out
    assert "unknown column 'new_nosuchcolumn'" in out
    assert "jobtitle is String, not usable as boolean" in out


def test_an_invalid_mapping_file_is_a_problem_of_the_mapping(
    system: LocalSystem, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = tmp_path / "broken.yaml"
    mapping.write_text("lead: [")
    assert main(["fields", "check", "--mapping", str(mapping)]) == 1  # as docs/fields.md says
    assert "not valid YAML" in " ".join(capsys.readouterr().out.split())


def test_a_faulty_entry_is_named_by_its_field_not_its_position(
    system: LocalSystem, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = tmp_path / "typo.yaml"
    mapping.write_text(
        BAD_MAPPING.replace("{marketo: company, dynamics: new_nosuchcolumn}", "{marketo: company}")
    )
    assert main(["fields", "check", "--mapping", str(mapping)]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "lead.fields[company].dynamics: Field required" in out
    assert "fields.4" not in out


def test_the_campaign_template_is_valid_json_once_marketo_renders_it(
    system: LocalSystem, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["marketo", "campaign-template"]) == 0
    template, attributes = capsys.readouterr().out.split("\n\nData Value Changes attributes: ")
    assert "{{lead.Job Title}}" in template
    assert "Job Title" in attributes
    marketo = system.stack.marketo.state
    [lead_id] = marketo.seed([{"email": "a@example.com", "title": 'He said "hi"', "city": None}])
    person = marketo.person(lead_id)
    assert person is not None
    body = json.loads(render(template.strip(), person, marketo.catalog, "json"))
    assert body["marketoId"] == lead_id
    assert body["values"]["title"] == 'He said "hi"'
    assert body["values"]["city"] in (None, "")
