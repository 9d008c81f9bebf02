"""The notice model and the pure parts of capture: dedup ids, what a notice can carry, and the
typed values of a RemoteExecutionContext. Property tests where the rule is general."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.capture.dataverse_context import parse_date, typed_value
from shared.notices import (
    MAX_VALUE_CHARS,
    NOTICE_SCHEMA,
    Entity,
    FieldChange,
    Kind,
    Notice,
    Source,
    fit_changes,
    linked_marketo_id,
)

WHEN = datetime(2030, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)

moments = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.just(UTC)
)
record_ids = st.from_regex(r"[A-Za-z0-9\-]{1,64}", fullmatch=True)
versions = st.none() | st.text(min_size=1, max_size=64)
field_values = st.none() | st.booleans() | st.integers() | st.text(max_size=50)


def notice(**changes: object) -> Notice:
    fields: dict[str, object] = {
        "source": Source.DYNAMICS,
        "entity": Entity.LEAD,
        "record_id": "7f3a9c10-1d2e-ef11-a81c-6045bd0b1a2c",
        "kind": Kind.UPDATED,
        "version": "1000073",
        "occurred_at": WHEN,
    }
    fields.update(changes)
    return Notice.model_validate(fields)


changes_seen = st.fixed_dictionaries(
    {
        "source": st.sampled_from(Source),
        "entity": st.sampled_from(Entity),
        "record_id": record_ids,
        "kind": st.sampled_from(Kind),
        "version": versions,
        "occurred_at": moments,
    }
)


@given(
    change=changes_seen,
    values=st.dictionaries(st.text(min_size=1, max_size=10), field_values, max_size=3),
    captured=moments,
)
def test_the_dedup_id_names_the_change_not_the_sighting(
    change: dict[str, object], values: dict[str, object], captured: datetime
) -> None:
    first = notice(**change)
    # Seen again later, with other values reported, the id in upper case: the same change.
    again = notice(
        **{**change, "record_id": str(change["record_id"]).upper()},
        changes={k: FieldChange(new=v) for k, v in values.items()},
        captured_at=captured,
        own_write=True,
    )
    assert again.dedup_id == first.dedup_id
    assert len(first.dedup_id) <= 128
    assert Notice.from_json(first.to_json()).dedup_id == first.dedup_id
    # A retry is another message.
    assert first.retry(1).dedup_id not in (first.dedup_id, first.retry(2).dedup_id)


@given(
    change=changes_seen, tokens=st.lists(st.uuids().map(lambda u: u.hex), min_size=2, max_size=4, unique=True)
)
def test_every_replay_is_a_message_of_its_own(change: dict[str, object], tokens: list[str]) -> None:
    first = notice(**change)
    ids = {first.dedup_id, first.retry(1).dedup_id} | {first.replayed(t).dedup_id for t in tokens}
    assert len(ids) == 2 + len(tokens)
    replayed = first.replayed(tokens[0])
    assert replayed.attempt == 0
    assert replayed.retry(1).dedup_id not in ids  # its own retries too
    assert Notice.from_json(replayed.to_json()).dedup_id == replayed.dedup_id


def test_a_notice_written_by_a_newer_version_is_read() -> None:
    """Unknown fields are ignored (a newer writer added them): a rollback strands nothing."""
    body = notice().model_dump(mode="json") | {"schema_version": 2, "split_from": [1, 2], "trace": {"x": 1}}
    read = Notice.model_validate(body)
    assert read.record_id == notice().record_id
    assert read.schema_version == 2
    assert "split_from" not in read.to_json()
    assert notice().schema_version == NOTICE_SCHEMA


def test_another_version_is_another_change() -> None:
    assert notice(version="1000074").dedup_id != notice(version="1000073").dedup_id
    assert notice(kind=Kind.DELETED).dedup_id != notice().dedup_id
    assert notice(entity=Entity.CONTACT).dedup_id != notice().dedup_id


def test_without_a_version_the_moment_names_the_change() -> None:
    assert notice(version=None).dedup_id == notice(version=None).dedup_id
    later = notice(version=None, occurred_at=WHEN + timedelta(milliseconds=1))
    assert later.dedup_id != notice(version=None).dedup_id
    # With a version, the moment does not matter: a webhook and the sweep agree.
    assert notice(occurred_at=WHEN + timedelta(hours=1)).dedup_id == notice().dedup_id


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.tuples(field_values, field_values), max_size=5))
def test_short_values_are_carried_as_they_are(values: dict[str, tuple[object, object]]) -> None:
    changes = {k: FieldChange(old=old, new=new) for k, (old, new) in values.items()}
    assert fit_changes(changes) == (changes, False)


@given(length=st.integers(MAX_VALUE_CHARS + 1, MAX_VALUE_CHARS * 50), keep=field_values)
def test_a_value_too_long_is_left_out_and_reported(length: int, keep: object) -> None:
    changes = {"description": FieldChange(old=keep, new="x" * length), "city": FieldChange(new="Lyon")}
    fitted, altered = fit_changes(changes)
    assert altered
    assert fitted == {"description": FieldChange(old=keep, new=None), "city": FieldChange(new="Lyon")}


def test_a_lone_surrogate_cannot_break_the_queue() -> None:
    fitted, altered = fit_changes({"firstname": FieldChange(new="An\ud800a")})
    assert altered
    assert fitted["firstname"].new == "An?a"
    notice(changes=fitted, trimmed=altered).to_json()


@given(milliseconds=st.integers(-62_135_596_800_000, 253_402_300_799_999))
def test_dotnet_dates_read_as_utc(milliseconds: int) -> None:
    moment = parse_date(f"/Date({milliseconds})/")
    assert moment.tzinfo is UTC
    assert moment == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=milliseconds)
    assert parse_date(f"/Date({milliseconds}+0200)/") == moment  # the offset is an annotation


@pytest.mark.parametrize(
    "text", ["/Date(253402300800000)/", "/Date(-62135596800001)/", "/Date(x)/", "2030-01-01"]
)
def test_dates_outside_the_calendar_or_not_dates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"(?i)date"):
        parse_date(text)


CONTRACTS = "http://schemas.microsoft.com/xrm/2011/Contracts"


@pytest.mark.parametrize(
    ("raw", "typed"),
    [
        (None, None),
        (True, True),
        (10.01, 10.01),
        ("Ana", "Ana"),
        ("/Date(1608015600000)/", "2020-12-15T07:00:00Z"),
        ("/Date(x", "/Date(x"),  # text that only looks like a date stays text
        ({"__type": f"OptionSetValue:{CONTRACTS}", "Value": 8}, 8),
        ({"__type": f"Money:{CONTRACTS}", "Value": 2154.32}, 2154.32),
        (
            {
                "__type": f"EntityReference:{CONTRACTS}",
                "Id": "7F3A9C10-1D2E-EF11-A81C-6045BD0B1A2C",
                "LogicalName": "lead",
            },
            "7f3a9c10-1d2e-ef11-a81c-6045bd0b1a2c",
        ),
        (
            {"__type": "Guid:#System", "__value": "7f3a9c10-1d2e-ef11-a81c-6045bd0b1a2c"},
            "7f3a9c10-1d2e-ef11-a81c-6045bd0b1a2c",
        ),
        ({"__type": "DateTime:#System", "__value": "/Date(0)/"}, "1970-01-01T00:00:00Z"),
    ],
)
def test_typed_values(raw: object, typed: object) -> None:
    assert typed_value(raw) == typed


@pytest.mark.parametrize(
    "raw",
    [
        [{"__type": f"OptionSetValue:{CONTRACTS}", "Value": 1}],  # multi-select choices are not mapped
        {"__type": f"OptionSetValue:{CONTRACTS}", "Value": True},
        {"__type": f"EntityReference:{CONTRACTS}", "Id": "not-a-guid"},
        {"Value": 3},
        "/Date(999999999999999)/",
    ],
)
def test_unreadable_values_are_refused(raw: object) -> None:
    with pytest.raises(ValueError, match=r"unreadable|out of range"):
        typed_value(raw)


def test_the_worker_does_not_load_the_service_bus_sdk() -> None:
    """Cold start: decoding the worker's messages must not import azure.servicebus."""
    light = "import sys; import functions.sync_worker; print('azure.servicebus' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", light], capture_output=True, text=True, check=True).stdout
        == "False\n"
    )


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("1234", 1234),
        (1234, 1234),
        (" 42 ", 42),
        ("0", 0),
        ("", None),
        (None, None),
        (True, None),
        (12.5, None),
        ("-5", None),
        ("1e3", None),
        ("\u0661\u0662", None),  # Arabic-Indic digits: digits, but no Marketo id
        ("9" * 19, None),
    ],
)
def test_a_link_column_value_is_a_hint_only_when_it_is_a_marketo_id(value: object, hint: int | None) -> None:
    assert linked_marketo_id(value) == hint
