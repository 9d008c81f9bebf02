"""A local system with something to show on the operator console: a collision, a refused value,
a parked notice and a backlog. The browser tests, the console's screenshots (``make
screenshots``) and the demo's last step all stage it the same way, through the real paths:
Dynamics users and Marketo users editing records, a business rule refusing a value, Dataverse
denying a write, and the worker held while changes queue up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mdsync.harness import LocalSystem

USER = "Jane Doe"
BAD_TITLE = "Head of IT!!"
TITLE_RULE = "no-exclamation-marks"
TITLE_RULE_MESSAGE = "Job titles may not contain '!' (business rule)."


@dataclass
class Scene:
    ana: int = 0  # a lead's person: a collision (Marketo won) and a refused value
    ana_lead: str = ""
    bo: int = 0  # a contact's person: a parked notice (Dataverse denied the write)
    bo_contact: str = ""
    backlog_leads: list[str] = field(default_factory=list)  # created while the worker was held


def _person(system: LocalSystem, email: str) -> dict[str, Any] | None:
    found = [p for p in system.marketo_admin.persons() if (p.get("email") or "").lower() == email]
    return max(found, key=lambda p: p["id"]) if found else None


def _linked(system: LocalSystem, email: str) -> int:
    person = system.until(lambda: _person(system, email))
    return int(person["id"])


def stage(system: LocalSystem, *, backlog: int = 3) -> Scene:
    """Stage everything; returns with the worker held and ``backlog`` new leads waiting (call
    ``system.host.hold_queue(False)`` to let them through)."""
    assert system.host is not None
    dv, mk = system.dataverse_admin, system.marketo_admin
    scene = Scene()

    # A lead and its person, then a collision on the city: Marketo wins for leads.
    scene.ana_lead = dv.create_as(
        USER,
        "leads",
        {
            "firstname": "Ana",
            "lastname": "Lopez",
            "emailaddress1": "ana.lopez@fabrikam.example",
            "companyname": "Fabrikam",
        },
    )
    scene.ana = _linked(system, "ana.lopez@fabrikam.example")
    system.sync()
    dv.pause_webhooks(True)
    dv.update_as(USER, "leads", scene.ana_lead, {"address1_city": "Sevilla"})
    mk.user_edit(scene.ana, {"city": "Madrid"})
    dv.pause_webhooks(False)
    system.sync()
    system.until(lambda: (dv.row("lead", scene.ana_lead) or {}).get("address1_city") == "Madrid")

    # A value Dynamics refuses: a business rule against '!' in job titles.
    dv.add_plugin(
        TITLE_RULE,
        "lead",
        "regex",
        column="jobtitle",
        pattern=r"[^!]*",
        message=TITLE_RULE_MESSAGE,
        messages=("Update",),
    )
    mk.user_edit(scene.ana, {"title": BAD_TITLE})
    system.sync()

    # A contact whose write Dataverse denies (a permission): the notice is parked.
    scene.bo_contact = dv.create_as(
        USER, "contacts", {"firstname": "Bo", "lastname": "Chen", "emailaddress1": "bo.chen@contoso.example"}
    )
    scene.bo = _linked(system, "bo.chen@contoso.example")
    system.sync()
    dv.fail(count=20, status=403, path="$batch")
    mk.user_edit(scene.bo, {"title": "Chief Buyer"})
    system.sync()
    dv.clear_faults()

    # A backlog: the worker holds while Dynamics users create leads.
    system.host.hold_queue(True)
    for i in range(backlog):
        scene.backlog_leads.append(
            dv.create_as(
                USER,
                "leads",
                {
                    "firstname": f"Queued{i}",
                    "lastname": "Lead",
                    "emailaddress1": f"queued{i}@tailspin.example",
                },
            )
        )
    system.webhooks_delivered()
    system.until(lambda: system.queue.active_count() >= backlog)
    return scene
