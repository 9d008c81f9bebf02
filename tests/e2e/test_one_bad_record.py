"""One bad record never fails a whole batch, on every bulk call path: the values a call cannot
carry are set aside before it, a call refused for its content is split until the refused record
stands alone, every other record of the batch syncs, and the bad one is reported on its person
and parked with a reason naming the record and the value (emails masked).

Where no real value makes a service refuse a whole call, the simulators' content-refusal faults
stand in for it (``refuse_content`` in Marketo, ``refuse`` in Dataverse): a call carrying the
marked value is refused as a whole, as a real service does with a value it cannot take.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import requests

from mdsync.harness import LocalSystem
from shared.notices import Entity, Kind, Notice, Source
from shared.ports import Link
from tests.e2e.test_worker_support import (
    USER,
    create_linked,
    failure_activities,
    log_of,
    person,
    row,
    update_as_user,
)

GOOD = 50
BAD_EMAILS = (
    "ana lopez@fabrikam.example",  # a space
    "jos\u00e9@fabrikam.example",  # not ASCII
    "bo@fabrik\u00e4m.example",  # not ASCII
    "cy,dee@fabrikam.example",  # a comma: two values to the filter
    "ed@fabrikam.example,victim@fabrikam.example",  # a comma, and another person's address
    "not-an-address",
    "fay@localhost",
)
VICTIM = "victim@fabrikam.example"


@contextmanager
def sent_to_marketo(system: LocalSystem) -> Iterator[list[str]]:
    """What the app's requests to Marketo carried (URLs and bodies), captured at the session."""
    seen: list[str] = []

    def capture(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if "/rest/" in (response.request.url or ""):
            body = response.request.body or b""
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
            seen.append(unquote(f"{response.request.url} {text}"))

    session = system.deps.session
    session.hooks["response"].append(capture)
    try:
        yield seen
    finally:
        session.hooks["response"].remove(capture)


def _parked_reasons(system: LocalSystem) -> list[str]:
    return [p.reason for p in system.deps.state.parked()]


def _lead_log(system: LocalSystem, lead_id: str) -> list[Any]:
    return system.deps.state.read_log(dynamics_id=lead_id)


def test_unfilterable_emails_are_set_aside_and_the_other_leads_get_their_persons(system: LocalSystem) -> None:
    """Issue 12, fault 2: 7 such leads among 57 left all 50 ordinary ones without a Marketo
    person, and a comma let one value look up another person's record."""
    system.marketo_admin.user_create({"email": VICTIM, "lastName": "Victim"})
    with sent_to_marketo(system) as seen:
        with system.worker_held():
            good = {
                system.dataverse_admin.create_as(
                    USER, "leads", {"lastname": f"Good{i}", "emailaddress1": f"good{i}@fabrikam.example"}
                ): f"good{i}@fabrikam.example"
                for i in range(GOOD)
            }
            bad = {
                system.dataverse_admin.create_as(
                    USER, "leads", {"lastname": "Bad", "emailaddress1": email}
                ): email
                for email in BAD_EMAILS
            }
            system.webhooks_delivered()
        system.wait_idle()

    links = system.deps.state.get_links_by_dynamics("lead", [*good, *bad])
    assert sorted(links) == sorted(good), "every good lead has a person, no bad one has"
    for lead_id, email in good.items():
        assert person(system, links[lead_id].marketo_id)["email"] == email
    # The victim's address was never asked for: no value carried it to the filter.
    lookups = [s for s in seen if "filterType=email" in s]
    assert lookups, seen[:3]
    assert not any(VICTIM in s or "cy,dee" in s for s in lookups)
    reasons = _parked_reasons(system)
    assert len(reasons) == len(BAD_EMAILS)
    for lead_id, email in bad.items():
        (failed,) = [e for e in _lead_log(system, lead_id) if e.action == "failed"]
        assert lead_id in failed.detail
        assert "emailaddress1" in failed.fields
        if "@" in email:
            assert email not in failed.detail, "an email address reached the sync log"
        assert any(lead_id in r for r in reasons)
    assert not any(email in r for r in reasons for email in BAD_EMAILS if "@" in email)
    assert any("holds a comma" in r and "e***@fabrikam.example,v***@fabrikam.example" in r for r in reasons)


def test_a_record_naming_no_marketo_id_is_linked_by_email_and_the_others_too(system: LocalSystem) -> None:
    """Marketo refuses a lookup by an id beyond its 32-bit ids: once, for the whole batch."""
    with system.worker_held():
        odd = system.dataverse_admin.create_as(
            USER,
            "leads",
            {"lastname": "Odd", "emailaddress1": "odd@fabrikam.example", "mdsync_marketoid": "99999999999"},
        )
        plain = system.dataverse_admin.create_as(
            USER, "leads", {"lastname": "Plain", "emailaddress1": "plain@fabrikam.example"}
        )
        system.webhooks_delivered()
    system.wait_idle()
    links = system.deps.state.get_links_by_dynamics("lead", [odd, plain])
    assert sorted(links) == sorted([odd, plain])
    assert system.deps.state.parked() == []


def test_a_link_to_an_impossible_marketo_id_is_parked_and_the_rest_syncs(system: LocalSystem) -> None:
    bad_lead, bad_person = create_linked(system, "lead", jobtitle="Engineer")
    good_lead, good_person = create_linked(system, "lead", jobtitle="Engineer")
    state = system.deps.state
    state.delete_link(Link(bad_person, "lead", bad_lead))
    state.put_link(Link(2**33, "lead", bad_lead))  # a link no Marketo id can match
    with system.worker_held():
        update_as_user(system, "lead", bad_lead, jobtitle="CTO")
        update_as_user(system, "lead", good_lead, jobtitle="CFO")
        system.webhooks_delivered()
    system.wait_idle()
    assert person(system, good_person)["title"] == "CFO"
    (reason,) = _parked_reasons(system)
    assert f"Marketo person {2**33}" in reason
    assert "is not a Marketo id" in reason


def test_a_marketo_update_refused_for_one_record_is_split_and_the_others_written(system: LocalSystem) -> None:
    pairs = [create_linked(system, "lead", jobtitle="Engineer") for _ in range(5)]
    system.marketo_admin.refuse_content("POISON-M", code="1003")
    with system.worker_held():
        for i, (lead_id, _) in enumerate(pairs):
            update_as_user(system, "lead", lead_id, jobtitle="POISON-M" if i == 2 else f"Title {i}")
        system.webhooks_delivered()
    system.wait_idle()
    for i, (_, marketo_id) in enumerate(pairs):
        assert person(system, marketo_id)["title"] == ("Engineer" if i == 2 else f"Title {i}")
    bad_person = pairs[2][1]
    (failed,) = [e for e in log_of(system, bad_person) if e.action == "failed"]
    assert "[1003]" in failed.detail
    assert "title" in failed.fields
    (activity,) = failure_activities(system, bad_person)
    assert activity["errorCode"] == "1003"
    (reason,) = _parked_reasons(system)
    assert f"Marketo person {bad_person}" in reason
    for _, marketo_id in pairs[:2] + pairs[3:]:
        assert failure_activities(system, marketo_id) == []


def test_a_person_creation_refused_for_one_record_is_split_and_the_others_created(
    system: LocalSystem,
) -> None:
    system.marketo_admin.refuse_content("POISON-C", code="1003")
    with system.worker_held():
        leads = [
            system.dataverse_admin.create_as(
                USER,
                "leads",
                {
                    "lastname": "POISON-C" if i == 1 else f"New{i}",
                    "emailaddress1": f"new{i}@fabrikam.example",
                },
            )
            for i in range(4)
        ]
        system.webhooks_delivered()
    system.wait_idle()
    links = system.deps.state.get_links_by_dynamics("lead", leads)
    assert sorted(links) == sorted(leads[:1] + leads[2:])
    (reason,) = _parked_reasons(system)
    assert leads[1] in reason
    assert "creating its Marketo person" in reason


def test_an_unreadable_dynamics_id_is_set_aside_and_the_rest_syncs(system: LocalSystem) -> None:
    lead_id, marketo_id = create_linked(system, "lead", jobtitle="Engineer")
    stray = Notice(
        source=Source.DYNAMICS,
        entity=Entity.LEAD,
        record_id="not-a-guid",
        kind=Kind.UPDATED,
        occurred_at=datetime.now(UTC),
    )
    with system.worker_held():
        system.queue.send([stray])
        update_as_user(system, "lead", lead_id, jobtitle="CTO")
        system.webhooks_delivered()
    system.wait_idle()
    assert person(system, marketo_id)["title"] == "CTO"
    (reason,) = _parked_reasons(system)
    assert "'not-a-guid' is not a GUID" in reason


def test_a_dataverse_read_refused_for_one_record_is_split_and_the_rest_read(system: LocalSystem) -> None:
    pairs = [create_linked(system, "lead", jobtitle="Engineer") for _ in range(4)]
    bad_lead, bad_person = pairs[3]
    system.dataverse_admin.refuse(bad_lead, path="leads")
    try:
        with system.worker_held():
            for i, (_, marketo_id) in enumerate(pairs):
                system.marketo_admin.user_edit(marketo_id, {"title": f"Title {i}"})
            system.poll()
    finally:
        system.wait_idle()
        system.dataverse_admin.clear_faults()
    for i, (lead_id, _) in enumerate(pairs[:3]):
        assert row(system, "lead", lead_id)["jobtitle"] == f"Title {i}"
    assert row(system, "lead", bad_lead)["jobtitle"] == "Engineer"
    (reason,) = _parked_reasons(system)
    assert f"reading lead {bad_lead}" in reason
    assert system.deps.state.get_links_by_marketo([bad_person]), "a refused read is no deletion"


def test_a_dataverse_batch_refused_for_one_record_is_split_and_the_others_written(
    system: LocalSystem,
) -> None:
    pairs = [create_linked(system, "lead", jobtitle="Engineer") for _ in range(5)]
    system.dataverse_admin.refuse("POISON-D", path="$batch")
    with system.worker_held():
        for i, (_, marketo_id) in enumerate(pairs):
            system.marketo_admin.user_edit(marketo_id, {"title": "POISON-D" if i == 0 else f"Title {i}"})
        system.poll()
    system.wait_idle()
    for i, (lead_id, _) in enumerate(pairs):
        assert row(system, "lead", lead_id)["jobtitle"] == ("Engineer" if i == 0 else f"Title {i}")
    bad_lead, bad_person = pairs[0]
    (activity,) = failure_activities(system, bad_person)
    assert activity["errorCode"] == "0x80040203"
    (reason,) = _parked_reasons(system)
    assert f"lead {bad_lead} (writing jobtitle)" in reason
    assert "POISON-D" in reason


def test_an_activity_log_write_refused_for_one_failure_is_split_and_the_others_added(
    system: LocalSystem,
) -> None:
    """A business rule refuses x's title with a message naming POISON-A, and Marketo refuses
    activities that carry it: y's failure (another reason) still reaches y's Activity Log."""
    (x_lead, x), (_, y) = (create_linked(system, "lead", jobtitle="Engineer") for _ in range(2))
    system.dataverse_admin.add_plugin(
        "no-poison",
        "lead",
        "regex",
        column="jobtitle",
        pattern="^(?!POISON-A).*$",
        message="POISON-A is banned",
    )
    system.marketo_admin.refuse_content("POISON-A", code="1003")
    with system.worker_held():
        system.marketo_admin.user_edit(x, {"title": "POISON-A"})
        system.marketo_admin.user_edit(y, {"title": "T" * 150})  # longer than jobtitle allows
        system.poll()
    system.wait_idle()
    (activity,) = failure_activities(system, y)
    assert activity["errorCode"] == "mdsync-validation"
    assert failure_activities(system, x) == []
    notes = [e.detail for e in log_of(system, x) if e.action == "failed"]
    assert any("POISON-A is banned" in n for n in notes)
    assert any("could not be added to the Activity Log" in n for n in notes)
    assert row(system, "lead", x_lead)["jobtitle"] == "Engineer"
