"""Canonical values are idempotent and survive a round trip through either side."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.mapping import DateBehavior, FieldMap, FieldType, Side, load_mapping
from shared.normalize import UnmappedOptionError, canonical, same, to_dynamics, to_marketo

MAPPING = load_mapping()
BERLIN = "Europe/Berlin"
FIELDS = [
    *MAPPING.lead.fields,
    FieldMap(marketo="score", dynamics="mkt_leadscore", type=FieldType.INTEGER),
    FieldMap(marketo="revenue", dynamics="revenue", type=FieldType.NUMBER),
    FieldMap(marketo="annualRevenue", dynamics="revenue", type=FieldType.MONEY, currency="USD"),
    FieldMap(marketo="birthday", dynamics="birthdate", type=FieldType.DATE),
    FieldMap(marketo="lastSeen", dynamics="mkt_lastseen", type=FieldType.DATETIME),
    *(
        FieldMap(
            marketo="closeDate", dynamics="estimatedclosedate", type=t, dynamics_date=b, time_zone=BERLIN
        )
        for t in (FieldType.DATE, FieldType.DATETIME)
        for b in DateBehavior
        # A date-only column cannot hold a time: fields check refuses that mapping.
        if (t, b) != (FieldType.DATETIME, DateBehavior.DATE_ONLY)
    ),
]
# A date bound to a face-value column reads its digits in the field's zone: read back from the
# Dynamics side it is an instant, no longer the digits (so only the round trip is asserted).
FACE_VALUE = (DateBehavior.TIME_ZONE_INDEPENDENT, DateBehavior.DATE_ONLY)

raw_values = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [" Web ", "web", "8", "#8", "#77", "true", "FALSE", "2026-11-20T09:14:02Z", "2026-11-20"]
    ),
    st.datetimes(),
)


@given(st.sampled_from(FIELDS), raw_values, st.sampled_from(list(Side)))
def test_canonical_is_idempotent(field: FieldMap, value: object, side: Side) -> None:
    once = canonical(field, value, side)
    assert canonical(field, once, Side.MARKETO) == once
    face = field.type is FieldType.DATETIME and field.dynamics_date in FACE_VALUE
    if side is Side.MARKETO or not face:
        assert canonical(field, once, Side.DYNAMICS) == once or face


@given(st.sampled_from(FIELDS), raw_values, st.sampled_from(list(Side)))
def test_a_copied_value_reads_back_equal(field: FieldMap, value: object, side: Side) -> None:
    value_c = canonical(field, value, side)
    try:
        assert canonical(field, to_marketo(field, value_c), Side.MARKETO) == value_c
    except UnmappedOptionError:
        assert field.type is FieldType.OPTION  # a Dynamics option the map does not name
    try:
        written = to_dynamics(field, value_c)
    except UnmappedOptionError:
        assert field.type is FieldType.OPTION
        return
    assert canonical(field, written, Side.DYNAMICS) == value_c


def test_meaningful_equivalences() -> None:
    lead = MAPPING.lead
    email = lead.by_marketo("email")
    source = lead.by_marketo("leadSource")
    dne = lead.by_marketo("msftDoNotEmail")
    first = lead.by_marketo("firstName")
    assert email
    assert source
    assert dne
    assert first
    # Emails keep the case they were typed in and compare without it.
    assert canonical(email, " Ana@Fabrikam.EXAMPLE ", Side.MARKETO) == "Ana@Fabrikam.EXAMPLE"
    assert same(email, "Ana@Fabrikam.EXAMPLE", "ana@fabrikam.example")
    assert canonical(source, 8, Side.DYNAMICS) == canonical(source, "web", Side.MARKETO) == "Web"
    assert canonical(dne, "true", Side.MARKETO) is True
    assert canonical(first, "  ", Side.MARKETO) is None
    assert to_dynamics(source, "Trade Show") == 7
    with pytest.raises(UnmappedOptionError, match="allowed"):
        to_dynamics(source, "Billboard")


def test_dates_follow_the_columns_date_time_behaviour() -> None:
    def field(behavior: DateBehavior, kind: FieldType = FieldType.DATE) -> FieldMap:
        return FieldMap(marketo="d", dynamics="c", type=kind, dynamics_date=behavior, time_zone=BERLIN)

    local, date_only, face = (field(b) for b in DateBehavior)
    # A Berlin user's 15 June in a User Local date-only column is stored as 14 June, 22:00 UTC.
    assert canonical(local, "2026-06-14T22:00:00Z", Side.DYNAMICS) == "2026-06-15"
    assert to_dynamics(local, "2026-06-15") == "2026-06-14T22:00:00Z"
    assert canonical(date_only, "2026-06-15", Side.DYNAMICS) == "2026-06-15"
    assert to_dynamics(date_only, "2026-06-15") == "2026-06-15"
    assert canonical(face, "2026-06-15T00:00:00Z", Side.DYNAMICS) == "2026-06-15"
    assert to_dynamics(face, "2026-06-15") == "2026-06-15T00:00:00Z"
    # A time-zone independent date and time is its digits in the zone they were typed in.
    moment = field(DateBehavior.TIME_ZONE_INDEPENDENT, FieldType.DATETIME)
    assert canonical(moment, "2026-06-15T09:00:00Z", Side.DYNAMICS) == "2026-06-15T07:00:00Z"
    assert to_dynamics(moment, "2026-06-15T07:00:00Z") == "2026-06-15T09:00:00Z"


def test_a_dynamics_option_the_map_does_not_name_is_never_sent_as_a_number() -> None:
    source = MAPPING.lead.by_marketo("leadSource")
    assert source is not None
    value = canonical(source, 100000000, Side.DYNAMICS)
    with pytest.raises(UnmappedOptionError, match="100000000 has no Marketo value"):
        to_marketo(source, value)
