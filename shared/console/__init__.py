"""The operator console: what an admin sees of the sync and what they can do to it.

Pure figures and decisions here; the HTTP functions in ``functions/console.py`` and the
``mdsync status``/``errors``/``replay``/``resync``/``pause``/``resume`` commands are thin edges.

- ``tallies``: what a batch counts per entity and direction, written once per batch;
- ``failures``: the error list's records (refused values, parked notices, configuration faults);
- ``capture``: when the poller and the sweep last ran and whether webhooks arrive;
- ``budgets``: Marketo calls today against the daily quota, the Dataverse request window;
- ``progress``: the initial sync's progress, when one runs;
- ``status``: the status snapshot (backlog, age of the oldest change, time to clear it, trend);
- ``pause``: pausing the worker without losing a notice;
- ``actions``: replay, re-sync, pause and resume, each recorded with who did it;
- ``auth``: who is signed in (App Service authentication) and CSRF protection;
- ``page``: the HTML.
"""
