"""When a pair's notices may stand for a Marketo read (shared/sync/carried.py): pure rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from shared.mapping import load_mapping
from shared.normalize import Known
from shared.notices import Entity, FieldChange, Kind, Notice, Source
from shared.ports import Link, Shadow
from shared.reconcile import reconcile
from shared.shadow import mark_seen
from shared.sync.batch import Pair
from shared.sync.carried import SKEW, carried_person

MAPPING = load_mapping()
LEAD = MAPPING.lead
LINK = Link(1001, "lead", "0f7e0000-0000-4000-8000-000000000001")
SEEN = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
VALUES = {f.marketo: None for f in LEAD.fields} | {"title": "CTO", "email": "ana@fabrikam.example"}


def shadow(**extra: object) -> Shadow:
    values = dict(VALUES) | extra
    mark_seen(values, SEEN)  # type: ignore[arg-type]
    return Shadow(1001, values)  # type: ignore[arg-type]


def notice(changes: dict[str, object], *, at: datetime, **options: object) -> Notice:
    return Notice(
        source=Source.MARKETO,
        entity=Entity.PERSON,
        record_id="1001",
        kind=options.pop("kind", Kind.UPDATED),
        changes={k: FieldChange(new=v) for k, v in changes.items()},
        occurred_at=at,
        **options,
    )


def pair(*notices: Notice, memory: Shadow | None = None) -> Pair:
    return Pair(LINK, list(notices), dynamics={"leadid": LINK.dynamics_id}, shadow=memory or shadow())


LATER = SEEN + SKEW + timedelta(seconds=1)


def test_a_later_change_is_laid_over_the_shadow_and_the_rest_is_known() -> None:
    person = carried_person(pair(notice({"title": "CEO"}, at=LATER)), MAPPING, LEAD)
    assert person is not None
    assert person["title"] == "CEO"
    assert person["email"] == Known("ana@fabrikam.example")
    # What reconcile makes of it is what it would make of a read of the same values.
    read = {k: (v.value if isinstance(v, Known) else v) for k, v in person.items()}
    assert [d.action for d in reconcile(LEAD, person, {}, shadow().values).decisions] == [
        d.action for d in reconcile(LEAD, read, {}, shadow().values).decisions
    ]


@given(st.timedeltas(min_value=timedelta(hours=-2), max_value=SKEW))
def test_a_notice_not_clearly_newer_than_the_shadows_view_of_marketo_is_read(age: timedelta) -> None:
    assert carried_person(pair(notice({"title": "CEO"}, at=SEEN + age)), MAPPING, LEAD) is None


def test_what_only_a_read_can_tell_is_read() -> None:
    cases = [
        pair(notice({"title": "CEO"}, at=LATER, own_write=True)),  # an echo of a write
        pair(notice({"title": "CEO"}, at=LATER, trimmed=True)),
        pair(notice({"title": "CEO"}, at=LATER, kind=Kind.CREATED)),
        pair(notice({}, at=LATER)),
        pair(notice({"title": "CEO"}, at=LATER), notice({"title": "VP"}, at=LATER)),  # which is last?
        pair(notice({"leadSource": "Web"}, at=LATER)),  # a changed option value
        pair(notice({"title": "CEO"}, at=LATER), memory=shadow(**{"city@before": "Lyon"})),  # unconfirmed
        pair(notice({"title": "CEO"}, at=LATER), memory=Shadow(1001, dict(VALUES))),  # no view of Marketo
    ]
    for case in cases:
        assert carried_person(case, MAPPING, LEAD) is None


def test_a_campaign_reporting_an_unchanged_option_is_no_reason_to_read() -> None:
    # The shadow holds no lead source; the campaign's token for it renders empty.
    person = carried_person(
        pair(notice({"title": "CEO", "leadSource": ""}, at=LATER, snapshot=True)), MAPPING, LEAD
    )
    assert person is not None
    assert person["title"] == "CEO"
