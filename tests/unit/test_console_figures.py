"""The console's pure rules, for all inputs: the trailing-hour rate and the time to clear, the
split of Service Bus totals over lanes, the Marketo day, held copies' ids, the principal header."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from shared.adapters.servicebus_inspector import Peeked, apportion, estimate
from shared.console.auth import authorize, encode_principal, read_principal
from shared.console.budgets import marketo_day_start
from shared.console.pause import held_copy, is_held
from shared.console.status import eta_seconds, hour_of, trailing_hour
from shared.notices import Entity, Kind, Notice, Source

moments = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC))
lanes = st.sampled_from([("lead", "to_marketo"), ("contact", "to_marketo"), ("person", "to_dynamics")])


@given(moments, st.integers(0, 10_000), st.integers(0, 10_000))
def test_trailing_hour_lies_between_this_hours_count_and_both_hours(
    now: datetime, this: int, last: int
) -> None:
    hour = hour_of(now)
    rate = trailing_hour({hour: this, hour - timedelta(hours=1): last}, now)
    assert this <= rate <= this + last


@given(st.integers(0, 1_000_000), st.floats(0, 1e7, allow_nan=False))
def test_time_to_clear_drains_the_backlog_at_the_rate(backlog: int, per_hour: float) -> None:
    eta = eta_seconds(backlog, per_hour)
    if backlog == 0:
        assert eta == 0
    elif per_hour == 0 or backlog / per_hour * 3600 == float("inf"):
        assert eta is None
    else:
        assert eta is not None
        assert abs(eta / 3600 * per_hour - backlog) <= 1e-6 * backlog
    assert eta_seconds(backlog, per_hour, paused=True) == (0 if backlog == 0 else None)


@given(st.integers(0, 1_000_000), st.dictionaries(lanes, st.integers(0, 300), min_size=1))
def test_apportioned_parts_add_up_and_follow_the_weights(
    total: int, weights: dict[tuple[str, str], int]
) -> None:
    parts = apportion(total, weights)
    assert set(parts) == set(weights)
    weight = sum(weights.values())
    if weight == 0:
        assert set(parts.values()) <= {0}
        return
    assert sum(parts.values()) == total
    for lane, part in parts.items():
        assert abs(part - total * weights[lane] / weight) < 1


@given(
    st.integers(0, 10_000),
    st.integers(0, 10_000),
    st.integers(0, 10_000),
    st.lists(st.tuples(lanes, st.sampled_from(["waiting", "scheduled", "held"])), max_size=250),
)
def test_estimated_lanes_add_up_to_the_queues_own_totals(
    active: int, scheduled: int, dead: int, sample: list[tuple[tuple[str, str], str]]
) -> None:
    head = [Peeked(lane, state, None) for lane, state in sample]
    stats = estimate(active, scheduled, dead, head, head)
    assert not stats.exact
    if any(state == "waiting" for _, state in sample):
        assert sum(r.waiting for r in stats.rows) == active
    if any(state != "waiting" for _, state in sample):
        assert sum(r.retrying + r.held for r in stats.rows) == scheduled
    if sample:
        assert sum(r.dead_lettered for r in stats.rows) == dead


@given(moments)
def test_the_marketo_day_starts_at_midnight_us_central(now: datetime) -> None:
    start = marketo_day_start(now)
    assert start <= now < start + timedelta(hours=25)
    local = start.astimezone(ZoneInfo("America/Chicago"))
    assert (local.hour, local.minute) == (0, 0)
    assert start.minute == 0


@given(st.sampled_from(list(Source)), st.from_regex(r"[a-z0-9\-]{1,40}", fullmatch=True), st.integers(0, 5))
def test_each_held_copy_is_the_same_change_under_an_id_of_its_own(
    source: Source, record: str, attempt: int
) -> None:
    notice = Notice(
        source=source,
        entity=Entity.LEAD,
        record_id=record,
        kind=Kind.UPDATED,
        occurred_at=datetime.now(UTC),
        attempt=attempt,
    )
    first, second = held_copy(notice), held_copy(held_copy(notice))
    assert is_held(first.dedup_id)
    assert not is_held(notice.dedup_id)
    assert len({notice.dedup_id, first.dedup_id, second.dedup_id}) == 3
    assert first.dedup_id.startswith(notice.dedup_id)
    assert second.dedup_id.startswith(notice.dedup_id)
    assert first.model_dump(exclude={"dedup_id"}) == notice.model_dump(exclude={"dedup_id"})


@given(st.text(min_size=1, max_size=40), st.lists(st.text(min_size=1, max_size=20), max_size=4))
def test_principal_header_round_trips(name: str, roles: list[str]) -> None:
    principal = read_principal({"x-ms-client-principal": encode_principal("oid", name, roles)})
    assert principal is not None
    assert principal.name == name
    assert principal.roles == frozenset(roles)
    decision = authorize(
        {"x-ms-client-principal": encode_principal("oid", name, roles)},
        platform_auth=True,
        role="mdsync.operator",
    )
    assert (getattr(decision, "status", 200) == 200) == ("mdsync.operator" in roles)
