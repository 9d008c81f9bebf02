"""The simulator's reads stay exact while they are fast: paging in any page size, with or without
$orderby and $filter, gives the rows an unpaged read gives, in order; the value indexes that
answer In()/eq follow every write, delete and rolled-back change set."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.dataverse import odata
from shared.dataverse.client import DataverseClient
from shared.dataverse.models import BatchRequest
from simulators.dataverse.admin import DataverseAdmin

from .conftest import lead

TITLES = ["CEO", "CTO", None]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.integers(min_value=1, max_value=7),
    st.sampled_from([None, "jobtitle asc", "jobtitle desc", "lastname desc,jobtitle asc"]),
    st.sampled_from([None, "jobtitle eq 'CEO'", "jobtitle ne 'CEO'", "startswith(lastname,'L1')"]),
)
def test_paging_gives_the_rows_of_one_read_in_order(
    client: DataverseClient, admin: DataverseAdmin, page_size: int, orderby: str | None, filter: str | None
) -> None:
    admin.reset()
    admin.seed(
        "lead",
        [
            lead(lastname=f"L{i % 13}", jobtitle=TITLES[i % 3], emailaddress1=f"p{i}@x.example")
            for i in range(40)
        ],
    )
    select = ["leadid", "lastname", "jobtitle"]
    whole = list(client.query("leads", select=select, orderby=orderby, filter=filter, page_size=5_000))
    paged = list(client.query("leads", select=select, orderby=orderby, filter=filter, page_size=page_size))
    assert [r["leadid"] for r in paged] == [r["leadid"] for r in whole]
    assert len(whole) == len([r for r in admin.rows("lead") if matches(r, filter)])
    terms = [(t.split()[0], t.endswith("desc")) for t in (orderby or "").split(",") if t]
    for before, after in itertools.pairwise(whole):
        assert in_order(before, after, terms)


def matches(row: dict[str, Any], filter: str | None) -> bool:
    if filter is None:
        return True
    if filter.startswith("startswith"):
        return str(row["lastname"]).startswith("L1")
    return bool(row["jobtitle"] == "CEO") == (" eq " in filter)


def in_order(before: dict[str, Any], after: dict[str, Any], terms: list[tuple[str, bool]]) -> bool:
    """``$orderby`` terms, then the primary key; a null sorts first going up."""
    for name, descending in [*terms, ("leadid", False)]:
        left, right = (None if r[name] is None else str(r[name]).casefold() for r in (before, after))
        if left == right:
            continue
        ascending = left is None or (right is not None and left < right)
        return ascending != descending
    return True


def emails(client: DataverseClient, *wanted: str) -> list[str]:
    rows = client.query("leads", select=["emailaddress1"], filter=odata.in_("emailaddress1", wanted))
    return sorted(r["emailaddress1"] for r in rows)


def test_indexed_lookups_follow_updates_deletes_and_rollbacks(
    client: DataverseClient, admin: DataverseAdmin
) -> None:
    a, b = admin.seed("lead", [lead(emailaddress1="a@x.example"), lead(emailaddress1="b@x.example")])
    assert emails(client, "A@x.example", "b@x.example") == ["a@x.example", "b@x.example"]
    client.update("leads", a, {"emailaddress1": "a2@x.example"})
    assert emails(client, "a@x.example") == []
    assert emails(client, "a2@x.example") == ["a2@x.example"]
    client.update("leads", a, {"jobtitle": "no indexed column"})  # its index entries stay
    assert emails(client, "a2@x.example") == ["a2@x.example"]
    client.delete("leads", b)
    assert emails(client, "b@x.example") == []
    failing = [
        BatchRequest("PATCH", f"leads({a})", {"emailaddress1": "a3@x.example"}),
        BatchRequest("PATCH", f"leads({uuid.uuid4()})", {"jobtitle": "gone"}, {"If-Match": "*"}),
    ]
    client.batch([failing])
    assert emails(client, "a3@x.example") == []
    assert emails(client, "a2@x.example") == ["a2@x.example"]
    by_id = list(client.query("leads", select=["leadid"], filter=odata.eq("leadid", uuid.UUID(a))))
    assert [r["leadid"] for r in by_id] == [a]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=40),
    st.sets(st.integers(min_value=0, max_value=39), max_size=4),
    st.integers(min_value=15, max_value=31),
    st.sampled_from(["ge", "gt"]),
)
def test_a_modifiedon_range_gives_the_rows_a_scan_gives(
    client: DataverseClient, admin: DataverseAdmin, days: list[int], edited: set[int], since: int, op: str
) -> None:
    """``modifiedon ge`` a moment is answered from the time index when few rows are that recent
    and by a scan otherwise: the same rows either way, after updates and a rolled-back change."""
    admin.reset()
    start = datetime(2024, 1, 1, tzinfo=UTC)
    ids = admin.seed(
        "lead",
        [
            lead(
                emailaddress1=f"p{i}@x.example", modifiedon=f"{start + timedelta(days=d):%Y-%m-%dT%H:%M:%SZ}"
            )
            for i, d in enumerate(days)
        ],
    )
    for i in sorted(edited):
        if i < len(ids):
            client.update("leads", ids[i], {"jobtitle": "edited"})
    client.batch(
        [
            [
                BatchRequest("PATCH", f"leads({ids[0]})", {"jobtitle": "undone"}),
                BatchRequest("PATCH", f"leads({uuid.uuid4()})", {"jobtitle": "gone"}, {"If-Match": "*"}),
            ]
        ]
    )
    moment = start + timedelta(days=since)
    recent = odata.compare("modifiedon", op, moment)
    for clause, also in (
        (recent, lambda r: True),
        (odata.and_(recent, odata.ne("jobtitle", "CEO")), not_ceo),
    ):
        query = client.query("leads", select=["leadid"], filter=clause, page_size=3)
        expected = [r["leadid"] for r in admin.rows("lead") if also(r) and after(r, moment, op)]
        assert sorted(r["leadid"] for r in query) == sorted(expected)


def not_ceo(row: dict[str, Any]) -> bool:
    return bool(row["jobtitle"] != "CEO")


def after(row: dict[str, Any], moment: datetime, op: str) -> bool:
    modified = datetime.fromisoformat(row["modifiedon"].replace("Z", "+00:00"))
    return modified >= moment if op == "ge" else modified > moment
