"""Rules of the bulk API helpers that must hold for every input: the 31-day windows cover a
period exactly, import files stay under their size and hold every record once, in order, with
any quoting; and a streamed file cut anywhere is reassembled at record ends."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.marketo.bulk import parse_records
from shared.marketo.bulk_extract import RecordSplitter, date_windows
from shared.marketo.bulk_import import cell, import_files

moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC))


@given(moments, st.integers(min_value=0, max_value=20 * 365 * 86_400), st.integers(min_value=1, max_value=31))
def test_windows_cover_the_period_without_gap_or_overlap(start: datetime, length: int, days: int) -> None:
    end = start + timedelta(seconds=length)
    windows = list(date_windows(start, end, days=days))
    assert windows[0][0] == start.replace(microsecond=0)
    assert windows[-1][1] == end.replace(microsecond=0)
    for low, high in windows:
        assert low <= high
        assert high - low < timedelta(days=days)
    for (_, high), (low, _) in itertools.pairwise(windows):
        assert low - high == timedelta(seconds=1)


def test_windows_need_aware_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        list(date_windows(datetime(2026, 1, 1), datetime(2026, 2, 1)))


# Any text but NUL, which no CSV reader takes (nor Marketo's person fields).
text = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=40)
values = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**9), max_value=10**9), text)
fields = ["email", "firstName", "note"]
records = st.lists(st.fixed_dictionaries(dict.fromkeys(fields, values)), max_size=40)


@given(records, st.integers(min_value=200, max_value=2_000))
def test_import_files_stay_under_their_size_and_hold_every_record_in_order(
    rows: list[dict[str, object]], max_bytes: int
) -> None:
    files = list(import_files(fields, rows, max_bytes=max_bytes))
    parsed: list[list[str]] = []
    for file in files:
        assert len(file.data) <= max_bytes
        assert file.records > 0
        table = list(csv.reader(io.StringIO(file.data.decode("utf-8"), newline="")))
        assert table[0] == fields
        assert len(table) - 1 == file.records
        parsed.extend(table[1:])
    assert parsed == [[cell(r[name]) for name in fields] for r in rows]


def test_a_record_too_big_for_any_file_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        list(import_files(["note"], [{"note": "x" * 500}], max_bytes=100))


@given(st.lists(st.lists(text, min_size=1, max_size=4), min_size=1, max_size=30), st.data())
def test_a_stream_cut_anywhere_is_read_at_record_ends(table: list[list[str]], data: st.DataObject) -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(table)
    whole = buffer.getvalue().encode("utf-8")
    cuts = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=len(whole)), max_size=8)))
    pieces = [whole[a:b] for a, b in zip([0, *cuts], [*cuts, len(whole)], strict=True)]
    splitter = RecordSplitter()
    blocks = [splitter.feed(piece) for piece in pieces]
    blocks.append(splitter.flush())
    assert b"".join(blocks) == whole
    expected = list(csv.reader(io.StringIO(whole.decode("utf-8"), newline="")))
    assert [row for block in blocks if block for row in parse_records(block, ",")] == expected
