"""Several instances, one Marketo budget: N processes, each with its own Marketo client (allowed
the worker's whole share on its own, as every Function instance is) and its own connection to
one SQLite state store holding the shared rolling window (``shared.marketo.budget``), read persons
from the Marketo simulator as fast as the budget lets them. Measured: the calls Marketo answered
per second together over whole windows (the rolling window lets a whole share go at once, which
a span that is not a multiple of the window would count as rate), against Marketo's 100 per 20 s,
and how many it answered 606.

They make the worker's read (Get Leads by ids, 300 ids a call), not whole sync batches: the
budget is what is measured, and each call takes its place in the window whatever it is."""

from __future__ import annotations

import json
import multiprocessing
import time
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from mdsync.harness import LocalSystem
from shared.adapters.sqlite_state import SqliteStateStore
from shared.http import make_session
from shared.marketo.budget import MARGIN, WINDOW, StoredCallWindow
from shared.marketo.client import MarketoClient

FIELDS = ["id", "email", "title"]


def _instance(settings: dict[str, Any], start: Event, until: float, index: int) -> None:
    store = SqliteStateStore(Path(settings["state"]))
    client = MarketoClient(
        settings["url"],
        settings["client_id"],
        settings["client_secret"],
        session=make_session(extra_ca_file=settings["ca_file"]),
        max_calls_per_20s=settings["share"],
        budget=StoredCallWindow(store, "marketo", settings["share"]),
    )
    ids = settings["ids"]
    start.wait()
    answered: list[float] = []
    while time.time() < until:
        client.get_leads_by_ids(ids, FIELDS)
        answered.append(time.time())
    Path(settings["times"].format(index=index)).write_text(json.dumps(answered), encoding="utf-8")
    store.close()


def shared_budget(
    system: LocalSystem, workdir: Path, *, processes: int, seconds: float, share: int, ids: list[int]
) -> dict[str, Any]:
    settings = system.deps.settings
    access = settings.marketo()
    state = workdir / "instances.state.sqlite3"
    times = str(workdir / "instance-{index}.json")  # each process's answered calls
    config = {
        "url": access.base_url,
        "client_id": access.client_id,
        "client_secret": access.client_secret,
        "ca_file": str(settings.extra_ca_file) if settings.extra_ca_file else None,
        "share": share,
        "state": str(state),
        "ids": ids[:300],
        "times": times,
    }
    system.stack.marketo.state.reset_calls()  # the peak in a window, from here on
    before = system.stack.marketo.state.calls()
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    lead_time = 10.0  # for the interpreters to start and import
    started = time.time() + lead_time
    until = started + seconds
    workers = [
        context.Process(target=_instance, args=(config, start, until, i), daemon=True)
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    time.sleep(max(0.0, started - time.time()))
    start.set()
    for worker in workers:
        worker.join(timeout=seconds + 120)
    elapsed = time.time() - started
    after = system.stack.marketo.state.calls()
    answered_606 = after["byErrorCode"].get("606", 0) - before["byErrorCode"].get("606", 0)
    answered = [json.loads(Path(times.format(index=i)).read_text()) for i in range(processes)]
    per_process = [len(times) for times in answered]
    calls = sum(per_process)
    rate = calls / elapsed
    # Over whole windows: clients that keep the budget busy take a whole share at once, then
    # wait for the window to pass, so a span that is not a multiple of the window counts one
    # burst too many or too few. The spans are cut half-way between the bursts.
    span = WINDOW + MARGIN
    first = min((t for times in answered for t in times), default=until)
    windows = int((until - first + span / 2) // span)
    since, end = first - span / 2, first - span / 2 + windows * span
    within = sum(1 for times in answered for t in times if since <= t < end)
    sustained = within / (end - since) if windows else None
    return {
        "processes": processes,
        "seconds": round(elapsed, 1),
        "share_per_20s": share,
        "calls": calls,
        "calls_per_process": per_process,
        "answered_606": answered_606,
        "calls_per_second": rate,
        "whole_windows": windows,
        "sustained_seconds": round(end - since, 1),
        "sustained_calls_per_second": sustained,
        "fraction_of_api_rate": None if sustained is None else sustained / (100 / 20),
        "peak_calls_in_window": after.get("peakCallsInWindow"),
    }
