"""Canonical values are idempotent and survive a round trip through either side."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.mapping import FieldMap, FieldType, Side, load_mapping
from shared.normalize import UnmappedOptionError, canonical, to_dynamics, to_marketo

MAPPING = load_mapping()
FIELDS = list(MAPPING.lead.fields) + [
    FieldMap(marketo="score", dynamics="mkt_leadscore", type=FieldType.INTEGER),
    FieldMap(marketo="revenue", dynamics="revenue", type=FieldType.NUMBER),
    FieldMap(marketo="birthday", dynamics="birthdate", type=FieldType.DATE),
    FieldMap(marketo="lastSeen", dynamics="mkt_lastseen", type=FieldType.DATETIME),
]

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
    assert canonical(field, once, side) == once
    assert canonical(field, once, Side.MARKETO if side is Side.DYNAMICS else Side.DYNAMICS) == once


@given(st.sampled_from(FIELDS), raw_values, st.sampled_from(list(Side)))
def test_a_copied_value_reads_back_equal(field: FieldMap, value: object, side: Side) -> None:
    value_c = canonical(field, value, side)
    assert canonical(field, to_marketo(field, value_c), Side.MARKETO) == value_c
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
    assert email and source and dne and first
    assert canonical(email, " Ana@Fabrikam.EXAMPLE ", Side.MARKETO) == "ana@fabrikam.example"
    assert canonical(source, 8, Side.DYNAMICS) == canonical(source, "web", Side.MARKETO) == "Web"
    assert canonical(dne, "true", Side.MARKETO) is True
    assert canonical(first, "  ", Side.MARKETO) is None
    assert to_dynamics(source, "Trade Show") == 7
    with pytest.raises(UnmappedOptionError, match="allowed"):
        to_dynamics(source, "Billboard")
