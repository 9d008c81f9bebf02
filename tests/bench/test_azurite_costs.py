"""The Azurite cost model (``python -m mdsync.bench.azurite_costs``): it runs against a real
Azurite and charges each kind of request the emulator's own CPU time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mdsync.bench.azurite_costs import main

pytestmark = pytest.mark.azurite

KINDS = {"get", "range_100", "insert_100", "upsert_100", "replace_100", "merge_100"}


def test_each_request_kind_is_charged_azurite_s_cpu(tmp_path: Path) -> None:
    output = tmp_path / "costs.json"
    assert main([str(tmp_path / "azurite"), str(output), "--table", "1000", "--partition", ""]) == 0
    (stage,) = json.loads(output.read_text(encoding="utf-8"))["table"]
    assert (stage["entities"], stage["partition"]) == (1000, 1000)
    assert set(stage) >= KINDS
    assert all(stage[kind]["n"] > 0 and stage[kind]["azurite_ms"] >= 0 for kind in KINDS)
    # 20 transactions of 100 writes take Azurite measurable CPU (its clock ticks every 10 ms).
    assert stage["insert_100"]["azurite_ms"] > 0
