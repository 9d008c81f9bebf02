"""Timer functions: schedule, manual runs, no overlap, past-due after a restart, retries."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from mdsync.devhost import DevHost
from mdsync.devhost.timers import MonitorStore
from tests.devhost.conftest import HOST_KEY, MASTER_KEY, HostFactory, wait_for
from tests.devhost.sample_app import Recorder

EVERY_SECOND = "* * * * * *"


def test_timer_fires_on_its_schedule(make_host: HostFactory, recorder: Recorder) -> None:
    make_host(schedule=EVERY_SECOND).start()
    wait_for(lambda: len(recorder.timer_calls) >= 2, what="two scheduled runs")
    assert recorder.timer_calls[0].past_due is False


def test_trigger_timer_runs_it_now(host: DevHost, recorder: Recorder) -> None:
    host.trigger_timer("tick")
    assert len(recorder.timer_calls) == 1
    host.trigger_timer("TICK", past_due=True)  # names are case-insensitive, as in Azure
    assert [c.past_due for c in recorder.timer_calls] == [False, True]


def test_trigger_timer_rejects_other_functions(host: DevHost) -> None:
    with pytest.raises(LookupError):
        host.trigger_timer("nope")
    with pytest.raises(ValueError, match="not a timer"):
        host.trigger_timer("items")


def test_runs_of_one_function_never_overlap(make_host: HostFactory, recorder: Recorder) -> None:
    recorder.timer_duration = 0.2
    host = make_host(schedule=EVERY_SECOND).start()
    manual = [threading.Thread(target=host.trigger_timer, args=("tick",)) for _ in range(3)]
    for thread in manual:
        thread.start()
    for thread in manual:
        thread.join(30)
    wait_for(lambda: len(recorder.timer_calls) >= 4, what="manual and scheduled runs")
    assert recorder.timer_max_active == 1


def test_retry_policy_reruns_a_failed_timer(host: DevHost, recorder: Recorder) -> None:
    recorder.timer_failures_left = 2  # the sample's policy allows two retries
    host.trigger_timer("tick")
    assert [c.retry_count for c in recorder.timer_calls] == [0, 1, 2]


def test_a_timer_failing_beyond_its_retries_raises_from_trigger_timer(
    host: DevHost, recorder: Recorder
) -> None:
    recorder.timer_failures_left = 3
    with pytest.raises(RuntimeError, match="asked by the test"):
        host.trigger_timer("tick")
    assert len(recorder.timer_calls) == 3


def test_admin_route_runs_a_timer(host: DevHost, recorder: Recorder, http: requests.Session) -> None:
    url = f"{host.url}/admin/functions/tick"
    assert http.post(url, json={"input": ""}).status_code == 401
    assert http.post(url, json={"input": ""}, headers={"x-functions-key": HOST_KEY}).status_code == 401
    response = http.post(url, json={"input": ""}, headers={"x-functions-key": MASTER_KEY})
    assert response.status_code == 202
    wait_for(lambda: recorder.timer_calls, what="the admin-triggered run")
    assert (
        http.post(f"{host.url}/admin/functions/nope", headers={"x-functions-key": MASTER_KEY}).status_code
        == 404
    )
    assert (
        http.post(f"{host.url}/admin/functions/items", headers={"x-functions-key": MASTER_KEY}).status_code
        == 400
    )


def test_status_is_persisted_and_a_missed_occurrence_runs_past_due_after_restart(
    make_host: HostFactory, recorder: Recorder, tmp_path: Path
) -> None:
    state = tmp_path / "timer-state"
    first = make_host(schedule=EVERY_SECOND, state_dir=state).start()
    wait_for(lambda: recorder.timer_calls, what="a first scheduled run")
    first.stop()
    status = MonitorStore(state).load("tick")
    assert status is not None
    assert status.last is not None
    assert status.next > status.last
    # The host is down while the recorded Next passes.
    wait_for(lambda: datetime.now(UTC) > status.next, what="the recorded Next to pass")

    recorder.timer_calls.clear()
    make_host(schedule=EVERY_SECOND, state_dir=state).start()
    first_call = wait_for(
        lambda: recorder.timer_calls and recorder.timer_calls[0], what="a run after restart"
    )
    assert first_call.past_due is True
    assert first_call.schedule_status["Next"] == status.next.isoformat()


def test_no_status_and_no_run_at_start_for_a_fresh_unmonitored_schedule(
    make_host: HostFactory, recorder: Recorder, tmp_path: Path
) -> None:
    host = make_host(state_dir=tmp_path / "fresh").start()
    assert MonitorStore(tmp_path / "fresh").load("tick") is None
    host.stop()
    assert recorder.timer_calls == []
