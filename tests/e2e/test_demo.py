"""`make demo` runs end to end from a clean working directory and shows every behaviour row."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROWS = [
    "setup --dry-run lists the steps",
    "dynamics setup creates them",
    "doctor finds everything in place",
    "backfill preview writes nothing",
    "backfill links what already exists",
    "new Dynamics lead → Marketo person",
    "Dynamics edit → Marketo (webhook)",
    "Marketo edit → Dynamics (poll)",
    "collision on a lead → Marketo wins",
    "collision on a contact → Dynamics wins",
    "new Marketo person is not pushed",
    "flow step creates a lead in real time",
    "flow step does nothing the second time",
    "validation failure → person's Activity Log",
    "sweep repairs a lost webhook",
    "Dynamics delete → Microsoft Is Deleted",
    "flow step after a delete creates a new lead",
    "Marketo delete → nothing deleted in Dynamics",
    "later Dynamics update → new Marketo person",
    "qualification → relinked to the contact",
    "console page for a signed-in operator",
    "console counts what synced",
    "paused: the change waits, held",
    "resumed: the held change syncs",
]


def test_demo_exits_zero_and_shows_each_behaviour(tmp_path: Path) -> None:
    result = subprocess.run(
        # Free ports: the fixed ones (7071, 7443-7445) may be taken on a developer's machine.
        [sys.executable, "-m", "mdsync.cli", "demo", "--ephemeral"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = " ".join(result.stdout.split())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    missing = [row for row in ROWS if f"✓ {row}" not in output]
    assert missing == []
    assert "✗" not in output
    # Day one, as the commands print it: the dry run's steps, then every doctor check passing.
    assert "would create lead: alternate key mdsync_marketoid_key on mdsync_marketoid" in output
    assert "ok Dataverse set-up: columns, alternate keys, publisher and solution are there" in output
    assert "FAIL" not in output
    # It ends with the console's address and the local operator's sign-in.
    address = r"Operator console: http://[\w.]+:\d+/api/console \(sign in as 'operator', password '[^']+'\)"
    assert re.search(address, output), output[-2000:]
