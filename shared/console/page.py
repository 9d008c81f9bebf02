"""The console's HTML: plain server-rendered pages (no script, no external asset), so they load
fast, work behind App Service authentication as they are, and every figure is text a test and a
screen reader can read. Each figure carries ``data-figure="<name>"``; the JSON twin has the same
numbers under the same names.

Everything printed is escaped; values from the systems (a person's field values) are shown only
here, to the signed-in operator.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from html import escape
from urllib.parse import urlencode

from shared.console.actions import ActionResult
from shared.console.auth import CSRF_FIELD, Principal
from shared.console.failures import KINDS
from shared.console.listing import Listing
from shared.console.status import Status
from shared.ports import AuditEntry, ErrorQuery, LogEntry, SyncError

BASE = "/api/console"
DIRECTIONS = {"to_marketo": "Dynamics → Marketo", "to_dynamics": "Marketo → Dynamics"}
KIND_LABELS = {
    "refused": "value refused",
    "parked": "parked",
    "dead_letter": "dead-lettered",
    "configuration": "configuration fault",
}

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1b1f23;background:#f6f8fa}
header{background:#0f3d6e;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:center}
header a{color:#fff;text-decoration:none;font-weight:600}header .who{margin-left:auto;opacity:.85}
main{padding:16px 24px;max-width:1280px}
section{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:12px 16px;margin:0 0 16px}
h1{font-size:20px;margin:0}h2{font-size:16px;margin:0 0 8px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}
th{background:#f6f8fa;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.banner{padding:10px 16px;border-radius:6px;margin:0 0 16px;font-weight:600}
.paused{background:#fff3cd;border:1px solid #e0b100}.ok{background:#dafbe1;border:1px solid #4ac26b}
.bad{background:#ffebe9;border:1px solid #ff8182}.muted{color:#57606a}.small{font-size:12px}
form.inline{display:inline}button{font:inherit;padding:4px 12px;border-radius:6px;border:1px solid #8c959f;background:#f6f8fa;cursor:pointer}
button.primary{background:#1f6feb;color:#fff;border-color:#1f6feb}button.warn{background:#bf8700;color:#fff;border-color:#bf8700}
input,select{font:inherit;padding:3px 6px}.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px}
.bar{background:#eaeef2;border-radius:4px;height:10px;width:220px;display:inline-block;vertical-align:middle}
.bar span{display:block;height:10px;border-radius:4px;background:#1f6feb}.bar span.hot{background:#cf222e}
code{font-size:12px;background:#f6f8fa;padding:1px 4px;border-radius:4px}
"""


def _e(value: object) -> str:
    return escape("" if value is None else str(value))


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} days"


def _n(name: str, value: object, *, cls: str = "n") -> str:
    return f'<td class="{cls}" data-figure="{_e(name)}">{_e(value)}</td>'


def layout(title: str, body: str, who: Principal, *, flash: str = "", flash_ok: bool = True) -> str:
    notice = (
        f'<div class="banner {"ok" if flash_ok else "bad"}" role="status">{_e(flash)}</div>' if flash else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)} · mdsync console</title><style>{_CSS}</style></head>
<body><header><h1>mdsync</h1><a href="{BASE}">Status</a><a href="{BASE}/errors">Errors</a>
<span class="who">signed in as <strong data-figure="signed-in-as">{_e(who.name)}</strong></span></header>
<main>{notice}{body}</main></body></html>"""


def _form(action: str, csrf: str, inner: str, *, cls: str = "inline") -> str:
    return (
        f'<form class="{cls}" method="post" action="{BASE}/actions/{action}">'
        f'<input type="hidden" name="{CSRF_FIELD}" value="{_e(csrf)}">{inner}</form>'
    )


# --- the status page ----------------------------------------------------------------------------


def status_page(
    status: Status,
    audit: Sequence[AuditEntry],
    who: Principal,
    csrf: str,
    *,
    flash: str = "",
    flash_ok: bool = True,
) -> str:
    parts = [_pause_banner(status, csrf), _backlog(status), _synced(status), _trend(status)]
    parts.append(f'<div class="grid">{_capture(status)}{_budgets(status)}</div>')
    parts += [_initial_sync(status), _actions(csrf), _audit(audit)]
    return layout("Status", "".join(parts), who, flash=flash, flash_ok=flash_ok)


def _pause_banner(status: Status, csrf: str) -> str:
    pause = status.pause
    if pause.paused:
        why = f" ({_e(pause.reason)})" if pause.reason else ""
        button = _form(
            "resume", csrf, '<button class="primary" type="submit" data-action="resume">Resume sync</button>'
        )
        return (
            f'<div class="banner paused" data-figure="paused">Sync is PAUSED by {_e(pause.by)} since '
            f"{_when(pause.at)}{why}. Change capture keeps queuing; nothing is lost. {button}</div>"
        )
    button = _form(
        "pause",
        csrf,
        '<input name="reason" placeholder="reason (optional)" aria-label="pause reason"> '
        '<button class="warn" type="submit" data-action="pause">Pause sync</button>',
    )
    return f'<div class="banner ok" data-figure="running">Sync is running. {button}</div>'


def _backlog(status: Status) -> str:
    rows = []
    for lane in status.backlog:
        key = f"backlog-{lane.entity}-{lane.direction}"
        eta = "paused" if status.pause.paused and lane.queued else duration(lane.eta_seconds)
        rows.append(
            f"<tr><td>{_e(DIRECTIONS[lane.direction])} · {_e(lane.entity)}</td>"
            + _n(f"{key}-waiting", lane.waiting)
            + _n(f"{key}-scheduled", lane.scheduled)
            + _n(f"{key}-held", lane.held)
            + _n(f"{key}-parked", lane.parked)
            + _n(f"{key}-dead", lane.dead_lettered)
            + _n(f"{key}-oldest", _when(lane.oldest_waiting), cls="")
            + _n(f"{key}-age", duration(lane.age_seconds))
            + _n(f"{key}-rate", f"{lane.drained_per_hour:g}/h")
            + _n(f"{key}-eta", eta)
            + "</tr>"
        )
    exact = (
        "Counts are exact."
        if status.queue_exact
        else f"Totals are the queue's own; the split per lane is estimated from the {status.queue_sampled} "
        "messages at the head of the queue and its dead-letter queue (Service Bus does not count by content)."
    )
    total_eta = "paused" if status.pause.paused and status.backlog_total else duration(status.eta_total)
    return f"""<section><h2>Backlog</h2><table><thead><tr><th>lane</th><th class="n">waiting</th>
<th class="n">scheduled for retry</th><th class="n">held (paused)</th><th class="n">parked</th><th class="n">dead-lettered</th>
<th>oldest waiting change</th><th class="n">its age</th><th class="n">drained, last hour</th><th class="n">time to clear</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>
<p class="small muted">In all <strong data-figure="backlog-total">{status.backlog_total}</strong> queued; time to clear at the
current rate: <strong data-figure="backlog-eta">{_e(total_eta)}</strong>. {_e(exact)} A Marketo change waits as a
"person": whether it goes to a lead or a contact is decided when the worker reads its link.</p></section>"""


def _synced(status: Status) -> str:
    rows = []
    for row in status.sync:
        key = f"sync-{row.entity}-{row.direction}"
        wins = ", ".join(f"{w} won {n}" for w, n in sorted(row.collisions_24h.items())) or "none"
        rows.append(
            f"<tr><td>{_e(row.entity)} · {_e(DIRECTIONS[row.direction])}</td>"
            + _n(f"{key}-1h", row.synced_1h)
            + _n(f"{key}-24h", row.synced_24h)
            + _n(f"{key}-created", row.created_24h)
            + _n(f"{key}-failed-1h", row.failed_1h)
            + _n(f"{key}-failed-24h", row.failed_24h)
            + _n(f"{key}-collisions", wins, cls="")
            + "</tr>"
        )
    return f"""<section><h2>Synced</h2><table><thead><tr><th>entity · direction</th><th class="n">last hour</th>
<th class="n">last 24 h</th><th class="n">created, 24 h</th><th class="n">failed, last hour</th><th class="n">failed, 24 h</th>
<th>collisions, 24 h (winner)</th></tr></thead><tbody>{"".join(rows)}</tbody></table></section>"""


def _trend(status: Status) -> str:
    points = status.trend
    width, height, pad = 960, 160, 24
    peak = max([p.to_marketo + p.to_dynamics for p in points] + [p.failed for p in points] + [1])
    step = (width - 2 * pad) / max(len(points), 1)
    bars = []
    for i, p in enumerate(points):
        x = pad + i * step
        h1 = (height - 2 * pad) * p.to_marketo / peak
        h2 = (height - 2 * pad) * p.to_dynamics / peak
        hf = (height - 2 * pad) * p.failed / peak
        base = height - pad
        label = (
            f"{p.hour:%H}:00 UTC: {p.to_marketo} to Marketo, {p.to_dynamics} to Dynamics, {p.failed} failed"
        )
        bars.append(
            f'<g data-hour="{p.hour:%Y-%m-%dT%H}" data-to-marketo="{p.to_marketo}" data-to-dynamics="{p.to_dynamics}" '
            f'data-failed="{p.failed}"><title>{_e(label)}</title>'
            f'<rect x="{x:.1f}" y="{base - h1:.1f}" width="{step * 0.42:.1f}" height="{h1:.1f}" fill="#1f6feb"/>'
            f'<rect x="{x:.1f}" y="{base - h1 - h2:.1f}" width="{step * 0.42:.1f}" height="{h2:.1f}" fill="#8250df"/>'
            f'<rect x="{x + step * 0.46:.1f}" y="{base - hf:.1f}" width="{step * 0.3:.1f}" height="{hf:.1f}" fill="#cf222e"/>'
            f'<text x="{x:.1f}" y="{height - 6}" font-size="10" fill="#57606a">{p.hour:%H}</text></g>'
        )
    return f"""<section><h2>Synced per hour, last 24 hours</h2>
<svg role="img" aria-label="changes synced per hour" viewBox="0 0 {width} {height}" width="100%" data-figure="trend">
<text x="{pad}" y="14" font-size="11" fill="#57606a">peak {peak}/h</text>{"".join(bars)}</svg>
<p class="small muted"><span style="color:#1f6feb">■</span> to Marketo <span style="color:#8250df">■</span> to Dynamics
<span style="color:#cf222e">■</span> failed (hours in UTC)</p></section>"""


def _capture(status: Status) -> str:
    rows = "".join(
        f"<tr><td>{_e(f.label)}</td>"
        + _n(f"capture-{f.name}-last", _when(f.last_run), cls="")
        + _n(f"capture-{f.name}-behind", duration(f.behind_seconds))
        + _n(f"capture-{f.name}-detail", f.detail, cls="")
        + "</tr>"
        for f in status.capture
    )
    return f"""<section><h2>Change capture</h2><table><thead><tr><th>path</th><th>last run / arrival</th>
<th class="n">behind by</th><th>detail</th></tr></thead><tbody>{rows}</tbody></table>
<p class="small muted">"Behind by": how long ago the changes were last all read (poll: the last run that drained Marketo's
feed; sweep: the oldest table's watermark).</p></section>"""


def _batching(seconds: float | None) -> str:
    if seconds is None:
        return "off"
    return f"{seconds:g} s" if seconds else "none (quota ample)"


def _meter(fraction: float) -> str:
    width = max(0.0, min(1.0, fraction)) * 100
    hot = " hot" if fraction >= 0.8 else ""
    return f'<span class="bar"><span class="{hot.strip()}" style="width:{width:.0f}%"></span></span>'


def _budgets(status: Status) -> str:
    b = status.budgets
    window = (
        f"{b.marketo_window_calls} of {b.marketo_window_limit}"
        if b.marketo_window_calls is not None
        else "not seen yet"
    )
    requests = b.dataverse_requests_in_window
    dataverse = (
        f"{requests} of 6000 (seen {_when(b.dataverse_seen_at)})" if requests is not None else "not seen yet"
    )
    time_left = (
        f"{b.dataverse_time_remaining_ms / 1000:.0f} s" if b.dataverse_time_remaining_ms is not None else "—"
    )
    return f"""<section><h2>API budgets</h2><table><tbody>
<tr><td>Marketo calls today (since {_when(b.marketo_day_started)})</td><td class="n" data-figure="marketo-calls-today">{b.marketo_calls_today}</td>
<td class="n" data-figure="marketo-quota">of {b.marketo_daily_quota}</td><td>{_meter(b.marketo_quota_used)} <span data-figure="marketo-quota-used">{b.marketo_quota_used:.1%}</span></td></tr>
<tr><td>Marketo, current 20-second window</td><td class="n" data-figure="marketo-window" colspan="2">{_e(window)}</td><td class="small muted">the worker's own calls, {_when(b.marketo_window_at)}</td></tr>
<tr><td>Batching window</td><td class="n" data-figure="batching-window" colspan="2">{_e(_batching(b.batching_window_seconds))}</td><td class="small muted">how long a small worker batch waits for company, from the day's Marketo calls</td></tr>
<tr><td>Dataverse requests in the 5-minute window</td><td class="n" data-figure="dataverse-window" colspan="2">{_e(dataverse)}</td><td class="small muted">execution time left: {_e(time_left)}</td></tr>
<tr><td>Dataverse requests, last hour</td><td class="n" data-figure="dataverse-calls-hour" colspan="2">{b.dataverse_calls_last_hour}</td><td></td></tr>
</tbody></table><p class="small muted">mdsync counts its own worker and poller calls; other integrations share Marketo's quota
(Admin › Web Services shows the instance's total). Dataverse's figures are its x-ms-ratelimit headers, per user and server.</p></section>"""


def _initial_sync(status: Status) -> str:
    progress = status.initial_sync
    if progress is None:
        return '<section><h2>Initial sync</h2><p class="muted" data-figure="initial-sync">none has run</p></section>'
    fraction = progress.fraction
    shown = f"{fraction:.1%}" if fraction is not None else "counting…"
    total = progress.total if progress.total is not None else "?"
    return f"""<section><h2>Initial sync</h2><p data-figure="initial-sync">{_e(progress.state)}: {_e(progress.phase)},
{progress.done} of {_e(total)} ({_e(shown)}) {_meter(fraction or 0)} · time left {_e(duration(progress.eta_seconds(status.generated_at)))}
· started {_when(progress.started_at)} · updated {_when(progress.updated_at)}</p><p class="small muted">{_e(progress.detail)}</p></section>"""


def _actions(csrf: str) -> str:
    resync = _form(
        "resync",
        csrf,
        '<label>Re-sync one person: <input name="person" required placeholder="Marketo id, or lead:&lt;id&gt;" '
        'aria-label="person to re-sync"></label> <button type="submit" data-action="resync">Re-sync</button>',
    )
    replay = _form(
        "replay",
        csrf,
        '<input type="hidden" name="all" value="1"><button type="submit" data-action="replay-all">Replay every error</button>',
    )
    return f"""<section><h2>Actions</h2><p>{resync}</p><p>{replay}
<span class="small muted">parked notices and dead letters go back on the queue; persons with refused values are re-synced.
Choose single errors on the <a href="{BASE}/errors">error list</a>.</span></p></section>"""


def _audit(entries: Sequence[AuditEntry]) -> str:
    rows = "".join(
        f"<tr><td>{_when(e.at)}</td><td>{_e(e.who)}</td><td>{_e(e.action)}</td><td>{_e(e.target)}</td><td>{_e(e.outcome)}</td></tr>"
        for e in entries
    )
    return f"""<section><h2>Recent actions</h2><table data-figure="audit"><thead><tr><th>when</th><th>who</th><th>action</th>
<th>on</th><th>outcome</th></tr></thead><tbody>{rows or '<tr><td colspan="5" class="muted">none yet</td></tr>'}</tbody></table></section>"""


# --- the error list -------------------------------------------------------------------------------


def query_string(query: ErrorQuery, **extra: str) -> str:
    fields = {
        "kind": query.kind,
        "reason": query.reason,
        "entity": query.entity,
        "person": query.person,
        "field": query.field,
        "q": query.text,
        **extra,
    }
    return urlencode({k: v for k, v in fields.items() if v})


def errors_page(
    query: ErrorQuery,
    listing: Listing,
    who: Principal,
    csrf: str,
    *,
    flash: str = "",
    flash_ok: bool = True,
) -> str:
    groups, errors, cursor = listing.groups, listing.errors, listing.cursor
    kinds = "".join(
        f'<option value="{k}"{" selected" if query.kind == k else ""}>{_e(KIND_LABELS[k])}</option>'
        for k in KINDS
    )
    entities = "".join(
        f"<option{' selected' if query.entity == e else ''}>{e}</option>"
        for e in ("lead", "contact", "person")
    )
    filters = f"""<form method="get" action="{BASE}/errors" class="filters">
<select name="kind" aria-label="kind"><option value="">every kind</option>{kinds}</select>
<select name="entity" aria-label="entity"><option value="">every entity</option>{entities}</select>
<input name="person" placeholder="person id" value="{_e(query.person)}" aria-label="person">
<input name="field" placeholder="field" value="{_e(query.field)}" aria-label="field">
<input name="q" placeholder="text" value="{_e(query.text)}" aria-label="text">
<input type="hidden" name="reason" value="{_e(query.reason)}">
<button type="submit">Filter</button> <a href="{BASE}/errors">clear</a> ·
<a href="{BASE}/errors.csv?{query_string(query)}" data-action="csv">export CSV</a></form>"""
    group_rows = "".join(
        f'<tr><td>{_e(KIND_LABELS.get(g.kind, g.kind))}</td><td><a href="{BASE}/errors?{query_string(ErrorQuery(kind=g.kind, reason=g.reason))}">{_e(g.reason)}</a></td>'
        f'<td class="n" data-group="{_e(g.kind)}|{_e(g.reason)}">{g.errors}</td><td>{_when(g.last_seen)}</td></tr>'
        for g in groups
    )
    rows = "".join(_error_row(e) for e in errors)
    more = (
        f'<p><a href="{BASE}/errors?{query_string(query, cursor=cursor)}" data-action="next-page">next page →</a></p>'
        if cursor
        else ""
    )
    replay_all = _form(
        "replay",
        csrf,
        f'<input type="hidden" name="all" value="1"><input type="hidden" name="filter" value="{_e(query_string(query))}">'
        '<button type="submit" data-action="replay-matching">Replay every matching error</button>',
    )
    body = f"""<section><h2>Errors</h2>{filters}</section>
<section><h2>By reason</h2><table><thead><tr><th>kind</th><th>reason</th><th class="n">errors</th><th>last seen</th></tr></thead>
<tbody>{group_rows or '<tr><td colspan="4" class="muted">no errors</td></tr>'}</tbody></table></section>
<section><h2>Failures</h2><form method="post" action="{BASE}/actions/replay" id="replay-selected">
<input type="hidden" name="{CSRF_FIELD}" value="{_e(csrf)}">
<table data-figure="errors"><thead><tr><th></th><th>kind</th><th>reason</th><th>person</th><th>entity</th><th>field</th><th>value</th>
<th>first seen</th><th>last seen</th><th class="n">times</th><th>message</th></tr></thead>
<tbody>{rows or '<tr><td colspan="11" class="muted">nothing matches</td></tr>'}</tbody></table>
<p><button class="primary" type="submit" data-action="replay-selected">Replay selected</button>
<button type="submit" name="discard" value="1" data-action="discard-selected" title="remove the selected parked notices and dead letters without replaying them (a message no version can read)">Discard selected</button></p></form>{more}<p>{replay_all}</p></section>"""
    return layout("Errors", body, who, flash=flash, flash_ok=flash_ok)


def _person_link(error: SyncError) -> str:
    if error.marketo_id:
        return f'<a href="{BASE}/person/{error.marketo_id}">{error.marketo_id}</a>'
    if error.dynamics_id and error.entity in ("lead", "contact"):
        return f'<a href="{BASE}/person/{_e(error.entity)}:{_e(error.dynamics_id)}">{_e(error.entity)}:{_e(error.dynamics_id)}</a>'
    return "—"


def _error_row(e: SyncError) -> str:
    return (
        f'<tr data-error="{_e(e.key)}"><td><input type="checkbox" name="key" value="{_e(e.key)}" aria-label="select {_e(e.key)}"></td>'
        f"<td>{_e(KIND_LABELS.get(e.kind, e.kind))}</td><td>{_e(e.reason)}</td><td>{_person_link(e)}</td><td>{_e(e.entity)}</td>"
        f"<td>{_e(e.field)}</td><td><code>{_e(e.value)}</code></td><td>{_when(e.first_seen)}</td><td>{_when(e.last_seen)}</td>"
        f'<td class="n">{e.count}</td><td class="small">{_e(e.message)}</td></tr>'
    )


# --- a person's page ------------------------------------------------------------------------------


def person_page(
    person: str,
    entries: Sequence[LogEntry],
    errors: Sequence[SyncError],
    who: Principal,
    csrf: str,
    *,
    flash: str = "",
    flash_ok: bool = True,
) -> str:
    rows = "".join(_log_row(e) for e in entries)
    error_rows = "".join(_error_row(e) for e in errors)
    resync = _form(
        "resync",
        csrf,
        f'<input type="hidden" name="person" value="{_e(person)}"><button class="primary" type="submit" data-action="resync-person">Re-sync this person</button>',
    )
    body = f"""<section><h2>Person {_e(person)}</h2><p>{resync} <span class="small muted">reads both sides and reconciles every mapped
field now (not the flow step, which only creates a missing lead)</span></p></section>
<section><h2>Open errors</h2><table><thead><tr><th></th><th>kind</th><th>reason</th><th>person</th><th>entity</th><th>field</th><th>value</th>
<th>first seen</th><th>last seen</th><th class="n">times</th><th>message</th></tr></thead><tbody>{error_rows or '<tr><td colspan="11" class="muted">none</td></tr>'}</tbody></table></section>
<section><h2>Sync log (newest first)</h2><table data-figure="sync-log"><thead><tr><th>when</th><th>entity</th><th>Marketo</th><th>Dynamics</th>
<th>what</th><th>detail</th><th>values</th></tr></thead><tbody>{rows or '<tr><td colspan="7" class="muted">no entries</td></tr>'}</tbody></table></section>"""
    return layout(f"Person {person}", body, who, flash=flash, flash_ok=flash_ok)


def _log_row(entry: LogEntry) -> str:
    values = ""
    if entry.action == "collision" and entry.values:
        winner = str(entry.values.get("winner", ""))
        values = (
            f'<span data-collision="marketo">Marketo: <code>{_e(entry.values.get("marketo"))}</code></span><br>'
            f'<span data-collision="dynamics">Dynamics: <code>{_e(entry.values.get("dynamics"))}</code></span><br>'
            f'<strong data-collision="winner">{_e(winner)} won</strong>'
        )
    elif entry.values:
        values = "<br>".join(f"{_e(k)}: <code>{_e(v)}</code>" for k, v in entry.values.items())
    return (
        f'<tr data-action-row="{_e(entry.action)}"><td>{_when(entry.at)}</td><td>{_e(entry.entity)}</td><td>{_e(entry.marketo_id or "—")}</td>'
        f"<td>{_e(entry.dynamics_id or '—')}</td><td>{_e(entry.action)}</td><td>{_e(entry.detail)}</td><td>{values}</td></tr>"
    )


def result_text(result: ActionResult) -> str:
    extra = "; ".join(result.details[:5])
    return result.message + (f" ({extra})" if extra else "")


def refusal_page(status: int, message: str) -> str:
    """What an unsigned or unauthorised browser sees (no user to name, no figure shown)."""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{status} · mdsync console</title>
<style>{_CSS}</style></head><body><main><section><h2>{"Sign-in required" if status == 401 else "Not allowed"}</h2>
<p data-figure="refused">{_e(message)}</p></section></main></body></html>"""


def csv_rows(errors: Iterable[SyncError]) -> Iterable[list[str]]:
    yield [
        "kind",
        "reason",
        "entity",
        "marketo_id",
        "dynamics_id",
        "field",
        "value",
        "first_seen",
        "last_seen",
        "count",
        "message",
        "key",
    ]
    for e in errors:
        yield [
            e.kind,
            e.reason,
            e.entity,
            str(e.marketo_id or ""),
            e.dynamics_id or "",
            e.field,
            e.value,
            _when(e.first_seen),
            _when(e.last_seen),
            str(e.count),
            e.message,
            e.key,
        ]
