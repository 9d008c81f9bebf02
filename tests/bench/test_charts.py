"""The bench's charts drawn from a results document in the shape the bench writes: one chart per
burst that has a timeline, one latency chart naming every path with samples, and whatever an
older results file (no timelines, no samples) still allows, without failing."""

from __future__ import annotations

import json
import random
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from mdsync.bench import draw_charts
from mdsync.bench.charts import LATENCY_FILE, draw, fixed_windows, rolling_counts
from mdsync.bench.stats import latency_summary
from mdsync.cli import main

SVG = "{http://www.w3.org/2000/svg}svg"
BURSTS = ("burst_to_marketo_whole_api", "burst_to_dynamics_state_table", "peer_to_marketo")


def _timeline(seconds: int, client_limit: int, *, sustained: bool) -> dict[str, Any]:
    """A burst of ``seconds``: the client's calls spread evenly over each 20 s window."""
    marketo = [w * 20 + i * 20 / client_limit for w in range(seconds // 20) for i in range(client_limit)]
    return {
        "t0": 1_790_000_000.0,
        "marketo_call_times": marketo,
        "dataverse_call_times": [i * 0.7 for i in range(int(seconds / 0.7))],
        "landed_per_second": [0, *([466] * (seconds - 2)), 120],
        "window_seconds": 20,
        "marketo_limit_per_window": 100,
        "client_limit_per_window": client_limit,
        "sustained": {
            "start": 20,
            "end": seconds - 20,
            "changes_per_second": 466.2,
            "fraction_of_ceiling": 0.93,
            "marketo_calls_per_window": [client_limit] * (seconds // 20 - 2),
        }
        if sustained
        else None,
    }


def _latency(seed: int, median: float, count: int = 3000) -> dict[str, Any]:
    rng = random.Random(seed)
    return latency_summary([rng.lognormvariate(0, 0.4) * median for _ in range(count)])


def _burst(changes: int, seconds: float, timeline: dict[str, Any] | None) -> dict[str, Any]:
    workload: dict[str, Any] = {"changes": changes, "seconds": seconds, "latency": {}}
    if timeline is not None:
        workload["timeline"] = timeline
    return workload


@pytest.fixture
def results() -> dict[str, Any]:
    return {
        "meta": {"quick": True, "started_at": "2026-12-05T18:36:49+00:00"},
        "ceiling": {
            "api": {"to_marketo": {"changes_per_second": 500.0}, "to_dynamics": {"changes_per_second": 750.0}}
        },
        "workloads": {
            "burst_to_marketo_whole_api": _burst(100_000, 215.0, _timeline(215, 95, sustained=True)),
            "burst_to_dynamics_state_table": _burst(2_000, 9.0, _timeline(9, 95, sustained=False)),
            "burst_to_marketo": _burst(10_000, 22.7, None),  # an older run's: no timeline
            "peer_to_marketo": _burst(100_000, 310.0, _timeline(310, 95, sustained=True)),
            "naive_to_marketo": _burst(100, 60.1, None),  # never has one
            "steady": {"changes": 1200, "latency": {}},
            "even_window_on": {
                "latency": {"to_marketo": _latency(5, 16.0), "to_dynamics": _latency(6, 30.0)},
            },
        },
        "latency": {
            "D->M webhook (steady)": _latency(1, 1.1),
            "M->D poll (steady)": _latency(2, 1.5),
            "flow step create (paced)": _latency(3, 0.12, count=30),
            "M->D campaign (an older run)": {"count": 10, "p50_ms": 900.0, "p95_ms": 1900.0},
        },
    }


def _svg_text(path: Path) -> str:
    root = ET.parse(path).getroot()  # noqa: S314 (the test's own drawing)
    assert root.tag == SVG
    return " ".join(" ".join(element.itertext()) for element in root.iter())


def test_one_chart_per_burst_with_a_timeline_and_one_for_latency(
    results: dict[str, Any], tmp_path: Path
) -> None:
    drawn = draw(results, tmp_path)
    assert sorted(p.name for p in drawn.written) == sorted([*(f"{b}.svg" for b in BURSTS), LATENCY_FILE])
    assert drawn.skipped == ["burst_to_marketo: no timeline in the results (a bench before timelines?)"]
    for burst in BURSTS:
        text = _svg_text(tmp_path / f"{burst}.svg")
        assert "Marketo's limit: 100" in text
        assert "the sync client's limit: 95" in text
        assert "Dataverse's limit: 400" in text  # 6,000 per 300 s, per 20 s
    assert "466 changes/s, 0.93 of the ceiling" in _svg_text(tmp_path / "burst_to_marketo_whole_api.svg")
    assert "no sustained part" in _svg_text(tmp_path / "burst_to_dynamics_state_table.svg")


def test_the_latency_chart_names_every_path_with_samples(results: dict[str, Any], tmp_path: Path) -> None:
    draw(results, tmp_path)
    text = _svg_text(tmp_path / LATENCY_FILE)
    for label in (
        "D->M webhook (steady)",
        "M->D poll (steady)",
        "flow step create (paced)",
        "D->M (1M/day evenly, window on)",
        "M->D (1M/day evenly, window on)",
    ):
        assert label in text
    assert "older run" not in text  # a summary without samples is left out
    assert "target p50 2 s" in text
    assert "mdsync bench --quick of 2026-12-05T18:36:49+00:00" in text  # the run it comes from
    assert "target p50 0.3 s" in text  # the flow step's own


def test_a_results_file_without_timelines_or_samples_draws_nothing_and_says_why(tmp_path: Path) -> None:
    older = {"workloads": {"burst_to_marketo": _burst(10_000, 22.7, None)}, "latency": {}}
    drawn = draw(older, tmp_path)
    assert drawn.written == []
    assert len(drawn.skipped) == 2


def test_a_timeline_of_another_shape_costs_only_its_own_chart(
    results: dict[str, Any], tmp_path: Path
) -> None:
    del results["workloads"]["burst_to_dynamics_state_table"]["timeline"]["landed_per_second"]
    drawn = draw(results, tmp_path)
    assert {p.name for p in drawn.written} == {
        "burst_to_marketo_whole_api.svg",
        "peer_to_marketo.svg",
        LATENCY_FILE,
    }
    assert any(note.startswith("burst_to_dynamics_state_table: unexpected results") for note in drawn.skipped)


def test_the_same_results_draw_the_same_bytes(results: dict[str, Any], tmp_path: Path) -> None:
    first, second = draw(results, tmp_path / "a"), draw(results, tmp_path / "b")
    for a, b in zip(first.written, second.written, strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_windows_count_calls_as_marketo_does() -> None:
    times = [0.0, 1.0, 19.9, 20.0, 25.0, 41.0]
    assert fixed_windows(times, 20, (0, 41.0)) == ([0, 20, 40], [3, 2, 1])
    moments, counts = rolling_counts(times, 20)
    rolling = dict(zip(moments, counts, strict=True))
    assert rolling[19.9] == 3  # 0.0, 1.0 and 19.9 in the past 20 s
    assert rolling[20.0] == 3  # the call at 0.0 has left the window as the one at 20.0 came
    assert rolling[25.0] == 3  # 19.9, 20.0, 25.0
    assert max(counts) == 3


def test_charts_only_redraws_from_a_results_file(results: dict[str, Any], tmp_path: Path) -> None:
    source = tmp_path / "results.json"
    source.write_text(json.dumps(results), encoding="utf-8")
    folder = tmp_path / "images"
    assert main(["bench", "--charts-only", "--input", str(source), "--charts", str(folder)]) == 0
    assert (folder / LATENCY_FILE).exists()
    assert (
        main(["bench", "--charts-only", "--input", str(tmp_path / "none.json"), "--charts", str(folder)]) == 1
    )


def test_the_bench_never_fails_for_its_charts(tmp_path: Path) -> None:
    said: list[str] = []
    assert draw_charts({"workloads": ["not", "a", "mapping"]}, tmp_path, said.append) is False
    assert said == ["charts not drawn: AttributeError: 'list' object has no attribute 'items'"]
    said.clear()
    assert draw_charts({"workloads": {}}, tmp_path, said.append) is True
    assert said[-1] == f"0 charts drawn in {tmp_path}"
