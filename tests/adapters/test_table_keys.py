"""Pure rules of the Table Storage encoding, checked with hypothesis."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from shared.adapters._table_keys import (
    MARKETO_BUCKET,
    dynamics_partition,
    escape_key,
    join_text,
    marketo_partition,
    marketo_row,
    newest_first,
    split_text,
    utf16_bytes,
)
from shared.adapters.table_sync_log import person_keys, shard

FORBIDDEN = set("/\\#?") | {chr(c) for c in range(0x20)} | {chr(c) for c in range(0x7F, 0xA0)}
MICROS = st.integers(min_value=0, max_value=253_402_300_799_999_999)


@given(st.text(max_size=60), st.text(max_size=60))
def test_escaped_keys_are_injective(a: str, b: str) -> None:
    assert (escape_key(a) == escape_key(b)) == (a == b)


@given(st.text(max_size=120))
def test_escaped_keys_hold_no_forbidden_character(value: str) -> None:
    assert not set(escape_key(value)) & FORBIDDEN


@given(st.text(alphabet="abcdefABCDEF0123456789-_.", max_size=60))
def test_plain_ids_are_kept_readable(value: str) -> None:
    assert escape_key(value) == value


@given(st.text(max_size=200_000))
@example("")
@example("a" * 32_000)
@example("\U0001f600" * 40_001)
def test_split_text_round_trips_in_chunks_a_property_can_hold(text: str) -> None:
    props = split_text("Body", text)
    assert join_text("Body", props) == text
    chunks = [v for k, v in props.items() if k != "BodyChunks"]
    assert all(isinstance(c, str) and utf16_bytes(c) <= 64 * 1024 for c in chunks)


@given(MICROS, MICROS, st.integers(0, 999_999), st.integers(0, 999_999))
def test_newest_first_sorts_later_times_then_later_sequences_first(
    t1: int, t2: int, s1: int, s2: int
) -> None:
    k1, k2 = newest_first(t1, s1), newest_first(t2, s2)
    if (t1, s1) == (t2, s2):
        assert k1 == k2
    else:
        assert (k1 < k2) == ((t1, s1) > (t2, s2))


@given(st.integers(0, 10**11), st.integers(0, 10**11))
def test_marketo_rows_sort_like_ids_and_share_partitions_by_range(a: int, b: int) -> None:
    assert (marketo_row(a) < marketo_row(b)) == (a < b)
    same_bucket = a // MARKETO_BUCKET == b // MARKETO_BUCKET
    assert (marketo_partition("m", a) == marketo_partition("m", b)) == same_bucket


def test_dynamics_partitions_spread_over_256_buckets() -> None:
    partitions = {dynamics_partition("lead", f"{i:08x}-0000-0000-0000-000000000000") for i in range(5000)}
    assert len(partitions) == 256
    assert all(p.startswith("d-lead-") for p in partitions)


PERSON = st.one_of(
    st.tuples(st.integers(min_value=0, max_value=10**12), st.none()),
    st.tuples(st.none(), st.text(min_size=1, max_size=40)),
    st.tuples(st.integers(min_value=0, max_value=10**12), st.text(min_size=1, max_size=40)),
    st.just((None, None)),
)


@given(PERSON, PERSON, st.text(alphabet="0123456789-abcdef", max_size=40))
def test_a_persons_log_range_holds_its_own_rows_only(a: tuple, b: tuple, suffix: str) -> None:  # type: ignore[type-arg]
    """The sync log reads a person's rows as the RowKeys from ``key + "!"`` to ``key + '"'``."""
    for key_a in person_keys(*a):
        for key_b in person_keys(*b):
            row = f"{key_b}!{suffix}"
            assert (key_a + "!" <= row < key_a + '"') == (key_a == key_b)
            assert shard(key_b) in {"s0", "s1", "s2", "s3"}
