"""The OperationsStore contract (the console's tallies, errors and audit trail), run against
SQLite and Table Storage on Azurite, like the state store's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.ports import AuditEntry, ErrorQuery, OperationsStore, SyncError, Tally
from tests.adapters.test_state_contract import race

NOW = datetime(2030, 3, 17, 10, 30, tzinfo=UTC)
HOUR = NOW.replace(minute=0)


def error(key: str, *, at: datetime = NOW, **fields: object) -> SyncError:
    values: dict[str, object] = {
        "kind": "refused",
        "reason": "Dynamics 0x80040203: required",
        "message": "A lead needs a company.",
        "entity": "lead",
        "marketo_id": 1001,
        "field": "company",
        "value": "",
        "first_seen": at,
        "last_seen": at,
    }
    values.update(fields)
    return SyncError(key=key, **values)  # type: ignore[arg-type]


# --- tallies ------------------------------------------------------------------------------------


def test_tallies_add_up_per_hour_entity_direction_and_name(operations: OperationsStore) -> None:
    operations.add_tallies([Tally(NOW, "lead", "to_marketo", "synced", 3)])
    operations.add_tallies(
        [
            Tally(NOW + timedelta(minutes=10), "lead", "to_marketo", "synced", 2),
            Tally(NOW, "contact", "to_marketo", "synced", 1),
            Tally(NOW - timedelta(hours=1), "lead", "to_marketo", "synced", 7),
            Tally(NOW - timedelta(hours=3), "lead", "to_marketo", "synced", 100),
        ]
    )
    found = {(t.hour, t.entity, t.name): t.count for t in operations.read_tallies(NOW - timedelta(hours=1))}
    assert found == {
        (HOUR, "lead", "synced"): 5,
        (HOUR, "contact", "synced"): 1,
        (HOUR - timedelta(hours=1), "lead", "synced"): 7,
    }


def test_concurrent_tallies_lose_no_count(operations: OperationsStore) -> None:
    calls = [lambda: operations.add_tallies([Tally(NOW, "lead", "to_dynamics", "synced", 1)])] * 6
    results = race(calls)
    assert not [r for r in results if isinstance(r, BaseException)]
    (tally,) = operations.read_tallies(NOW)
    assert tally.count == 6


# --- errors -------------------------------------------------------------------------------------


def test_an_error_seen_again_keeps_its_first_time_and_counts(operations: OperationsStore) -> None:
    operations.record_errors([error("k1", value="x")])
    later = NOW + timedelta(minutes=5)
    operations.record_errors([error("k1", at=later, value="y")])
    (found,) = operations.list_errors(ErrorQuery()).errors
    assert (found.first_seen, found.last_seen, found.count, found.value) == (NOW, later, 2, "y")
    assert operations.get_errors(["k1", "nope"]) == {"k1": found}


def test_errors_page_newest_first_with_a_cursor(operations: OperationsStore) -> None:
    operations.record_errors([error(f"k{i}", at=NOW + timedelta(seconds=i)) for i in range(7)])
    first = operations.list_errors(ErrorQuery(), limit=3)
    assert [e.key for e in first.errors] == ["k6", "k5", "k4"]
    assert first.cursor
    second = operations.list_errors(ErrorQuery(), cursor=first.cursor, limit=3)
    third = operations.list_errors(ErrorQuery(), cursor=second.cursor, limit=3)
    assert [e.key for e in second.errors + third.errors] == ["k3", "k2", "k1", "k0"]
    assert third.cursor is None


def test_errors_filter_and_group(operations: OperationsStore) -> None:
    operations.record_errors(
        [
            error("a", marketo_id=1, field="company"),
            error("b", marketo_id=2, field="Company", at=NOW + timedelta(seconds=1)),
            error(
                "c",
                kind="parked",
                reason="ServiceUnavailable",
                marketo_id=None,
                dynamics_id="AB-12",
                entity="contact",
                field="",
            ),
            error(
                "d",
                kind="configuration",
                reason="MARKETO_CLIENT_SECRET",
                marketo_id=None,
                entity="",
                field="",
                message="wrong secret",
            ),
        ]
    )

    def keys(query: ErrorQuery) -> list[str]:
        return sorted(e.key for e in operations.list_errors(query).errors)

    assert keys(ErrorQuery(kind="refused")) == ["a", "b"]
    assert keys(ErrorQuery(person="2")) == ["b"]
    assert keys(ErrorQuery(person="ab-12")) == ["c"]
    assert keys(ErrorQuery(entity="contact")) == ["c"]
    assert keys(ErrorQuery(field="company")) == ["a", "b"]
    assert keys(ErrorQuery(text="SECRET")) == ["d"]
    groups = {(g.kind, g.reason): g.errors for g in operations.error_groups(ErrorQuery())}
    assert groups == {
        ("refused", "Dynamics 0x80040203: required"): 2,
        ("parked", "ServiceUnavailable"): 1,
        ("configuration", "MARKETO_CLIENT_SECRET"): 1,
    }
    assert operations.error_groups(ErrorQuery())[0].errors == 2


def test_resolving_a_persons_errors_drops_only_those_kinds(operations: OperationsStore) -> None:
    operations.record_errors(
        [error("a", marketo_id=1), error("b", marketo_id=1, kind="parked"), error("c", marketo_id=2)]
    )
    assert operations.resolve_errors([1, 3], ["refused"]) == 1
    assert sorted(e.key for e in operations.list_errors(ErrorQuery()).errors) == ["b", "c"]
    operations.remove_errors(["b", "missing"])
    assert [e.key for e in operations.list_errors(ErrorQuery()).errors] == ["c"]
    assert [g.errors for g in operations.error_groups(ErrorQuery())] == [1]


def test_resolving_a_batch_finds_its_few_errors_among_many(operations: OperationsStore) -> None:
    batch = range(5000, 5900)
    operations.record_errors([error(f"in-{m}", marketo_id=m) for m in (5000, 5450, 5899)])
    operations.record_errors([error(f"out-{m}", marketo_id=m) for m in (4999, 5900, 50000)])
    operations.record_errors([error("parked", marketo_id=5001, kind="parked")])

    assert operations.resolve_errors(batch, ["refused"]) == 3
    left = {e.key for e in operations.list_errors(ErrorQuery(), limit=10).errors}
    assert left == {"out-4999", "out-5900", "out-50000", "parked"}


def test_resolving_when_more_errors_are_open_than_a_batch_reads(operations: OperationsStore) -> None:
    # Over 1,000 open errors of that kind: more than reading the one person's partition costs.
    operations.record_errors([error(f"other-{m}", marketo_id=m) for m in range(1, 1002)])
    operations.record_errors([error("mine", marketo_id=7, kind="refused", field="email")])

    assert operations.resolve_errors([7], ["refused"]) == 2  # "other-7" and "mine"
    assert operations.error_groups(ErrorQuery())[0].errors == 1000


def test_a_bad_cursor_is_refused(operations: OperationsStore) -> None:
    with pytest.raises(ValueError, match="cursor"):
        operations.list_errors(ErrorQuery(), cursor="garbage")


# --- audit --------------------------------------------------------------------------------------


def test_audit_trail_newest_first(operations: OperationsStore) -> None:
    operations.append_audit([AuditEntry(NOW, "ana@contoso.example", "pause", "sync", "paused")])
    operations.append_audit([AuditEntry(NOW + timedelta(seconds=1), "bo", "replay", "3 items", "replayed 3")])
    assert [(e.who, e.action) for e in operations.read_audit()] == [
        ("bo", "replay"),
        ("ana@contoso.example", "pause"),
    ]
    assert len(operations.read_audit(limit=1)) == 1
