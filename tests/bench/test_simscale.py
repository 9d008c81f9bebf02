"""The simulator scale measurement runs end to end (small here; a million by hand): every phase
reads or writes every record, and the bulk calls it counts are the ones the clients made."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mdsync.bench.simscale import run


@pytest.mark.slow
def test_every_phase_handles_every_record() -> None:
    phases = {p.name: p for p in run(3_000, poll_seconds=0.02, span=timedelta(days=365))}
    assert list(phases) == [
        "baseline",
        "marketo_seed",
        "marketo_extract",
        "marketo_import",
        "dataverse_seed",
        "dataverse_read",
        "dataverse_update",
    ]
    extract = phases["marketo_extract"].calls
    assert extract["POST /bulk/v1/leads/export/create.json"] == 12  # a year in 31-day windows
    assert extract["GET /bulk/v1/leads/export/{exportId}/file.json"] == 12
    assert phases["marketo_import"].calls["POST /bulk/v1/leads.json"] == 1
    assert phases["dataverse_read"].calls["GET leads"] == 1
    assert phases["dataverse_update"].calls["POST leads/UpdateMultiple"] == 3
