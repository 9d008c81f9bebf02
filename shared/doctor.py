"""`mdsync doctor`: every check a first deployment stumbles on, one line each, with its fix.

The checks, in order (each runs even when an earlier one failed, as far as it can):

* settings: every set value is valid (names each faulty setting);
* Marketo: the REST endpoint answers and the client id and secret obtain a token;
* Dataverse: Entra ID issues a token for the configured credential, the organization answers
  and knows the application user;
* set-up: the columns, the alternate key (index Active), the publisher and solution that
  ``mdsync dynamics setup`` creates;
* mapping: every mapped field exists on both sides with a compatible type
  (shared/field_check.py);
* webhook: the Dataverse service endpoint is registered with exactly the steps and images
  ``mdsync dynamics register-webhook`` registers;
* queue and state: both answer; the state belongs to these Marketo and Dataverse instances.

A check answers :class:`Check`: ``ok``, what it saw, and for a failure the setting or command
that fixes it. Nothing here writes, except ``rebind_state`` when asked to.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.capture.registration import webhook_steps
from shared.dataverse import odata
from shared.dataverse.bypass import PRIVILEGE, read_steps
from shared.dataverse.provisioning import plan
from shared.errors import (
    AccessDeniedError,
    AuthExpiredError,
    ConfigurationError,
    MdsyncError,
    ServiceError,
    TransientError,
)
from shared.field_check import FieldProblem, check_mapping
from shared.instance import FIX as STATE_FIX
from shared.instance import Instance, bind, bound_instance
from shared.sync.reads import DynamicsReader

if TYPE_CHECKING:
    from shared.bootstrap import Container
    from shared.dataverse.client import DataverseClient
    from shared.dataverse.models import StepSpec
    from shared.mapping import FieldMapping
    from shared.marketo.client import MarketoClient

SETUP = "mdsync dynamics setup"
REGISTER = (
    "mdsync dynamics register-webhook --url https://<app>.azurewebsites.net/api/dynamics/webhook "
    "--function-key <key>"
)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def __str__(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        fix = f" -> fix: {self.fix}" if self.fix and not self.ok else ""
        return f"{mark} {self.name}: {self.detail}{fix}"


def mapping_problems(
    mapping: FieldMapping, marketo: MarketoClient, dataverse: DataverseClient, *, refresh: bool = False
) -> list[FieldProblem]:
    """``mapping`` checked against both systems' live metadata (``mdsync doctor``, ``mdsync
    fields check``); ``refresh`` reads Dataverse's column metadata again instead of the cache."""
    fields = marketo.describe_leads()
    columns = {e: dataverse.entity_metadata(e, refresh=refresh).attributes for e in ("lead", "contact")}
    currencies = DynamicsReader(dataverse, mapping).currency_codes()
    return check_mapping(mapping, fields, columns, currencies)


class Doctor:
    """Runs the checks with the container's settings, mapping, queue and state, and clients that
    try each request once (a diagnosis reports a fault; it does not wait it out). Built by the
    container (``container().doctor()``); ``marketo`` and ``dataverse`` build those clients, on
    first use, since a setting they need may be what is wrong."""

    def __init__(
        self,
        deps: Container,
        *,
        marketo: Callable[[], MarketoClient],
        dataverse: Callable[[], DataverseClient],
        webhook_name: str = "mdsync",
    ) -> None:
        self.deps = deps
        self.webhook_name = webhook_name
        self._make_marketo = marketo
        self._make_dataverse = dataverse
        self._marketo: MarketoClient | None = None
        self._dataverse: DataverseClient | None = None
        self.reached: set[str] = set()

    @property
    def marketo_client(self) -> MarketoClient:
        if self._marketo is None:
            self._marketo = self._make_marketo()
        return self._marketo

    @property
    def dataverse(self) -> DataverseClient:
        if self._dataverse is None:
            self._dataverse = self._make_dataverse()
        return self._dataverse

    def run(self) -> Iterator[Check]:
        """Every check; those that need a service that did not answer say so instead."""
        for name, check, needs in (
            ("Marketo", self.marketo, ()),
            ("Dataverse credential", self.dataverse_token, ()),
            ("Dataverse organization", self.dataverse_org, ("entra",)),
            ("Dataverse set-up", self.setup, ("dataverse",)),
            ("field mapping", self.mapping, ("marketo", "dataverse")),
            ("Dataverse webhook", self.webhook, ("dataverse",)),
            ("own-write bypass", self.bypass, ("dataverse",)),
            ("queue", self.queue, ()),
            ("state", self.state, ("marketo", "dataverse")),
        ):
            missing = [n for n in needs if n not in self.reached]
            if missing:
                yield Check(name, False, f"not checked: {' and '.join(missing)} did not answer (see above)")
                continue
            yield from _guard(name, check)

    # --- the services -------------------------------------------------------------------------

    def marketo(self) -> Iterator[Check]:
        url = self.deps.settings.marketo().base_url
        try:
            fields = self.marketo_client.describe_leads()
        except AccessDeniedError as exc:
            yield Check(
                "Marketo credentials",
                False,
                f"{url} refused the client id and secret: {exc.message}",
                "MARKETO_CLIENT_ID and MARKETO_CLIENT_SECRET (Admin > LaunchPoint > the API service)",
            )
            return
        except TransientError as exc:
            yield Check("Marketo", False, f"{url} did not answer: {exc}", _url_fix("MARKETO_BASE_URL", exc))
            return
        self.reached.add("marketo")
        yield Check("Marketo", True, f"{url} answered; {len(fields)} person fields described")

    def dataverse_token(self) -> Iterator[Check]:
        access = self.deps.settings.dataverse()
        try:
            self.deps.dataverse_tokens.get_token()
        except TransientError as exc:
            yield Check(
                "Dataverse credential",
                False,
                f"no token from Entra ID ({access.authority_host}): {exc}",
                _url_fix("DATAVERSE_AUTHORITY_HOST", exc),
            )
            return
        self.reached.add("entra")
        yield Check(
            "Dataverse credential", True, f"{access.credential.value} obtained a token for {access.url}"
        )

    def dataverse_org(self) -> Iterator[Check]:
        url = self.deps.settings.dataverse().url
        try:
            user = self.dataverse.whoami()
        except (AuthExpiredError, AccessDeniedError) as exc:
            yield Check(
                "Dataverse organization",
                False,
                f"{url} refused the token: {exc}",
                "add the identity as an application user with a security role "
                "(Power Platform admin center > Environments > Settings > Application users)",
            )
            return
        except TransientError as exc:
            yield Check(
                "Dataverse organization",
                False,
                f"{url} did not answer: {exc}",
                _url_fix("DATAVERSE_URL", exc),
            )
            return
        self.reached.add("dataverse")
        yield Check("Dataverse organization", True, f"{url} answered as application user {user}")

    # --- what mdsync needs there ----------------------------------------------------------------

    def setup(self) -> Iterator[Check]:
        missing = [s for s in plan(self.dataverse, self.deps.mapping) if s.action != "exists"]
        if not missing:
            yield Check("Dataverse set-up", True, "columns, alternate keys, publisher and solution are there")
            return
        for step in missing:
            yield Check("Dataverse set-up", False, f"{step.item.describe()}: {step.action}", SETUP)

    def mapping(self) -> Iterator[Check]:
        mapping = self.deps.mapping
        problems = mapping_problems(mapping, self.deps.marketo, self.deps.dataverse, refresh=True)
        errors = [p for p in problems if p.severity == "error"]
        for problem in problems:
            if problem.severity == "warning":
                yield Check("field mapping", True, f"warning: {problem}")
        if not errors:
            count = len(mapping.lead.fields) + len(mapping.contact.fields)
            yield Check(
                "field mapping", True, f"{count} mapped fields exist on both sides with compatible types"
            )
            return
        for problem in errors:
            yield Check("field mapping", False, str(problem), _mapping_fix(problem))

    def webhook(self) -> Iterator[Check]:
        registered = _registered_steps(self.dataverse, self.webhook_name)
        if registered is None:
            yield Check(
                "Dataverse webhook", False, f"no service endpoint named {self.webhook_name!r}", REGISTER
            )
            return
        expected = {_step_key(s) for s in webhook_steps(self.deps.mapping)}
        if registered != expected:
            missing = sorted(f"{e} {m}" for e, m, *_ in expected - registered)
            extra = sorted(f"{e} {m}" for e, m, *_ in registered - expected)
            detail = "steps differ from the mapping's"
            detail += f"; missing or changed: {', '.join(missing)}" if missing else ""
            detail += f"; unexpected: {', '.join(extra)}" if extra else ""
            yield Check("Dataverse webhook", False, detail, REGISTER)
            return
        yield Check("Dataverse webhook", True, f"{self.webhook_name!r} registered with {len(expected)} steps")

    def bypass(self) -> Iterator[Check]:
        """Whether mdsync's writes can skip its own webhook (shared/dataverse/bypass.py)."""
        name = "own-write bypass"
        settings = self.deps.settings
        if not settings.dynamics_bypass_own_webhook:
            yield Check(
                name, True, "off (DYNAMICS_BYPASS_OWN_WEBHOOK=false): mdsync's writes run its webhook"
            )
            return
        endpoint = settings.dynamics_webhook_name
        steps = read_steps(self.dataverse, endpoint)
        if not steps:
            fix = f"set DYNAMICS_WEBHOOK_NAME to the webhook's name, or {REGISTER} --name {endpoint}"
            yield Check(name, False, f"no webhook steps of a service endpoint named {endpoint!r}", fix)
            return
        count = sum(len(ids) for ids in steps.values())
        if not self.dataverse.holds_privilege(PRIVILEGE):
            fix = f"add {PRIVILEGE} to the application user's role (docs/dataverse-webhook.md), then restart"
            detail = f"the application user lacks {PRIVILEGE}: mdsync's writes run its webhook"
            yield Check(name, False, detail, fix)
            return
        yield Check(name, True, f"mdsync's writes skip the {count} steps of {endpoint!r}")

    # --- the app's own storage ------------------------------------------------------------------

    def queue(self) -> Iterator[Check]:
        settings = self.deps.settings
        settings.require_queue_connection()
        queue = self.deps.queue
        probe: Callable[[], object] | None = getattr(queue, "probe", None) or getattr(
            queue, "active_count", None
        )
        if probe is not None:
            probe()
        yield Check("queue", True, f"{settings.queue_backend.value} queue {settings.queue_name!r} reachable")

    def state(self) -> Iterator[Check]:
        settings = self.deps.settings
        settings.require_state_connection()
        bound = bound_instance(self.deps.state)
        current = self._current_instance()
        if bound is None:
            yield Check(
                "state", True, f"{settings.state_backend.value} state reachable; not yet bound to instances"
            )
        elif bound != current:
            yield Check(
                "state",
                False,
                f"belongs to {bound.describe()}, but the settings point at {current.describe()}",
                STATE_FIX,
            )
        else:
            yield Check(
                "state", True, f"{settings.state_backend.value} state reachable; belongs to these instances"
            )

    def rebind_state(self) -> Instance:
        """Bind the state store to the configured instances (the same systems at a new address)."""
        current = self._current_instance()
        bind(self.deps.state, current, force=True)
        return current

    def _current_instance(self) -> Instance:
        return Instance.of(self.deps.settings.marketo().base_url, self.dataverse.organization_id())


def _guard(name: str, check: Callable[[], Iterator[Check]]) -> Iterator[Check]:
    """A check that cannot run says why, with the setting that stopped it."""
    try:
        yield from check()
    except ConfigurationError as exc:
        fix = ", ".join(exc.settings) if exc.settings else "the setting named"
        yield Check(name, False, exc.line, fix)
    except ServiceError as exc:
        yield Check(name, False, f"could not check: {exc}", _service_fix(exc))
    except MdsyncError as exc:
        yield Check(name, False, f"could not check: {exc}")


def _url_fix(setting: str, exc: Exception) -> str:
    return f"{setting} (is the URL right and reachable from here?)"


def _service_fix(exc: ServiceError) -> str:
    return {
        "marketo": "MARKETO_BASE_URL, MARKETO_CLIENT_ID, MARKETO_CLIENT_SECRET",
        "dataverse": "DATAVERSE_URL and the application user's security role",
        "entra": "DATAVERSE_AUTHORITY_HOST, DATAVERSE_TENANT_ID",
    }.get(exc.service, "")


def _mapping_fix(problem: FieldProblem) -> str:
    if problem.where.startswith(("links.dynamics_marketo_id", "options.sync_filter")):
        return SETUP
    if problem.system == "marketo":
        return "create the field in Marketo (Admin > Field Management) or edit MDSYNC_FIELD_MAPPING"
    return "create the column in Dataverse or edit the mapping (MDSYNC_FIELD_MAPPING)"


def _step_key(spec: StepSpec) -> tuple[str, str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    pre = () if spec.message == "Create" else tuple(sorted(spec.pre_image or ()))
    post = () if spec.message == "Delete" else tuple(sorted(spec.post_image or ()))
    return spec.entity, spec.message, tuple(sorted(spec.filtering_attributes)), pre, post


def _registered_steps(
    client: DataverseClient, name: str
) -> set[tuple[str, str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]] | None:
    endpoints = list(
        client.query("serviceendpoints", select=["serviceendpointid"], filter=odata.eq("name", name))
    )
    if not endpoints:
        return None
    found = set()
    for endpoint in endpoints:
        steps = client.query(
            "sdkmessageprocessingsteps",
            select=[
                "sdkmessageprocessingstepid",
                "filteringattributes",
                "_sdkmessageid_value",
                "_sdkmessagefilterid_value",
            ],
            filter=odata.eq("_eventhandler_value", uuid.UUID(str(endpoint["serviceendpointid"]))),
        )
        for step in steps:
            message = client.get("sdkmessages", str(step["_sdkmessageid_value"]), select=["name"])["name"]
            entity = client.get(
                "sdkmessagefilters", str(step["_sdkmessagefilterid_value"]), select=["primaryobjecttypecode"]
            )["primaryobjecttypecode"]
            images: dict[str, tuple[str, ...]] = {"PreImage": (), "PostImage": ()}
            for image in client.query(
                "sdkmessageprocessingstepimages",
                select=["entityalias", "attributes"],
                filter=odata.eq(
                    "_sdkmessageprocessingstepid_value", uuid.UUID(str(step["sdkmessageprocessingstepid"]))
                ),
            ):
                columns = tuple(sorted(c for c in str(image.get("attributes") or "").split(",") if c))
                images[str(image["entityalias"])] = columns
            filtering = tuple(sorted(c for c in str(step.get("filteringattributes") or "").split(",") if c))
            found.add((str(entity), str(message), filtering, images["PreImage"], images["PostImage"]))
    return found
