"""The StateStore contract, run against every adapter: SQLite and Table Storage on Azurite.

Each test takes ``store`` (or ``make_store`` for several views of one backing store, the way two
processes see it) from conftest.py, parametrized over the adapters. The clock is fake, so lease
expiry is tested by moving it, never by sleeping.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.errors import ConflictError
from shared.notices import FieldValue
from shared.ports import Checkpoint, LeaseState, Link, LogEntry, ParkedNotice, Shadow, StateStore
from tests.adapters.conftest import FakeClock

T = TypeVar("T")
StoreFactory = Callable[[], StateStore]
BIG_TEXT = "Ünïcødé " * 12_000 + "\U0001f600" * 5_000  # ~110 K characters: over 64 KiB of UTF-16


def race(calls: Sequence[Callable[[], T]]) -> list[T | BaseException]:
    """Run the calls at the same moment on their own threads; results or exceptions, in order."""
    barrier = threading.Barrier(len(calls))
    results: list[T | BaseException] = [RuntimeError("did not run")] * len(calls)

    def run(index: int, call: Callable[[], T]) -> None:
        barrier.wait()
        try:
            results[index] = call()
        except BaseException as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


# --- checkpoints --------------------------------------------------------------------------------


def test_missing_checkpoint_is_none(store: StateStore) -> None:
    assert store.get_checkpoint("marketo-poll") is None


def test_checkpoint_create_then_replace_with_its_etag(store: StateStore) -> None:
    created = store.put_checkpoint("marketo/poll#1?\\\t", "token-1", etag=None)
    assert created.etag
    assert store.get_checkpoint("marketo/poll#1?\\\t") == created

    replaced = store.put_checkpoint("marketo/poll#1?\\\t", "token-2", etag=created.etag)

    assert replaced.value == "token-2"
    assert replaced.etag != created.etag
    assert store.get_checkpoint("marketo/poll#1?\\\t") == replaced


def test_checkpoint_create_fails_when_it_exists(store: StateStore) -> None:
    created = store.put_checkpoint("sweep", "a", etag=None)
    with pytest.raises(ConflictError):
        store.put_checkpoint("sweep", "b", etag=None)
    assert store.get_checkpoint("sweep") == created


def test_checkpoint_replace_with_stale_etag_fails_and_keeps_value(store: StateStore) -> None:
    first = store.put_checkpoint("sweep", "a", etag=None)
    store.put_checkpoint("sweep", "b", etag=first.etag)
    with pytest.raises(ConflictError):
        store.put_checkpoint("sweep", "c", etag=first.etag)
    current = store.get_checkpoint("sweep")
    assert current is not None
    assert current.value == "b"


def test_checkpoint_replace_of_missing_one_fails(store: StateStore, make_store: StoreFactory) -> None:
    other = make_store()
    etag = other.put_checkpoint("elsewhere", "x", etag=None).etag
    with pytest.raises(ConflictError):
        store.put_checkpoint("never-created", "x", etag=etag)
    assert store.get_checkpoint("never-created") is None


def test_checkpoint_values_longer_than_a_property_round_trip(store: StateStore) -> None:
    store.put_checkpoint("big", BIG_TEXT, etag=None)
    checkpoint = store.get_checkpoint("big")
    assert checkpoint is not None
    assert checkpoint.value == BIG_TEXT


def test_two_racing_checkpoint_writes_with_one_etag_one_conflicts(make_store: StoreFactory) -> None:
    first, second = make_store(), make_store()
    base = first.put_checkpoint("poll", "start", etag=None)

    results = race(
        [
            lambda: first.put_checkpoint("poll", "from-first", etag=base.etag),
            lambda: second.put_checkpoint("poll", "from-second", etag=base.etag),
        ]
    )

    winners = [r for r in results if isinstance(r, Checkpoint)]
    losers = [r for r in results if isinstance(r, ConflictError)]
    assert len(winners) == 1, results
    assert len(losers) == 1, results
    assert first.get_checkpoint("poll") == winners[0]


# --- links --------------------------------------------------------------------------------------

GUID_A = "5C3E1A2B-0000-4F00-8000-00000000000A"
GUID_B = "5c3e1a2b-0000-4f00-8000-00000000000b"


def test_link_is_found_both_ways_and_dynamics_ids_ignore_case(store: StateStore) -> None:
    written = store.put_link(Link(42, "lead", GUID_A))
    assert written.etag

    assert store.get_links_by_marketo([42, 43]) == {42: written}
    assert store.get_links_by_dynamics("lead", [GUID_A.lower(), GUID_B]) == {GUID_A.lower(): written}
    assert store.get_links_by_dynamics("lead", [GUID_A]) == {GUID_A: written}
    assert store.get_links_by_dynamics("contact", [GUID_A]) == {}


def test_relinking_a_person_moves_both_indexes(store: StateStore) -> None:
    lead = store.put_link(Link(42, "lead", GUID_A))
    contact = store.put_link(Link(42, "contact", GUID_B, etag=lead.etag))

    assert store.get_links_by_marketo([42]) == {42: contact}
    assert store.get_links_by_dynamics("lead", [GUID_A]) == {}
    assert store.get_links_by_dynamics("contact", [GUID_B]) == {GUID_B: contact}
    # The lead is free again: another person may be linked to it.
    assert store.put_link(Link(7, "lead", GUID_A)).dynamics_id == GUID_A


def test_a_dynamics_record_links_to_one_person_only(store: StateStore) -> None:
    first = store.put_link(Link(1, "lead", GUID_A))
    with pytest.raises(ConflictError):
        store.put_link(Link(2, "lead", GUID_A.lower()))
    assert store.get_links_by_dynamics("lead", [GUID_A]) == {GUID_A: first}
    assert store.get_links_by_marketo([2]) == {}


def test_link_with_stale_etag_is_refused(store: StateStore) -> None:
    first = store.put_link(Link(1, "lead", GUID_A))
    second = store.put_link(Link(1, "lead", GUID_A))
    with pytest.raises(ConflictError):
        store.put_link(Link(1, "contact", GUID_B, etag=first.etag))
    assert store.get_links_by_marketo([1]) == {1: second}
    assert store.get_links_by_dynamics("contact", [GUID_B]) == {}


def test_delete_link_drops_both_indexes_and_is_idempotent(store: StateStore) -> None:
    link = store.put_link(Link(42, "lead", GUID_A))
    store.delete_link(link)
    store.delete_link(link)
    assert store.get_links_by_marketo([42]) == {}
    assert store.get_links_by_dynamics("lead", [GUID_A]) == {}


def test_deleting_an_outdated_link_keeps_the_current_one(store: StateStore) -> None:
    old = store.put_link(Link(42, "lead", GUID_A))
    current = store.put_link(Link(42, "contact", GUID_B))
    store.delete_link(old)
    assert store.get_links_by_marketo([42]) == {42: current}
    assert store.get_links_by_dynamics("contact", [GUID_B]) == {GUID_B: current}


def test_delete_link_with_stale_etag_is_refused(store: StateStore) -> None:
    first = store.put_link(Link(42, "lead", GUID_A))
    second = store.put_link(Link(42, "lead", GUID_A))
    with pytest.raises(ConflictError):
        store.delete_link(first)
    assert store.get_links_by_marketo([42]) == {42: second}


def test_batch_link_reads_return_exactly_the_linked_ones(store: StateStore) -> None:
    # Spread over several 1,000-id partitions, with gaps.
    linked = [n * 7 + (n // 50) * 1000 for n in range(1, 120)]
    for marketo_id in linked:
        store.put_link(Link(marketo_id, "lead", f"guid-{marketo_id}"))
    asked = list(range(0, 5000, 3)) + linked

    by_marketo = store.get_links_by_marketo(asked)
    by_dynamics = store.get_links_by_dynamics("lead", [f"GUID-{i}" for i in asked])

    assert set(by_marketo) == set(linked)
    assert {link.marketo_id for link in by_dynamics.values()} == set(linked)
    assert all(by_dynamics[f"GUID-{i}"].dynamics_id == f"guid-{i}" for i in linked)


# Dense runs (read as ranges), a partition's edges and sparse ids (read by RowKey), with holes.
EDGES = [0, 1, 998, 999, 1000, 1001, 1999, 2000, 2999, *range(3100, 3900, 2), 7005, 10_000, 123_456_789]


def test_batch_reads_across_partitions_ranges_holes_and_edges(store: StateStore) -> None:
    linked = EDGES[::2] + EDGES[1::7]
    for marketo_id in linked:
        store.put_link(Link(marketo_id, "lead", f"guid-{marketo_id}"))
    store.put_shadows([Shadow(i, {"i": i}) for i in linked])
    asked = sorted({*EDGES, *range(3000, 4000), 5000})

    assert set(store.get_links_by_marketo(asked)) == set(linked)
    assert {i: s.values for i, s in store.get_shadows(asked).items()} == {i: {"i": i} for i in linked}
    by_dynamics = store.get_links_by_dynamics("lead", [f"guid-{i}" for i in asked])
    assert {k: v.marketo_id for k, v in by_dynamics.items()} == {f"guid-{i}": i for i in linked}
    # A range read (200 of 800 ids) returns no row that was not asked, even inside its range.
    every_fourth = range(3100, 3900, 4)
    assert set(store.get_links_by_marketo(every_fourth)) == set(linked) & set(every_fourth)
    assert set(store.get_shadows(every_fourth)) == set(linked) & set(every_fourth)


def test_hints_never_change_who_is_linked(store: StateStore) -> None:
    first = store.put_link(Link(10, "lead", "guid-a"))
    second = store.put_link(Link(11, "lead", "guid-b"))
    contact = store.put_link(Link(12, "contact", "guid-c"))
    asked = ["GUID-A", "guid-b", "guid-c", "guid-d"]
    plain = store.get_links_by_dynamics("lead", asked)

    hints = [
        {"GUID-A": 10, "guid-b": 11},  # right
        {"GUID-A": 11, "guid-b": 10},  # each names the other's person
        {"guid-a": 99, "guid-b": 12, "guid-c": 12, "guid-d": 10},  # unlinked, other entity, stray
        {"guid-x": 10},  # a hint for a record nobody asked about
    ]
    for hint in hints:
        assert store.get_links_by_dynamics("lead", asked, hints=hint) == plain, hint
    assert plain == {"GUID-A": first, "guid-b": second}
    assert store.get_links_by_dynamics("contact", ["guid-c"], hints={"guid-c": 10}) == {"guid-c": contact}


_PERSONS = st.integers(0, 30)
_RECORDS = st.integers(0, 12)
_run = itertools.count()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    links=st.lists(st.tuples(_PERSONS, _RECORDS), max_size=14),
    hints=st.dictionaries(_RECORDS, _PERSONS, max_size=13),
)
def test_any_hints_give_the_answer_without_hints(
    store: StateStore, links: list[tuple[int, int]], hints: dict[int, int]
) -> None:
    base = 100_000 * (next(_run) + 1)  # each example its own persons and records
    owner: dict[int, int] = {}  # record -> person, as the links were made in order
    for person, record in links:
        try:
            store.put_link(Link(base + person, "lead", f"rec-{base}-{record}"))
        except ConflictError:
            continue  # the record is another person's
        owner = {r: p for r, p in owner.items() if p != person} | {record: person}
    asked = [f"REC-{base}-{r}" for r in range(13)]
    hinted = {f"rec-{base}-{r}": base + p for r, p in hints.items()}

    found = store.get_links_by_dynamics("lead", asked, hints=hinted)

    assert found == store.get_links_by_dynamics("lead", asked)
    expected = {f"REC-{base}-{r}": base + p for r, p in owner.items()}
    assert {k: v.marketo_id for k, v in found.items()} == expected


def test_a_hint_naming_the_previous_person_of_a_relinked_record_finds_the_new_one(store: StateStore) -> None:
    store.put_link(Link(20, "lead", "guid-r"))
    store.put_link(Link(20, "lead", "guid-s"))  # person 20 moved on
    now = store.put_link(Link(21, "lead", "guid-r"))
    assert store.get_links_by_dynamics("lead", ["guid-r"], hints={"guid-r": 20}) == {"guid-r": now}
    store.delete_link(now)
    assert store.get_links_by_dynamics("lead", ["guid-r"], hints={"guid-r": 21}) == {}


def test_two_persons_racing_for_one_dynamics_record_one_wins(make_store: StoreFactory) -> None:
    stores = [make_store() for _ in range(4)]
    calls = [functools.partial(s.put_link, Link(100 + i, "lead", GUID_A)) for i, s in enumerate(stores)]
    results = race(calls)

    winners = [r for r in results if isinstance(r, Link)]
    assert len(winners) == 1, results
    assert all(isinstance(r, ConflictError) for r in results if r is not winners[0]), results
    winner = winners[0]
    assert stores[0].get_links_by_dynamics("lead", [GUID_A]) == {GUID_A: winner}
    assert stores[0].get_links_by_marketo([100, 101, 102, 103]) == {winner.marketo_id: winner}


def test_every_link_is_listed_page_by_page_in_marketo_id_order(store: StateStore) -> None:
    # Across several 1,000-id partitions, with gaps, stored out of order.
    linked = sorted({n * 37 + (n // 20) * 1000 for n in range(1, 90)}, reverse=True)
    for marketo_id in linked:
        store.put_link(Link(marketo_id, "contact" if marketo_id % 2 else "lead", f"guid-{marketo_id}"))
    listed: list[Link] = []
    after = 0
    while True:
        page = store.list_links(after=after, limit=25)
        listed += page
        if len(page) < 25:
            break
        after = page[-1].marketo_id
    assert [link.marketo_id for link in listed] == sorted(linked)
    assert all(link.dynamics_id == f"guid-{link.marketo_id}" for link in listed)
    assert store.list_links(after=max(linked)) == []


def test_links_stored_in_bulk_report_each_one_refused(store: StateStore) -> None:
    store.put_link(Link(1, "lead", GUID_A))
    refused = store.put_links(
        [Link(2, "lead", "guid-2"), Link(3, "lead", GUID_A.upper()), Link(4, "contact", "guid-4")]
    )
    assert set(refused) == {3}
    assert isinstance(refused[3], ConflictError)
    assert set(store.get_links_by_marketo([1, 2, 3, 4])) == {1, 2, 4}
    assert store.put_links([Link(2, "lead", "guid-2")]) == {}  # the same link again: fine


def test_many_links_stored_in_bulk_are_found_both_ways(store: StateStore) -> None:
    # Several person partitions and many record partitions, leads and contacts.
    wanted = [
        Link(m, "contact" if m % 3 == 0 else "lead", f"00000000-0000-4000-8000-{m:012d}")
        for m in [*range(1, 260), *range(4_000, 4_150)]
    ]
    assert store.put_links(wanted) == {}

    by_person = store.get_links_by_marketo(link.marketo_id for link in wanted)
    assert {m: (link.entity, link.dynamics_id) for m, link in by_person.items()} == {
        link.marketo_id: (link.entity, link.dynamics_id) for link in wanted
    }
    for entity in ("lead", "contact"):
        records = [link.dynamics_id.upper() for link in wanted if link.entity == entity]
        found = store.get_links_by_dynamics(entity, records)
        assert {r: link.marketo_id for r, link in found.items()} == {
            link.dynamics_id.upper(): link.marketo_id for link in wanted if link.entity == entity
        }
    assert store.put_links(wanted[:5]) == {}  # the same links again: fine


def test_links_stored_in_bulk_among_existing_ones_keep_each_rule(store: StateStore) -> None:
    kept = store.put_link(Link(1, "lead", GUID_A))
    moved = store.put_link(Link(2, "lead", "guid-2"))
    refused = store.put_links(
        [
            Link(3, "lead", GUID_A),  # linked to person 1
            Link(2, "lead", "guid-2b"),  # person 2 moves to another record
            Link(5, "lead", "guid-5", etag="not-its-etag"),  # person 5 has no link: stale
            Link(6, "contact", "guid-6"),
            Link(7, "lead", "guid-7"),
            Link(8, "lead", "guid-7"),  # the same record twice: one of the two gets it
        ]
    )
    assert set(refused) in ({3, 5, 7}, {3, 5, 8})
    assert all(isinstance(exc, ConflictError) for exc in refused.values())
    links = store.get_links_by_marketo(range(1, 9))
    assert links[1] == kept
    assert links[2].dynamics_id == "guid-2b"
    assert links[2].etag != moved.etag
    assert set(links) == {1, 2, 6} | ({7, 8} - set(refused))
    assert store.get_links_by_dynamics("lead", ["guid-2"]) == {}  # person 2's former record
    assert store.get_links_by_dynamics("lead", ["guid-7"])["guid-7"].marketo_id in {7, 8} - set(refused)


def test_the_backfill_job_lives_in_the_store_and_is_written_over_its_last_version(
    make_store: StoreFactory,
) -> None:
    from shared.backfill.job import JobState, JobStore, Options, Phase

    first, second = JobStore(make_store()), JobStore(make_store())
    assert first.load() is None
    job = JobState.new(Options(dry_run=True))
    job.enter(Phase.DYNAMICS, total=10)
    job.advance(4)
    job.count("records_read", 4)
    etag = first.save(job, None)
    loaded, loaded_etag = second.load() or (None, "")
    assert loaded is not None
    assert loaded.id == job.id
    assert loaded.progress[Phase.DYNAMICS].done == 4
    assert loaded.counts == {"records_read": 4}
    loaded.advance(6)
    second.save(loaded, loaded_etag)
    with pytest.raises(ConflictError):  # the first runner's view is stale now
        first.save(job, etag)
    replaced = JobState.new(Options())
    first.replace(replaced)
    assert (first.load() or (None, ""))[0] == replaced


# --- shadows ------------------------------------------------------------------------------------

VALUES: dict[str, FieldValue] = {
    "email": "a@example.com",
    "score": 17,
    "revenue": 1234.5,
    "optedOut": False,
    "phone": None,
    "name": "Zoë 😀",
}


def test_shadows_round_trip_every_value_type(store: StateStore) -> None:
    store.put_shadows([Shadow(1, VALUES), Shadow(2, {"email": "b@example.com"})])
    shadows = store.get_shadows([1, 2, 3])
    assert set(shadows) == {1, 2}
    assert shadows[1].values == VALUES
    assert all(type(shadows[1].values[k]) is type(v) for k, v in VALUES.items())
    assert shadows[1].etag


def test_shadow_larger_than_a_property_is_not_truncated(store: StateStore) -> None:
    values: dict[str, FieldValue] = {"notes": BIG_TEXT, "more": BIG_TEXT[::-1]}
    store.put_shadows([Shadow(9, values)])
    assert store.get_shadows([9])[9].values == values


def test_stale_shadow_is_refused_and_the_others_are_written(store: StateStore) -> None:
    store.put_shadows([Shadow(1, {"a": 1}), Shadow(2, {"a": 1})])
    read = store.get_shadows([1, 2])
    store.put_shadows([Shadow(1, {"a": 2}, etag=read[1].etag)])

    with pytest.raises(ConflictError, match=r"\[1\]"):
        store.put_shadows([Shadow(1, {"a": 3}, etag=read[1].etag), Shadow(2, {"a": 3}, etag=read[2].etag)])

    now = store.get_shadows([1, 2])
    assert now[1].values == {"a": 2}
    assert now[2].values == {"a": 3}


def test_conditional_shadow_write_after_delete_conflicts(store: StateStore) -> None:
    store.put_shadows([Shadow(5, {"a": 1})])
    etag = store.get_shadows([5])[5].etag
    store.delete_shadow(5)
    store.delete_shadow(5)
    with pytest.raises(ConflictError):
        store.put_shadows([Shadow(5, {"a": 2}, etag=etag)])
    assert store.get_shadows([5]) == {}


def test_many_shadows_in_one_call(store: StateStore) -> None:
    shadows = [Shadow(i, {"i": i}) for i in range(1, 2500, 11)]  # 228 persons, three partitions
    store.put_shadows(shadows)
    read = store.get_shadows(range(0, 2600))
    assert {i: s.values for i, s in read.items()} == {s.marketo_id: s.values for s in shadows}


# --- sync log -----------------------------------------------------------------------------------


def _at(clock: FakeClock, seconds: float) -> datetime:
    return datetime.fromtimestamp(clock.now + seconds, tz=UTC)


def test_log_is_read_per_person_newest_first(store: StateStore, clock: FakeClock) -> None:
    store.append_log(
        [
            LogEntry(1, GUID_A, "lead", "to_dynamics", "first", ("email",), _at(clock, -30), "n1"),
            LogEntry(2, None, "lead", "failed", "other person", at=_at(clock, -20)),
            LogEntry(1, GUID_A, "lead", "to_marketo", "second", ("phone", "score"), _at(clock, -10)),
        ]
    )
    entries = store.read_log(marketo_id=1)
    assert [e.detail for e in entries] == ["second", "first"]
    assert entries[1] == LogEntry(
        1, GUID_A, "lead", "to_dynamics", "first", ("email",), _at(clock, -30), "n1"
    )
    assert [e.detail for e in store.read_log(dynamics_id=GUID_A.lower())] == ["second", "first"]
    assert [e.detail for e in store.read_log(marketo_id=1, limit=1)] == ["second"]


def test_log_by_both_ids_is_their_union_without_duplicates(store: StateStore, clock: FakeClock) -> None:
    store.append_log(
        [
            LogEntry(1, None, "lead", "failed", "marketo only", at=_at(clock, -3)),
            LogEntry(None, GUID_B, "contact", "failed", "dynamics only", at=_at(clock, -2)),
            LogEntry(1, GUID_B, "contact", "linked", "both", at=_at(clock, -1)),
            LogEntry(3, None, "lead", "failed", "someone else", at=_at(clock, 0)),
        ]
    )
    details = [e.detail for e in store.read_log(marketo_id=1, dynamics_id=GUID_B)]
    assert details == ["both", "dynamics only", "marketo only"]


def test_log_without_ids_lists_recent_entries_and_stamps_missing_times(
    store: StateStore, clock: FakeClock
) -> None:
    store.append_log([LogEntry(None, None, "lead", "failed", "older", at=_at(clock, -3600))])
    store.append_log([LogEntry(None, None, "lead", "failed", "now")])
    entries = store.read_log()
    assert [e.detail for e in entries] == ["now", "older"]
    assert entries[0].at == datetime.fromtimestamp(clock.now, tz=UTC)


def test_log_entries_appended_together_keep_their_order(store: StateStore, clock: FakeClock) -> None:
    at = _at(clock, 0)
    store.append_log([LogEntry(8, None, "lead", "step", f"step {i}", at=at) for i in range(5)])
    assert [e.detail for e in store.read_log(marketo_id=8)] == [f"step {i}" for i in reversed(range(5))]


def test_long_log_detail_is_kept_whole(store: StateStore) -> None:
    store.append_log([LogEntry(4, None, "lead", "failed", BIG_TEXT)])
    assert store.read_log(marketo_id=4)[0].detail == BIG_TEXT


def _details(entries: Sequence[LogEntry]) -> list[str]:
    return [e.detail for e in entries]


DAY = 86_400.0


def test_log_of_one_person_is_read_across_days_newest_first(store: StateStore, clock: FakeClock) -> None:
    clock.advance(-2 * DAY)
    store.append_log([LogEntry(1, GUID_A, "lead", "to_dynamics", f"day 1 #{i}") for i in range(3)])
    clock.advance(DAY)
    store.append_log([LogEntry(1, None, "lead", "failed", "day 2"), LogEntry(2, None, "lead", "x", "other")])
    clock.advance(DAY)
    store.append_log([LogEntry(None, GUID_A, "lead", "unlinked", "day 3")])
    assert _details(store.read_log(marketo_id=1)) == ["day 2", "day 1 #2", "day 1 #1", "day 1 #0"]
    assert _details(store.read_log(marketo_id=1, limit=2)) == ["day 2", "day 1 #2"]
    assert _details(store.read_log(dynamics_id=GUID_A.upper(), limit=2)) == ["day 3", "day 1 #2"]
    both = _details(store.read_log(marketo_id=1, dynamics_id=GUID_A))
    assert both == ["day 3", "day 2", "day 1 #2", "day 1 #1", "day 1 #0"]
    assert _details(store.read_log(limit=3)) == ["day 3", "other", "day 2"]


def test_log_retention_drops_older_entries_and_keeps_newer(store: StateStore, clock: FakeClock) -> None:
    now = clock.now
    clock.advance(-40 * DAY)
    store.append_log([LogEntry(1, GUID_A, "lead", "to_dynamics", "40 days ago")])
    store.append_log([LogEntry(None, None, "lead", "alert", "an alert 40 days ago")])
    clock.now = now - 29 * DAY
    store.append_log([LogEntry(1, None, "lead", "failed", "29 days ago")])
    clock.now = now
    store.append_log([LogEntry(1, GUID_A, "lead", "to_marketo", "today")])
    cutoff = datetime.fromtimestamp(now, tz=UTC) - timedelta(days=30)

    store.expire_log(cutoff)

    assert _details(store.read_log(marketo_id=1)) == ["today", "29 days ago"]
    assert _details(store.read_log(dynamics_id=GUID_A)) == ["today"]
    assert _details(store.read_log()) == ["today", "29 days ago"]
    store.expire_log(cutoff)  # again: nothing more goes
    assert _details(store.read_log()) == ["today", "29 days ago"]


def test_log_retention_on_an_empty_log_does_nothing(store: StateStore, clock: FakeClock) -> None:
    store.expire_log(datetime.fromtimestamp(clock.now, tz=UTC))
    assert store.read_log() == []


# --- leases -------------------------------------------------------------------------------------


def test_lease_is_exclusive_until_released(store: StateStore) -> None:
    assert store.acquire_lease("flow:42", "call-a", 30)
    assert not store.acquire_lease("flow:42", "call-b", 30)
    store.release_lease("flow:42", "call-b")  # not the owner: nothing happens
    assert not store.acquire_lease("flow:42", "call-b", 30)
    store.release_lease("flow:42", "call-a")
    assert store.acquire_lease("flow:42", "call-b", 30)


def test_lease_owner_may_renew_it(store: StateStore, clock: FakeClock) -> None:
    assert store.acquire_lease("flow:42", "call-a", 30)
    clock.advance(20)
    assert store.acquire_lease("flow:42", "call-a", 30)
    clock.advance(20)  # 40 s after the first acquire, 20 s after the renewal
    assert not store.acquire_lease("flow:42", "call-b", 30)


def test_expired_lease_is_taken_over(store: StateStore, clock: FakeClock) -> None:
    assert store.acquire_lease("flow:42", "call-a", 30)
    clock.advance(31)
    assert store.acquire_lease("flow:42", "call-b", 30)
    assert not store.acquire_lease("flow:42", "call-a", 30)
    store.release_lease("flow:42", "call-a")  # the old owner's late release must not free it
    assert not store.acquire_lease("flow:42", "call-c", 30)


def test_a_lease_whose_holder_is_gone_is_taken_at_once(store: StateStore, clock: FakeClock) -> None:
    assert store.acquire_lease("sweep", "host/41/crashed", 30)
    assert not store.acquire_lease("sweep", "host/42/new", 30)
    assert store.acquire_lease("sweep", "host/42/new", 30, replacing="host/41/crashed")
    lease = store.get_lease("sweep")
    assert lease is not None
    assert (lease.owner, lease.expires_at) == ("host/42/new", _at(clock, 30))
    # Naming a holder that is no longer the holder takes nothing.
    assert not store.acquire_lease("sweep", "host/43/late", 30, replacing="host/41/crashed")
    assert store.get_lease("sweep").owner == "host/42/new"  # type: ignore[union-attr]


def test_get_lease_says_who_holds_it_until_when(store: StateStore, clock: FakeClock) -> None:
    assert store.get_lease("poll") is None
    assert store.acquire_lease("poll", "a", 30)
    clock.advance(10)
    assert store.acquire_lease("poll", "a", 30)  # renewed: 30 s from now
    assert store.get_lease("poll") == LeaseState("poll", "a", _at(clock, 30))
    store.release_lease("poll", "a")
    assert store.get_lease("poll") is None


def test_racing_to_replace_a_gone_holder_exactly_one_wins(make_store: StoreFactory) -> None:
    stores = [make_store() for _ in range(6)]
    assert stores[0].acquire_lease("sweep", "crashed", 30)
    results = race(
        [
            functools.partial(s.acquire_lease, "sweep", f"owner-{i}", 30, replacing="crashed")
            for i, s in enumerate(stores)
        ]
    )
    assert results.count(True) == 1, results


def test_racing_for_a_free_lease_exactly_one_wins(make_store: StoreFactory) -> None:
    stores = [make_store() for _ in range(6)]
    results = race(
        [functools.partial(s.acquire_lease, "flow:7", f"owner-{i}", 30) for i, s in enumerate(stores)]
    )
    assert results.count(True) == 1, results
    assert results.count(False) == 5, results


def test_racing_for_an_expired_lease_exactly_one_wins(make_store: StoreFactory, clock: FakeClock) -> None:
    stores = [make_store() for _ in range(6)]
    assert stores[0].acquire_lease("flow:7", "crashed", 30)
    clock.advance(60)
    results = race(
        [functools.partial(s.acquire_lease, "flow:7", f"owner-{i}", 30) for i, s in enumerate(stores)]
    )
    assert results.count(True) == 1, results


# --- parked notices -----------------------------------------------------------------------------


def test_park_list_replace_and_unpark(store: StateStore, clock: FakeClock) -> None:
    t0 = _at(clock, 0)
    store.park(
        [
            ParkedNotice("mp-2", '{"n": 2}', "attempts exhausted", t0 + timedelta(seconds=5)),
            ParkedNotice("mp-1", BIG_TEXT, "attempts exhausted", t0),
        ]
    )
    assert [p.dedup_id for p in store.parked()] == ["mp-1", "mp-2"]
    assert store.parked()[0].body == BIG_TEXT

    store.park([ParkedNotice("mp-1", "{}", "parked again", t0 + timedelta(seconds=9))])
    assert [(p.dedup_id, p.reason) for p in store.parked()] == [
        ("mp-2", "attempts exhausted"),
        ("mp-1", "parked again"),
    ]

    store.unpark(["mp-1", "unknown"])
    assert [p.dedup_id for p in store.parked()] == ["mp-2"]
