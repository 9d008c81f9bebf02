"""First contact with the command line: what a new user types wrong gets one clear line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest

from mdsync.cli import build_parser, main
from mdsync.harness import LocalSystem
from simulators.tls import TlsFiles

ROOT = Path(__file__).resolve().parents[2]


def _out(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    return " ".join((captured.out + captured.err).split())


def test_every_option_has_help_text() -> None:
    missing = []
    parsers = [("mdsync", build_parser())]
    while parsers:
        name, parser = parsers.pop()
        for action in parser._actions:
            if action.dest == "help":
                continue
            choices = getattr(action, "choices", None)
            if isinstance(choices, dict):  # a sub-command list
                parsers += [(f"{name} {n}", p) for n, p in choices.items()]
                for choice in cast(Any, action)._choices_actions:
                    if not choice.help:
                        missing.append(f"{name} {choice.dest}")
            elif not action.help:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


@pytest.mark.parametrize(
    "url", ["not-a-url", "ftp://x.example/hook", "http://contoso.example/api/dynamics/webhook"]
)
def test_register_webhook_refuses_what_dataverse_could_not_call(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["dynamics", "register-webhook", "--url", url, "--function-key", "k"])
    assert exited.value.code == 2
    assert "--url" in _out(capsys)


@pytest.mark.parametrize("limit", ["0", "-3", "many"])
def test_log_limit_must_be_a_positive_number(limit: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["log", "1001", "--limit", limit])
    assert "--limit" in _out(capsys)


def test_a_busy_port_is_one_line_not_a_traceback(tmp_path: Path, tls: TlsFiles) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "mdsync.cli", "devhost", "--port", str(port), "--root", str(ROOT)],
            cwd=tmp_path,
            env={**os.environ, "MDSYNC_CA_FILE": str(tls.ca_file), "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    out = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 2, out
    assert f"port {port} on 127.0.0.1 is already in use" in out
    assert "Traceback" not in out


def test_log_finds_a_deleted_persons_entries_by_email_and_prints_json(
    system: LocalSystem, capsys: pytest.CaptureFixture[str]
) -> None:
    lead_id = system.dataverse_admin.create_as(
        "Jane Doe", "leads", {"lastname": "Gone", "emailaddress1": "gone@fabrikam.example"}
    )
    person = system.until(
        lambda: [p for p in system.marketo_admin.persons() if p.get("msftLeadId") == lead_id]
    )
    system.wait_idle()
    system.marketo_admin.user_delete(int(person[0]["id"]))
    capsys.readouterr()
    assert main(["log", "gone@fabrikam.example", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert entries
    assert {e["dynamics_id"] for e in entries} == {lead_id}
    assert all(e["marketo_id"] == int(person[0]["id"]) for e in entries)


def test_ids_are_never_cut_in_a_narrow_terminal(system: LocalSystem) -> None:
    from rich.console import Console

    from mdsync.operations import print_log

    lead_id = system.dataverse_admin.create_as(
        "Jane Doe", "leads", {"lastname": "Narrow", "emailaddress1": "narrow@fabrikam.example"}
    )
    system.until(lambda: [p for p in system.marketo_admin.persons() if p.get("msftLeadId") == lead_id])
    system.wait_idle()
    narrow = Console(width=60, record=True, highlight=False)
    assert print_log(lead_id, limit=5, console=narrow) == 0
    text = narrow.export_text()
    assert "…" not in text  # folded onto more lines, never cut with an ellipsis
    for part in lead_id.split("-"):
        assert part in text


def test_the_demo_says_how_to_call_what_it_leaves_running(system: LocalSystem) -> None:
    from rich.console import Console

    from mdsync.demo import _print_what_keeps_running
    from mdsync.harness import HOST_KEY
    from simulators.stack import FLOW_STEP_SECRET

    out = Console(width=300, record=True, highlight=False)
    _print_what_keeps_running(system, out)
    text = out.export_text()
    assert f"x-functions-key: {HOST_KEY}" in text
    assert f"x-mdsync-key: {FLOW_STEP_SECRET}" in text
    assert "/api/marketo/sync-person" in text
    assert "MDSYNC_SQLITE_PATH=" in text
    assert "mdsync log" in text
