"""CallCounter: the process's calls, and those of one run on its own thread."""

from __future__ import annotations

import threading

from shared.calls import CallCounter

IDENTITY = "GET /identity/oauth/token"


def test_each_thread_counts_its_own_calls_and_the_total_counts_all() -> None:
    calls = CallCounter(uncounted=[IDENTITY])
    ready = threading.Barrier(3)
    seen: dict[str, int] = {}

    def run(name: str, n: int) -> None:
        ready.wait()
        for _ in range(n):
            calls.record("GET /rest/v1/leads.json", 0.01)
        calls.record(IDENTITY, 0.01)  # Marketo leaves it out of its limits, and so do both counts
        seen[name] = calls.on_this_thread

    threads = [threading.Thread(target=run, args=(name, n)) for name, n in (("poll", 3), ("worker", 5))]
    for thread in threads:
        thread.start()
    ready.wait()
    for thread in threads:
        thread.join()

    assert seen == {"poll": 3, "worker": 5}
    assert calls.total == 8
    assert calls.on_this_thread == 0


def test_a_listener_hears_every_request_until_stopped() -> None:
    counter = CallCounter()
    heard: list[tuple[str, float]] = []
    stop = counter.listen(lambda endpoint, seconds: heard.append((endpoint, seconds)))
    counter.record("GET a", 0.5)
    stop()
    counter.record("GET b", 0.25)
    assert heard == [("GET a", 0.5)]
    assert counter.total == 2
