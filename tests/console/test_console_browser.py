"""The operator console in headless Chromium, against the local system (real host, real
functions, SQLite queue and state, the simulators): a backlog, a collision, a refused value and a
parked notice present; every figure on the page checked against the state it reports; replay,
re-sync and pause done by clicking; unsigned and unauthorised visitors refused.

Expected figures are computed here from the stores themselves (the queue's rows, the sync log,
the parked notices, the Marketo simulator's quota counter), not from the console's own code.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import UTC, datetime

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from mdsync.console_scene import BAD_TITLE, TITLE_RULE, Scene
from mdsync.harness import VISITOR, LocalSystem
from shared.console.pause import is_held
from shared.notices import Notice
from tests.console.conftest import browser_sign_in, sign_in

pytestmark = pytest.mark.timeout(240)
LANES = {
    ("dynamics", "lead"): "lead-to_marketo",
    ("dynamics", "contact"): "contact-to_marketo",
    ("marketo", "person"): "person-to_dynamics",
}


def host_url(system: LocalSystem) -> str:
    assert system.host is not None
    return system.host.url


def figure(page: Page, name: str) -> str:
    return page.locator(f"[data-figure='{name}']").inner_text().strip()


def queue_rows(system: LocalSystem) -> list[tuple[str, str, float, float | None]]:
    """(message id, body, enqueued at, dead at) of every message, read from the SQLite file."""
    with sqlite3.connect(system.queue_path) as db:
        return db.execute("SELECT message_id, body, enqueued_at, dead_at FROM queue_messages").fetchall()


def expected_backlog(system: LocalSystem) -> dict[str, Counter[str]]:
    now = datetime.now(UTC).timestamp()
    lanes: dict[str, Counter[str]] = {lane: Counter() for lane in LANES.values()}
    for message_id, body, enqueued_at, dead_at in queue_rows(system):
        notice = Notice.from_json(body)
        lane = lanes[LANES[(notice.source.value, notice.entity.value)]]
        if dead_at is not None:
            lane["dead"] += 1
        elif is_held(message_id):
            lane["held"] += 1
        elif enqueued_at > now or notice.attempt > 0:
            lane["scheduled"] += 1
        else:
            lane["waiting"] += 1
    return lanes


def test_every_figure_matches_the_state(operator_page: Page, system: LocalSystem, scene: Scene) -> None:
    page = operator_page
    page.goto(f"{host_url(system)}/api/console")
    expect(page.locator("[data-figure=running]")).to_be_visible()

    # Backlog: counts per lane from the queue's rows, and the oldest waiting change.
    backlog = expected_backlog(system)
    assert backlog["lead-to_marketo"]["waiting"] == len(scene.backlog_leads)
    for lane, counts in backlog.items():
        for state in ("waiting", "scheduled", "held", "dead"):
            assert figure(page, f"backlog-{lane}-{state}") == str(counts[state]), (lane, state)
    assert figure(page, "backlog-total") == str(
        sum(c["waiting"] + c["scheduled"] + c["held"] for c in backlog.values())
    )
    oldest = min(
        Notice.from_json(body).captured_at for _, body, _, dead in queue_rows(system) if dead is None
    )
    assert figure(page, "backlog-lead-to_marketo-oldest") == oldest.strftime("%Y-%m-%d %H:%M:%S UTC")
    parked = Counter(Notice.from_json(p.body).entity.value for p in system.deps.state.parked())
    assert parked == {"person": 1}
    for lane in ("lead", "contact", "person"):
        direction = "to_dynamics" if lane == "person" else "to_marketo"
        assert figure(page, f"backlog-{lane}-{direction}-parked") == str(parked[lane])

    # Synced, failed and collisions per entity and direction, from the sync log.
    log = system.deps.state.read_log(limit=10_000)
    writes = Counter((e.entity, e.action) for e in log if e.action in ("to_marketo", "to_dynamics"))
    failed = Counter(e.entity for e in log if e.action == "failed")
    collisions = [e for e in log if e.action == "collision"]
    assert [(c.entity, c.values["winner"]) for c in collisions] == [("lead", "marketo")]
    for entity in ("lead", "contact"):
        for direction in ("to_marketo", "to_dynamics"):
            assert figure(page, f"sync-{entity}-{direction}-24h") == str(writes[(entity, direction)])
    assert figure(page, "sync-lead-to_dynamics-collisions") == "marketo won 1"
    assert figure(page, "sync-lead-to_dynamics-failed-24h") == str(failed["lead"])

    # Capture, and the Marketo quota against the simulator's own counter of today's calls.
    assert figure(page, "capture-marketo-poll-last") != "—"
    assert figure(page, "capture-dynamics-webhook-last") != "—"
    quota_used = system.marketo_admin.calls()["quotaUsed"]
    assert figure(page, "marketo-calls-today") == str(quota_used)
    assert figure(page, "marketo-quota") == "of 50000"

    # The JSON twin says the same.
    twin = page.request.get(f"{host_url(system)}/api/console/status.json").json()
    lane = next(x for x in twin["backlog"]["lanes"] if x["entity"] == "lead")
    assert lane["waiting"] == len(scene.backlog_leads)
    assert twin["budgets"]["marketo_calls_today"] == quota_used

    # The error list: the refused value with its field and value, and the parked notice.
    page.click("header >> text=Errors")
    refused = page.locator("tr[data-error^='refused|lead']")
    expect(refused).to_contain_text("jobtitle")
    expect(refused).to_contain_text(BAD_TITLE)
    expect(page.locator("tr[data-error^='parked|']")).to_have_count(1)
    page.select_option("select[name=kind]", "refused")
    page.click("text=Filter")
    expect(page.locator("tr[data-error^='parked|']")).to_have_count(0)
    with page.expect_download() as download:
        page.click("[data-action=csv]")
    csv_text = download.value.path().read_text(encoding="utf-8")
    assert BAD_TITLE in csv_text
    header, *rows = csv_text.splitlines()
    assert header.startswith("kind,reason")
    assert rows
    assert not [r for r in rows if r.startswith("parked")]

    # A person's page: both values of the collision and the winner.
    page.goto(f"{host_url(system)}/api/console/person/{scene.ana}")
    row = page.locator("tr[data-action-row=collision]")
    expect(row.locator("[data-collision=marketo]")).to_contain_text("Madrid")
    expect(row.locator("[data-collision=dynamics]")).to_contain_text("Sevilla")
    expect(row.locator("[data-collision=winner]")).to_have_text("marketo won")


def test_pause_replay_and_resync_from_the_page(
    operator_page: Page, system: LocalSystem, scene: Scene
) -> None:
    page = operator_page
    host = system.host
    assert host is not None
    page.goto(f"{host.url}/api/console")

    # Pause, then let the worker at the backlog: it holds the batch instead of syncing it.
    page.fill("input[name=reason]", "maintenance window")
    page.click("[data-action=pause]")
    expect(page.locator("[data-figure=paused]")).to_contain_text("PAUSED by operator")
    host.hold_queue(False)
    system.until(lambda: expected_backlog(system)["lead-to_marketo"]["held"] == len(scene.backlog_leads))
    page.reload()
    assert figure(page, "backlog-lead-to_marketo-held") == str(len(scene.backlog_leads))
    assert figure(page, "backlog-lead-to_marketo-eta") == "paused"
    assert not [p for p in system.marketo_admin.persons() if "queued" in (p.get("email") or "")]

    # Resume: the held notices come back and the new leads reach Marketo; nothing was lost.
    page.click("[data-action=resume]")
    expect(page.locator("[data-figure=running]")).to_be_visible()
    system.until(
        lambda: (
            len([p for p in system.marketo_admin.persons() if "queued" in (p.get("email") or "")])
            == len(scene.backlog_leads)
        ),
    )

    # Replay the parked notice from the error list: Bo's title reaches Dynamics.
    page.goto(f"{host.url}/api/console/errors")
    page.locator("tr[data-error^='parked|'] input[type=checkbox]").check()
    page.click("[data-action=replay-selected]")
    expect(page.locator("[role=status]")).to_contain_text("replayed 1 item(s)")
    system.until(
        lambda: (
            (system.dataverse_admin.row("contact", scene.bo_contact) or {}).get("jobtitle") == "Chief Buyer"
        ),
    )
    assert system.deps.state.parked() == []

    # Re-sync Ana once the rule is lifted: the refused title goes through, the error closes.
    system.dataverse_admin.remove_plugin(TITLE_RULE)
    page.goto(f"{host.url}/api/console/person/{scene.ana}")
    page.click("[data-action=resync-person]")
    expect(page.locator("[role=status]")).to_contain_text(f"queued a re-sync of {scene.ana}")
    system.until(
        lambda: (system.dataverse_admin.row("lead", scene.ana_lead) or {}).get("jobtitle") == BAD_TITLE,
    )
    system.wait_idle()  # the batch's figures (the error closed) are recorded after its writes
    page.goto(f"{host.url}/api/console/errors")
    expect(page.locator("tr[data-error^='refused|lead']")).to_have_count(0)

    # Every action is on record with who did it.
    page.goto(f"{host.url}/api/console")
    audit = page.locator("[data-figure=audit]")
    for action in ("pause", "resume", "replay", "resync"):
        expect(audit.locator(f"tr:has(td:text-is('{action}'))")).to_contain_text("operator")


def test_unsigned_and_unauthorised_visitors_are_refused(
    context: BrowserContext, system: LocalSystem, scene: Scene
) -> None:
    host = system.host
    assert host is not None
    page = context.new_page()
    # Not signed in: App Service authentication's stand-in sends the browser to sign in.
    page.goto(f"{host.url}/api/console/errors")
    expect(page.locator("input[name=password]")).to_be_visible()
    # A principal header the caller made up is dropped: still not signed in.
    context.set_extra_http_headers(
        {"X-MS-CLIENT-PRINCIPAL": "eyJjbGFpbXMiOltdfQ==", "X-MS-CLIENT-PRINCIPAL-NAME": "mallory"}
    )
    page.goto(f"{host.url}/api/console")
    expect(page.locator("input[name=password]")).to_be_visible()
    assert page.locator("[data-figure]").count() == 0
    # Signed in without the operator role: refused by the console itself.
    browser_sign_in(page, host.url, user=VISITOR)
    expect(page.locator("[data-figure=refused]")).to_contain_text("lacks the app role 'mdsync.operator'")
    # An unsigned POST changes nothing.
    answer = context.request.post(
        f"{host.url}/api/console/actions/pause", form={"csrf": "x"}, max_redirects=0
    )
    assert answer.status in (401, 403)
    assert system.deps.pause.current(fresh=True).paused is False
    session = sign_in(host.url)
    assert session.get(f"{host.url}/api/console/status.json").json()["paused"]["paused"] is False
