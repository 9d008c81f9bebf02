"""`make demo`: day one in a new tenant, then every row of the behaviour table, live.

Starts the simulators (a fresh Dataverse organization, without mdsync's columns) and the local
host (the real function_app.py) on the ports the local settings name. Day one, as docs/deploying.md
walks it: ``mdsync dynamics setup --dry-run`` shows the steps, ``mdsync dynamics setup`` creates
the columns and keys, the Dataverse webhook and the Marketo flow-step webhook are registered
against the host, and ``mdsync doctor`` checks everything. Then a narrated scenario plays: the
Marketo poller runs every second on its timer, webhooks arrive over HTTP, the worker drains the
SQLite queue in batches. Each step checks its outcome; the demo exits non-zero if any behaviour
did not happen.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from mdsync import cli
from mdsync.harness import FLOW_STEP_WEBHOOK, HOST_KEY, OPERATOR, WEBHOOK_NAME, HarnessConfig, LocalSystem
from shared.console.auth import CSRF_COOKIE
from simulators.dataverse import DataverseSimConfig
from simulators.stack import FLOW_STEP_SECRET, StackConfig

USER = "Jane Doe"  # a salesperson in Dynamics
CUSTOM_ACTIVITY = "Microsoft Sync Failed"


@dataclass
class Step:
    row: str
    outcome: str
    seconds: float | None
    ok: bool


class Demo:
    def __init__(self, system: LocalSystem, console: Console) -> None:
        self.s = system
        self.console = console
        self.steps: list[Step] = []
        self.dv = system.dataverse_admin
        self.mk = system.marketo_admin

    # --- helpers ----------------------------------------------------------------------------

    def say(self, text: str) -> None:
        self.console.print(f"  [dim]{time.strftime('%H:%M:%S')}[/dim] {text}")

    def expect(
        self, row: str, check: Callable[[], Any], describe: Callable[[Any], str], timeout: float = 20.0
    ) -> Any:
        started = time.monotonic()
        try:
            value = self.s.until(check, timeout=timeout)
        except TimeoutError:
            self.steps.append(Step(row, "did not happen in time", None, False))
            self.console.print(f"  [red]✗ {row}: did not happen within {timeout:.0f}s[/red]")
            return None
        elapsed = time.monotonic() - started
        outcome = describe(value)
        self.steps.append(Step(row, outcome, elapsed, True))
        self.console.print(f"  [green]✓[/green] {outcome} [dim]({elapsed * 1000:.0f} ms)[/dim]")
        return value

    def record(self, row: str, ok: bool, outcome: str) -> None:
        self.steps.append(Step(row, outcome, None, ok))
        mark = "[green]✓[/green]" if ok else "[red]✗[/red]"
        self.console.print(f"  {mark} {outcome}")

    def person_by_email(self, email: str) -> dict[str, Any] | None:
        found = [p for p in self.mk.persons() if (p.get("email") or "").lower() == email]
        return max(found, key=lambda p: p["id"]) if found else None

    def field(self, marketo_id: int, name: str) -> Any:
        return self.mk.person(marketo_id).get(name)

    def column(self, entity: str, row_id: str, name: str) -> Any:
        row = self.dv.row(entity, row_id)
        return row.get(name) if row else None

    def heading(self, text: str) -> None:
        self.console.print()
        self.console.rule(f"[bold]{text}")

    # --- day one ------------------------------------------------------------------------------

    def day_one(self) -> None:
        """What an admin does in a new tenant, with the real commands (docs/deploying.md)."""
        self.heading("0. Day one: set Dataverse up, register the webhooks, check everything")
        self.say("$ mdsync dynamics setup --dry-run")
        code = cli.main(["dynamics", "setup", "--dry-run"])
        self.record(
            "setup --dry-run lists the steps",
            code == 0,
            "the columns, keys, publisher and solution to create",
        )
        self.say("$ mdsync dynamics setup")
        code = cli.main(["dynamics", "setup", "--key-wait", "60"])
        self.record("dynamics setup creates them", code == 0, "columns created, alternate keys Active")
        self.say("the Dataverse webhook and the Marketo flow-step webhook are registered against the host")
        self.s.prime()
        self.say(f"$ mdsync doctor --webhook-name {WEBHOOK_NAME}")
        code = cli.main(["doctor", "--webhook-name", WEBHOOK_NAME])
        self.record("doctor finds everything in place", code == 0, "every check passed")

    def initial_sync(self) -> None:
        """The records both sides held before mdsync: previewed, then linked (docs/initial-sync.md)."""
        self.heading("0b. The initial sync: what both sides held before mdsync")
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86_400))
        since = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 5 * 86_400))
        existing = [("kim", "Kim", "Kline"), ("lou", "Lou", "Lind"), ("max", "Max", "Moss")]
        self.mk.seed_persons(
            [
                {"email": f"{n}@existing.example", "firstName": f, "lastName": last, "createdAt": created}
                for n, f, last in existing
            ]
        )
        rows = [
            {
                "emailaddress1": f"{n.upper()}@existing.example",
                "firstname": f,
                "lastname": last,
                "jobtitle": "Buyer",
                "subject": "existing",
            }
            for n, f, last in existing
        ]
        rows.append(
            {
                "emailaddress1": "ned@existing.example",
                "firstname": "Ned",
                "lastname": "Nash",
                "subject": "existing",
            }
        )
        self.dv.seed("lead", rows)
        self.say("3 persons in Marketo, 4 leads in Dynamics (3 with those emails, typed in capitals)")
        self.say(f"$ mdsync backfill --dry-run --created-from {since}")
        code = cli.main(["backfill", "--dry-run", "--restart", "--created-from", since])
        self.record(
            "backfill preview writes nothing",
            code == 0 and self.person_by_email("ned@existing.example") is None,
            "3 pairs to link by email, 1 person to create, title would fill Marketo",
        )
        self.say(f"$ mdsync backfill --created-from {since}")
        code = cli.main(["backfill", "--created-from", since])
        kim = self.person_by_email("kim@existing.example")
        ned = self.person_by_email("ned@existing.example")
        linked = (
            kim is not None
            and ned is not None
            and kim.get("title") == "Buyer"
            and bool(kim.get("msftLeadId"))
        )
        self.record(
            "backfill links what already exists",
            code == 0 and linked,
            "3 pairs linked, Ned's person created, the leads' titles in Marketo",
        )

    # --- the scenario -----------------------------------------------------------------------

    def run(self) -> None:
        self.day_one()
        self.initial_sync()
        lead_id, ana = self.lead_reaches_marketo()
        self.edits_flow_both_ways(lead_id, ana)
        self.lead_collision(lead_id, ana)
        contact_id, bo = self.contact_collision()
        self.flow_step()
        self.validation_failure(ana)
        self.dropped_webhook(contact_id, bo)
        self.dynamics_delete(lead_id, ana)
        self.marketo_delete(contact_id, bo)
        self.qualification()
        self.operator_console(contact_id)

    def lead_reaches_marketo(self) -> tuple[str, int]:
        self.heading("1. A lead created in Dynamics appears in Marketo")
        self.say(f"{USER} creates the lead Ana Lopez (ana.lopez@fabrikam.example) in Dynamics")
        lead_id = self.dv.create_as(
            USER,
            "leads",
            {
                "firstname": "Ana",
                "lastname": "Lopez",
                "emailaddress1": "ana.lopez@fabrikam.example",
                "companyname": "Fabrikam",
                "subject": "Website enquiry",
                "leadsourcecode": 8,
            },
        )
        person = self.expect(
            "new Dynamics lead → Marketo person",
            lambda: self.person_by_email("ana.lopez@fabrikam.example"),
            lambda p: (
                f"Marketo person {p['id']} created (leadSource {p.get('leadSource')!r}, msftLeadId set)"
            ),
        )
        ana = int(person["id"]) if person else 0
        self.expect(
            "link shown on both sides",
            lambda: self.column("lead", lead_id, "mdsync_marketoid") == str(ana),
            lambda _: f"Dynamics lead shows mdsync_marketoid = {ana}",
        )
        return lead_id, ana

    def edits_flow_both_ways(self, lead_id: str, ana: int) -> None:
        self.heading("2. Edits flow both ways")
        self.say(f"{USER} sets the job title to 'Head of IT' in Dynamics")
        self.dv.update_as(USER, "leads", lead_id, {"jobtitle": "Head of IT"})
        self.expect(
            "Dynamics edit → Marketo (webhook)",
            lambda: self.field(ana, "title") == "Head of IT",
            lambda _: "Marketo title = 'Head of IT'",
        )
        self.say("a marketer sets the phone to +34 600 000 001 in Marketo")
        self.mk.user_edit(ana, {"phone": "+34 600 000 001"})
        self.expect(
            "Marketo edit → Dynamics (poll)",
            lambda: self.column("lead", lead_id, "telephone1") == "+34 600 000 001",
            lambda _: "Dynamics telephone1 = '+34 600 000 001'",
        )

    def lead_collision(self, lead_id: str, ana: int) -> None:
        self.heading("3. A collision on a lead: Marketo wins")
        self.dv.pause_webhooks(True)
        self.say(f"{USER} renames the lead's city to 'Sevilla' in Dynamics ...")
        self.dv.update_as(USER, "leads", lead_id, {"address1_city": "Sevilla"})
        self.say("... while a marketer sets the city to 'Madrid' in Marketo")
        self.mk.user_edit(ana, {"city": "Madrid"})
        self.dv.pause_webhooks(False)
        self.expect(
            "collision on a lead → Marketo wins",
            lambda: (
                self.column("lead", lead_id, "address1_city") == "Madrid"
                and self.field(ana, "city") == "Madrid"
            ),
            lambda _: "both sides hold 'Madrid' (sync log: collision, marketo wins)",
        )

    def contact_collision(self) -> tuple[str, int]:
        self.heading("4. A collision on a contact: Dynamics wins")
        self.say(f"{USER} creates the contact Bo Chen (bo.chen@contoso.example) in Dynamics")
        contact_id = self.dv.create_as(
            USER,
            "contacts",
            {
                "firstname": "Bo",
                "lastname": "Chen",
                "emailaddress1": "bo.chen@contoso.example",
                "jobtitle": "Buyer",
            },
        )
        person = self.expect(
            "new Dynamics contact → Marketo person",
            lambda: self.person_by_email("bo.chen@contoso.example"),
            lambda p: f"Marketo person {p['id']} created (msftType {p.get('msftType')!r})",
        )
        bo = int(person["id"]) if person else 0
        self.dv.pause_webhooks(True)
        self.say(
            f"{USER} sets the title to 'Chief Buyer' in Dynamics"
            " while a marketer sets 'Purchasing' in Marketo"
        )
        self.dv.update_as(USER, "contacts", contact_id, {"jobtitle": "Chief Buyer"})
        self.mk.user_edit(bo, {"title": "Purchasing"})
        self.dv.pause_webhooks(False)
        self.expect(
            "collision on a contact → Dynamics wins",
            lambda: (
                self.field(bo, "title") == "Chief Buyer"
                and self.column("contact", contact_id, "jobtitle") == "Chief Buyer"
            ),
            lambda _: "both sides hold 'Chief Buyer' (sync log: collision, dynamics wins)",
        )
        return contact_id, bo

    def flow_step(self) -> None:
        self.heading("5. New Marketo person; the 'Sync Person to Microsoft' flow step")
        self.say("a visitor fills a form: Marketo creates Cy Diaz (cy.diaz@tailspin.example)")
        cy = self.mk.user_create(
            {
                "firstName": "Cy",
                "lastName": "Diaz",
                "email": "cy.diaz@tailspin.example",
                "company": "Tailspin",
            }
        )
        time.sleep(2.5)  # two poll cycles
        leads = [r for r in self.dv.rows("lead") if r.get("emailaddress1") == "cy.diaz@tailspin.example"]
        self.record(
            "new Marketo person is not pushed",
            not leads,
            "after two poll cycles, still no lead in Dynamics (not pushed automatically)",
        )
        started = time.monotonic()
        first = self.s.fire_flow_step(cy)
        elapsed = time.monotonic() - started
        body = first.get("response") or first.get("body") or {}
        self.record(
            "flow step creates a lead in real time",
            '"created"' in str(first) or "created" in str(body),
            f"Call Webhook → {first.get('status')}: {_short(body)} ({elapsed * 1000:.0f} ms)",
        )
        second = self.s.fire_flow_step(cy)
        self.record(
            "flow step does nothing the second time",
            "exists" in str(second.get("response") or second.get("body") or second),
            f"second call → {_short(second.get('response') or second.get('body'))}; no update written",
        )
        self.expect(
            "response mapping stored on the person",
            lambda: self.field(cy, "mdsyncFlowStepStatus"),
            lambda v: f"Marketo field mdsyncFlowStepStatus = {v!r}",
        )

    def validation_failure(self, ana: int) -> None:
        self.heading("6. Dynamics rejects a write: the failure lands in the person's Activity Log")
        self.dv.add_plugin(
            "company-required",
            "lead",
            "required",
            column="companyname",
            message="A lead needs a company (business rule).",
            messages=("Update",),
        )
        self.say("a marketer clears Ana's company in Marketo; a Dynamics business rule requires it")
        self.mk.user_edit(ana, {"company": ""})
        self.expect(
            "validation failure → person's Activity Log",
            lambda: _failure_activity(self.mk.activities(ana)),
            lambda a: f"Activity Log: '{CUSTOM_ACTIVITY}' on the lead — {_reason(a)}",
        )
        self.dv.remove_plugin("company-required")
        self.mk.user_edit(ana, {"company": "Fabrikam"})

    def dropped_webhook(self, contact_id: str, bo: int) -> None:
        self.heading("7. A lost webhook is caught by the sweep")
        self.dv.drop_webhooks(1)
        self.say(f"{USER} sets Bo's mobile to +1 555 0100; Dataverse's webhook call is lost")
        self.dv.update_as(USER, "contacts", contact_id, {"mobilephone": "+1 555 0100"})
        time.sleep(1.0)
        self.record(
            "dropped webhook", self.field(bo, "mobilePhone") != "+1 555 0100", "nothing reached Marketo"
        )
        self.say("the catch-up sweep runs (every 15 minutes in Azure; triggered now)")
        self.s.sweep()
        self.expect(
            "sweep repairs a lost webhook",
            lambda: self.field(bo, "mobilePhone") == "+1 555 0100",
            lambda _: "Marketo mobilePhone = '+1 555 0100'",
        )

    def dynamics_delete(self, lead_id: str, ana: int) -> None:
        self.heading("8. A lead is deleted in Dynamics")
        self.dv.delete_as(USER, "leads", lead_id)
        self.expect(
            "Dynamics delete → Microsoft Is Deleted",
            lambda: self.field(ana, "msftIsDeleted") is True,
            lambda _: f"Marketo person {ana} kept, Microsoft Is Deleted = true, link dropped",
        )
        self.say("later the flow step runs for Ana again")
        answer = self.s.fire_flow_step(ana)
        self.record(
            "flow step after a delete creates a new lead",
            "created" in str(answer),
            f"→ {_short(answer.get('response') or answer.get('body'))}",
        )
        self.expect(
            "flag cleared",
            lambda: self.field(ana, "msftIsDeleted") is False,
            lambda _: "Microsoft Is Deleted = false again",
        )

    def marketo_delete(self, contact_id: str, bo: int) -> None:
        self.heading("9. A person is deleted in Marketo")
        self.mk.user_delete(bo)
        time.sleep(2.5)
        self.record(
            "Marketo delete → nothing deleted in Dynamics",
            self.dv.row("contact", contact_id) is not None,
            "the Dynamics contact is still there; the link is dropped",
        )
        self.say(f"{USER} updates the contact later")
        self.dv.update_as(USER, "contacts", contact_id, {"jobtitle": "Head of Purchasing"})
        self.expect(
            "later Dynamics update → new Marketo person",
            lambda: (p := self.person_by_email("bo.chen@contoso.example")) and p["id"] != bo and p,
            lambda p: f"new Marketo person {p['id']} (same email, new id; the old id was {bo})",
        )

    def qualification(self) -> None:
        self.heading("10. A lead is qualified into a contact")
        lead_id = self.dv.create_as(
            USER,
            "leads",
            {
                "firstname": "Dee",
                "lastname": "Evans",
                "emailaddress1": "dee.evans@adatum.example",
                "subject": "Demo request",
            },
        )
        person = self.expect(
            "lead → person",
            lambda: self.person_by_email("dee.evans@adatum.example"),
            lambda p: f"Marketo person {p['id']} linked to the lead",
        )
        dee = int(person["id"]) if person else 0
        self.say(f"{USER} qualifies the lead")
        self.dv.qualify_as(USER, lead_id)
        self.expect(
            "qualification → relinked to the contact",
            lambda: self.field(dee, "msftType") == "Contact" and self.field(dee, "msftContactId"),
            lambda _: (
                f"person {dee} now linked to contact {self.field(dee, 'msftContactId')}; contact rules apply"
            ),
        )

    def operator_console(self, contact_id: str) -> None:
        self.heading("11. The operator console: the figures, and a pause that loses nothing")
        host = self.s.host
        assert host is not None
        session = requests.Session()
        session.post(
            f"{host.url}/.auth/login",
            data={"username": OPERATOR, "password": self.s.config.operator_password},
            timeout=30,
        )
        page = session.get(f"{host.url}/api/console", timeout=30)
        token = session.cookies.get(CSRF_COOKIE, path="/api/console") or ""
        self.record(
            "console page for a signed-in operator",
            page.status_code == 200,
            f"GET /api/console → {page.status_code}",
        )
        status = session.get(f"{host.url}/api/console/status.json", timeout=30).json()
        synced = sum(row["synced_24h"] + row["created_24h"] for row in status["sync"])
        self.record(
            "console counts what synced",
            synced > 0,
            f"{synced} records written in the last 24 h, per entity and direction",
        )
        self.say("the operator pauses the sync from the console")
        session.post(
            f"{host.url}/api/console/actions/pause", data={"csrf": token, "reason": "demo"}, timeout=30
        )
        self.say(f"{USER} sets the contact's job title to 'Head of Purchasing (EMEA)' while paused")
        self.dv.update_as(USER, "contacts", contact_id, {"jobtitle": "Head of Purchasing (EMEA)"})
        self.expect(
            "paused: the change waits, held",
            lambda: held(session.get(f"{host.url}/api/console/status.json", timeout=30).json(), "contact"),
            lambda n: f"{n} notice(s) held on the queue; nothing written to Marketo",
        )
        self.say("the operator resumes")
        session.post(f"{host.url}/api/console/actions/resume", data={"csrf": token}, timeout=30)
        self.expect(
            "resumed: the held change syncs",
            lambda: (
                (p := self.person_by_email("bo.chen@contoso.example"))
                and p.get("title") == "Head of Purchasing (EMEA)"
            ),
            lambda _: "Marketo title = 'Head of Purchasing (EMEA)' (the pause lost nothing)",
            timeout=30,
        )

    # --- summary ----------------------------------------------------------------------------

    def summary(self) -> bool:
        table = Table(title="mdsync demo: behaviour table, as it happened")
        table.add_column("behaviour")
        table.add_column("outcome")
        table.add_column("latency", justify="right")
        for step in self.steps:
            latency = f"{step.seconds * 1000:.0f} ms" if step.seconds is not None else ""
            mark = "[green]✓[/green]" if step.ok else "[red]✗[/red]"
            table.add_row(f"{mark} {step.row}", step.outcome, latency)
        self.console.print()
        self.console.print(table)
        return all(step.ok for step in self.steps)


def _short(body: Any) -> str:
    text = str(body)
    return text if len(text) < 120 else text[:117] + "..."


def _failure_activity(activities: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest custom activity that carries an error message (Microsoft Sync Failed)."""
    for activity in reversed(activities):
        names = {a.get("apiName") for a in activity.get("attributes", [])}
        if activity.get("activityTypeId", 0) >= 100000 and "errorMessage" in names:
            return dict(activity)
    return None


def _reason(activity: dict[str, Any]) -> str:
    for attribute in activity.get("attributes", []):
        if attribute.get("apiName") == "errorMessage" or attribute.get("name") in (
            "errorMessage",
            "Error Message",
        ):
            return str(attribute.get("value"))
    return _short(activity)


def _print_what_keeps_running(system: LocalSystem, console: Console) -> None:
    """The URLs, keys and settings needed to call what the demo leaves running."""
    assert system.host is not None
    urls = system.stack.urls
    table = Table(title="still running (Ctrl-C stops)")
    table.add_column("what")
    table.add_column("how to call it", overflow="fold")
    table.add_row("operator console", console_address(system))
    table.add_row("functions", f"{system.host.url}/api/...  header x-functions-key: {HOST_KEY}")
    table.add_row(
        "flow step",
        f"POST {system.host.function_url('sync_person_to_microsoft')}  headers x-functions-key: {HOST_KEY}, "
        f'x-mdsync-key: {FLOW_STEP_SECRET}  body {{"marketoId": <id>}}',
    )
    table.add_row("Marketo flow-step webhook", f"{urls['marketo']}/admin (webhook {FLOW_STEP_WEBHOOK!r})")
    table.add_row(
        "simulators' admin APIs",
        f"{urls['entra']}/admin · {urls['dataverse']}/admin · {urls['marketo']}/admin",
    )
    table.add_row("trusted CA", str(system.stack.tls.ca_file))
    console.print(table)
    settings = system.settings()
    exports = " ".join(
        f"{name}={settings[name]}"
        for name in (
            "MDSYNC_LOCAL_SETTINGS",
            "MDSYNC_SQLITE_PATH",
            "MDSYNC_QUEUE_BACKEND",
            "MDSYNC_STATE_BACKEND",
        )
    )
    others = " ".join(f"{name}={value}" for name, value in system.stack.settings().items())
    console.print(
        f"the mdsync commands see this system with these settings, e.g.\n  env {exports} {others} "
        "mdsync log ana.lopez@fabrikam.example",
        soft_wrap=True,
    )


def held(status: dict[str, Any], entity: str) -> int:
    return sum(int(lane["held"]) for lane in status["backlog"]["lanes"] if lane["entity"] == entity)


def console_address(system: LocalSystem) -> str:
    assert system.host is not None
    return (
        f"{system.host.url}/api/console  (sign in as {OPERATOR!r}, password "
        f"{system.config.operator_password!r})"
    )


def run_demo(*, keep_running: bool, console: Console, ephemeral: bool = False) -> int:
    config = HarnessConfig(
        # Its own state: `mdsync devhost` afterwards keeps .mdsync/mdsync*.sqlite3 to itself.
        workdir=Path(".mdsync/demo"),
        fixed_ports=not ephemeral,
        host_port=0 if ephemeral else 7071,
        poll_schedule="*/1 * * * * *",
        # The operator console's sign-in, printed at the end (the local host's, never Azure's).
        operator_password=secrets.token_urlsafe(9),
        stack=StackConfig(
            tls_dir=Path(".mdsync/tls"),
            # A new tenant: none of the columns and keys `mdsync dynamics setup` creates.
            dataverse=DataverseSimConfig(provisioned=False),
        ),
    )
    console.print(Panel.fit("mdsync demo — Marketo ⇄ Dynamics 365, on the local simulators", style="bold"))
    system = LocalSystem(config)
    system.start(prime=False)
    try:
        urls = system.stack.urls
        console.print(
            f"Entra ID {urls['entra']} · Dataverse {urls['dataverse']} · Marketo {urls['marketo']} · "
            f"functions {system.host.url if system.host else '?'}"
        )
        demo = Demo(system, console)
        demo.run()
        ok = demo.summary()
        console.print(f"Operator console: {console_address(system)}", soft_wrap=True)
        if not keep_running:
            console.print("(it stops with the demo: `mdsync demo --keep-running` leaves it up)")
        if keep_running:
            _print_what_keeps_running(system, console)
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        return 0 if ok else 1
    finally:
        system.stop()
