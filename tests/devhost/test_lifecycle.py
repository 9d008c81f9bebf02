"""Starting and stopping the host: threads, port, environment, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import requests

from mdsync.devhost import DevHost
from shared.adapters.sqlite_queue import SqliteQueue
from tests.devhost.conftest import HostFactory, notice, wait_for
from tests.devhost.sample_app import Recorder

REPO = Path(__file__).resolve().parents[2]


def _host_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith(("timer-", "pump-", "devhost"))}


def test_stop_is_clean(make_host: HostFactory, recorder: Recorder, http: requests.Session) -> None:
    before = _host_threads()
    host = make_host(schedule="* * * * * *")
    host.start()
    url = host.url
    assert http.get(f"{url}/api/ping").status_code == 200
    wait_for(lambda: recorder.timer_calls, what="a timer run")
    host.stop()
    host.stop()  # twice is harmless
    assert _host_threads() == before
    with pytest.raises(requests.ConnectionError):
        http.get(f"{url}/api/ping", timeout=2)


def test_stop_waits_for_the_batch_in_progress_and_settles_it(
    make_host: HostFactory, recorder: Recorder, queue: SqliteQueue
) -> None:
    recorder.hold = threading.Event()
    others = set(threading.enumerate())  # a session-wide local system may run hosts of its own
    host = make_host().start()
    servers = [t for t in threading.enumerate() if t not in others and t.name == "devhost-thread"]
    assert len(servers) == 1
    queue.send([notice("slow")])
    host.wake()
    wait_for(lambda: recorder.batches, what="the delivery to start")

    def release_once_the_server_is_down() -> None:
        wait_for(lambda: not servers[0].is_alive(), timeout=30, what="the HTTP server to stop")
        assert recorder.hold is not None
        recorder.hold.set()

    releaser = threading.Thread(target=release_once_the_server_is_down)
    releaser.start()
    host.stop()
    finished_when_stop_returned = recorder.finished_batches
    releaser.join(10)
    assert finished_when_stop_returned == 1
    assert queue.active_count() == 0  # completed, not left locked


def test_a_host_starts_once(host: DevHost) -> None:
    with pytest.raises(RuntimeError, match="starts once"):
        host.start()


def test_the_port_can_be_chosen(make_host: HostFactory, http: requests.Session) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    host = make_host(port=port).start()
    assert host.url == f"http://localhost:{port}"
    assert http.get(f"http://127.0.0.1:{port}/api/ping").text == "pong"


SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from mdsync.devhost import DevHost, load_function_app
    from shared.adapters.sqlite_queue import SqliteQueue

    settings = {"TICK_SCHEDULE": "0 0 0 1 1 *", "NOTICE_QUEUE": "notices"}
    import os
    os.environ.update(settings)
    app = load_function_app(Path(sys.argv[1]))
    queue = SqliteQueue(Path(sys.argv[2]) / "q.sqlite3", queue_name="notices")
    host = DevHost(app, queue=queue, port=0, function_keys={}, host_keys=[], settings_env={},
                   state_dir=Path(sys.argv[2]))
    host.start()
    print(host.url, flush=True)
    host.run_forever()
    print("stopped cleanly", flush=True)
    """
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_run_forever_stops_cleanly_on_a_signal(tmp_path: Path, http: requests.Session, signum: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    sample = Path(__file__).with_name("sample_app.py")
    with subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(sample), str(tmp_path)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://localhost:"), process.stderr.read() if process.stderr else ""
        assert http.get(f"{url}/api/ping", timeout=10).text == "pong"
        process.send_signal(signum)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "stopped cleanly" in out
