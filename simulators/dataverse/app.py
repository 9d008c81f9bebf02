"""The Dataverse simulator: state, the Starlette app, authentication and limits at the door."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from simulators.dataverse.admin_routes import admin_routes
from simulators.dataverse.api import WebApi, endpoint_label
from simulators.dataverse.bypass import BypassPolicy
from simulators.dataverse.config import DataverseSimConfig, TokenVerifier
from simulators.dataverse.engine import Caller, Engine
from simulators.dataverse.faults import NOT_A_MEMBER, DataverseFault
from simulators.dataverse.limits import Faults, Limiter, ServiceLimits
from simulators.dataverse.messages import ApiRequest, ApiResponse
from simulators.dataverse.schema import SYSTEM_MESSAGES, Table, default_tables
from simulators.dataverse.store import Ref, Store
from simulators.dataverse.webhooks import OrgInfo, WebhookSender
from simulators.entra import TokenError

API_VERSIONS = ("v9.0", "v9.1", "v9.2")
# The organization's currencies: the base currency first (exchange rate 1), then others, each
# with its rate to the base (how many of it make one base unit).
CURRENCIES = (("USD", "US Dollar", "$", 1.0), ("EUR", "Euro", "€", 0.92))
_BULK = ("CreateMultiple", "UpdateMultiple", "UpsertMultiple")


def _sid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "mdsync-sim-row:" + ":".join(parts)))


class DataverseState:
    """Everything one simulator instance holds; safe to use from several threads."""

    def __init__(self, config: DataverseSimConfig, verifier: TokenVerifier) -> None:
        self.config = config
        self.verifier = verifier
        self.store = Store(default_tables(provisioned=config.provisioned))
        self.engine = Engine(self.store)
        self.limiter = Limiter(ServiceLimits(**config.limits.to_json()))
        self.faults = Faults()
        self.bulk_tables = set(config.bulk_tables)
        self.calls: Counter[str] = Counter()
        self.calls_lock = threading.Lock()
        self.base_url: str | None = config.org_url
        self.webhooks = WebhookSender(
            self.store,
            self._org_info(),
            ca_file=config.webhook_ca_file,
            timeout=config.webhook_timeout,
            size_limit=config.webhook_size_limit,
        )
        self.store.on_commit = self.webhooks.on_events
        self.bypass = BypassPolicy()
        self._default_bypass()
        self.api = WebApi(
            self.engine,
            bulk_tables=self.bulk_tables,
            who_am_i=self.who_am_i,
            count=self.count,
            key_activation_seconds=config.key_activation_seconds,
            bypass=self.bypass,
        )
        self.seed_system_rows()

    def _default_bypass(self) -> None:
        # The configured human users are salespeople: no prvBypassCustomBusinessLogic. The
        # application users hold it, as the documented set-up grants it to mdsync's role.
        self.bypass.reset(
            lacking=[u.systemuserid for u in self.config.users], limit=self.config.bypass_step_ids_limit
        )

    # --- identity and bookkeeping --------------------------------------------------------

    def _org_info(self) -> OrgInfo:
        host = urlsplit(self.base_url).netloc if self.base_url else "localhost"
        return OrgInfo(
            self.config.organization_id,
            self.config.organization_name,
            self.config.business_unit_id,
            host,
        )

    def seen_base_url(self, base_url: str) -> None:
        if self.base_url is None:
            self.base_url = base_url
            self.webhooks.org = self._org_info()

    def who_am_i(self, user_id: str) -> dict[str, Any]:
        return {
            "BusinessUnitId": self.config.business_unit_id,
            "UserId": user_id,
            "OrganizationId": self.config.organization_id,
        }

    def count(self, label: str) -> None:
        with self.calls_lock:
            self.calls[label] += 1

    def user_id(self, name_or_id: str) -> str:
        """A configured user's systemuserid, by id or full name."""
        with self.store.lock:
            for row in self.store.rows["systemuser"].values():
                if name_or_id.lower() in (row["systemuserid"], str(row.get("fullname", "")).lower()):
                    return str(row["systemuserid"])
        raise KeyError(name_or_id)

    def ensure_user(self, systemuserid: str, fullname: str, *, application_id: str | None = None) -> None:
        with self.store.transaction() as tx:
            if self.store.get("systemuser", systemuserid) is None:
                tx.insert(
                    "systemuser",
                    self._system_row(
                        "systemuser",
                        {
                            "systemuserid": systemuserid,
                            "fullname": fullname,
                            "applicationid": application_id,
                            "isdisabled": False,
                        },
                    ),
                )

    # --- seeding -------------------------------------------------------------------------

    def _system_row(self, logical: str, values: dict[str, Any]) -> dict[str, Any]:
        table = self.store.tables[logical]
        row: dict[str, Any] = {name: column.default for name, column in table.columns.items()}
        now = self.engine.now()
        row.update({k: v for k, v in values.items() if k in table.columns})
        for stamp in ("createdon", "modifiedon"):
            if stamp in table.columns:
                row[stamp] = now
        row["versionnumber"] = self.store.next_version()
        return row

    def seed_system_rows(self) -> None:
        users = getattr(self.verifier, "application_users", None)
        app_users: dict[str, str] = users() if callable(users) else {}
        with self.store.transaction() as tx:
            for user_id, name in app_users.items():
                tx.insert(
                    "systemuser", self._system_row("systemuser", {"systemuserid": user_id, "fullname": name})
                )
            for human in self.config.users:
                tx.insert(
                    "systemuser",
                    self._system_row(
                        "systemuser",
                        {
                            "systemuserid": human.systemuserid,
                            "fullname": human.fullname,
                        },
                    ),
                )
            for message in SYSTEM_MESSAGES:
                tx.insert(
                    "sdkmessage",
                    self._system_row(
                        "sdkmessage",
                        {
                            "sdkmessageid": _sid("message", message),
                            "name": message,
                        },
                    ),
                )
            for logical in ("lead", "contact", "account"):
                for message in ("Create", "Update", "Delete"):
                    self._insert_filter(tx, logical, message)
                if logical in self.bulk_tables:
                    for message in _BULK:
                        self._insert_filter(tx, logical, message)
            self._insert_filter(tx, "lead", "QualifyLead")
            for logical in ("lead", "contact", "account"):
                self._insert_filter(tx, logical, "Merge")
            for code, name, symbol, rate in CURRENCIES:
                tx.insert(
                    "transactioncurrency",
                    self._system_row(
                        "transactioncurrency",
                        {
                            "transactioncurrencyid": _sid("currency", code),
                            "isocurrencycode": code,
                            "currencyname": name,
                            "currencysymbol": symbol,
                            "exchangerate": rate,
                            "currencyprecision": 2,
                        },
                    ),
                )
            self.engine.base_currency = _sid("currency", CURRENCIES[0][0])
            self._seed_solutions(tx)
            tx.events.clear()

    def _seed_solutions(self, tx: Any) -> None:
        """The Default Publisher and Default Solution every organization has; a provisioned one
        also has the mdsync publisher and solution that `mdsync dynamics setup` creates."""
        publishers = [("DefaultPublisher", "Default Publisher", self.config.default_publisher_prefix, 10000)]
        solutions = [("Default", "Default Solution", "DefaultPublisher")]
        if self.config.provisioned:
            publishers.append(("mdsync", "mdsync", "mdsync", 72840))
            solutions.append(("mdsync", "mdsync", "mdsync"))
        for unique, friendly, prefix, option_prefix in publishers:
            tx.insert(
                "publisher",
                self._system_row(
                    "publisher",
                    {
                        "publisherid": _sid("publisher", unique),
                        "uniquename": unique,
                        "friendlyname": friendly,
                        "customizationprefix": prefix,
                        "customizationoptionvalueprefix": option_prefix,
                    },
                ),
            )
        for unique, friendly, publisher in solutions:
            tx.insert(
                "solution",
                self._system_row(
                    "solution",
                    {
                        "solutionid": _sid("solution", unique),
                        "uniquename": unique,
                        "friendlyname": friendly,
                        "version": "1.0.0.0",
                        "ismanaged": False,
                        "publisherid": Ref("publisher", _sid("publisher", publisher)),
                    },
                ),
            )

    def _insert_filter(self, tx: Any, logical: str, message: str) -> None:
        tx.insert(
            "sdkmessagefilter",
            self._system_row(
                "sdkmessagefilter",
                {
                    "sdkmessagefilterid": _sid("filter", logical, message),
                    "primaryobjecttypecode": logical,
                    "secondaryobjecttypecode": "none",
                    "sdkmessageid": Ref("sdkmessage", _sid("message", message)),
                },
            ),
        )

    def set_bulk_support(self, logical: str, supported: bool) -> None:
        with self.store.transaction() as tx:
            for message in _BULK:
                filter_id = _sid("filter", logical, message)
                exists = self.store.get("sdkmessagefilter", filter_id) is not None
                if supported and not exists:
                    self._insert_filter(tx, logical, message)
                elif not supported and exists:
                    tx.delete("sdkmessagefilter", filter_id)
            if supported:
                self.bulk_tables.add(logical)
            else:
                self.bulk_tables.discard(logical)

    def reset(self) -> None:
        """Back to the configured initial state (rows, customisations, limits, faults, counts)."""
        self.webhooks.reset()
        with self.store.lock:
            fresh = default_tables(provisioned=self.config.provisioned)
            self.store.tables.clear()
            self.store.tables.update(fresh)
            self.engine.by_set = {t.entity_set: t for t in fresh.values()}
            self.store.clear()
            self.store.rows = {name: {} for name in fresh}
            self.store.tombstones = {name: [] for name in fresh}
            self.engine.plugins.clear()
            self.bulk_tables.clear()
            self.bulk_tables.update(self.config.bulk_tables)
            self.seed_system_rows()
        self._default_bypass()
        self.limiter.reset(ServiceLimits(**self.config.limits.to_json()))
        self.faults.clear()
        with self.calls_lock:
            self.calls.clear()

    def table(self, logical: str) -> Table:
        table = self.store.tables.get(logical)
        if table is None:
            raise KeyError(logical)
        return table


class DataverseSim:
    """``create_app(config, entra)`` -> this: ``.app`` (ASGI) and ``.state``."""

    def __init__(self, config: DataverseSimConfig, verifier: TokenVerifier) -> None:
        self.config = config
        self.state = DataverseState(config, verifier)
        self.app = Starlette(
            routes=[
                Route(
                    "/api/data/{version}/{rest:path}",
                    self._api,
                    methods=["GET", "POST", "PATCH", "DELETE", "PUT"],
                ),
                Mount("/admin", routes=admin_routes(self.state)),
            ]
        )

    def close(self) -> None:
        self.state.webhooks.close()

    async def _api(self, request: Request) -> Response:
        state = self.state
        version = request.path_params["version"]
        base = f"{request.url.scheme}://{request.url.netloc}"
        state.seen_base_url(base)
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        path = unquote(
            raw_path.decode("latin-1").split(f"/api/data/{version}", 1)[1].lstrip("/"), encoding="utf-8"
        )
        method = request.method
        state.count(endpoint_label(method, path))
        if version not in API_VERSIONS:
            return _to_response(
                ApiResponse.fault(
                    DataverseFault(404, "0x80060888", f"Resource not found for the segment '{version}'.")
                )
            )
        audience = state.config.org_url or base
        try:
            user_id = self._authenticate(request, audience)
        except DataverseFault as fault:
            return _to_response(ApiResponse.fault(fault))
        try:
            state.limiter.admit(user_id)
        except DataverseFault as fault:
            return _to_response(ApiResponse.fault(fault))
        started = time.perf_counter()
        try:
            body = await request.body()
            query = dict(
                parse_qsl(request.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            )
            content = " ".join([path, *query.values(), body.decode("utf-8", "replace")])
            delay, injected = state.faults.take(path, content)
            if delay:
                await asyncio.sleep(delay)
            if injected is not None:
                return _to_response(ApiResponse.fault(injected))
            headers = {k.lower(): v for k, v in request.headers.items()}
            headers["prefer"] = ",".join(request.headers.getlist("prefer"))
            req = ApiRequest(
                method=method,
                path=path,
                query=query,
                headers=headers,
                body=body,
                caller=Caller(user_id, correlation_id=headers.get("x-ms-correlation-id")),
                service_root=f"{base}/api/data/{version}",
            )
            response = state.api.dispatch(req)
        finally:
            state.limiter.release(user_id, (time.perf_counter() - started) * 1000)
        response.headers["x-ms-ratelimit-burst-remaining-xrm-requests"] = str(
            state.limiter.remaining(user_id)
        )
        return _to_response(response)

    def _authenticate(self, request: Request, audience: str) -> str:
        tenant = getattr(getattr(self.state.verifier, "config", None), "tenant_id", self.config.tenant_id)
        challenge = {
            "WWW-Authenticate": f"Bearer authorization_uri=https://login.microsoftonline.com/{tenant}"
            f"/oauth2/authorize, resource_id={audience}/"
        }
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer ") or not header[7:].strip():
            raise DataverseFault(
                401, "", "The request is not authenticated: no bearer token.", headers=challenge
            )
        try:
            claims = self.state.verifier.verify(header[7:].strip(), audience=audience)
        except TokenError as exc:
            raise DataverseFault(401, "", exc.message, headers=challenge) from exc
        if claims.systemuserid is None:
            raise DataverseFault(403, NOT_A_MEMBER, "The user is not a member of the organization.")
        self.state.ensure_user(claims.systemuserid, f"# {claims.appid}", application_id=claims.appid)
        return claims.systemuserid


def _to_response(response: ApiResponse) -> Response:
    request_id = str(uuid.uuid4())
    headers = {
        "OData-Version": "4.0",
        "REQ_ID": request_id,
        "x-ms-service-request-id": request_id,
        **response.headers,
    }
    media_type = headers.pop("Content-Type", None)
    return Response(response.body, status_code=response.status, headers=headers, media_type=media_type)


def create_app(config: DataverseSimConfig | None = None, entra: TokenVerifier | None = None) -> DataverseSim:
    if entra is None:
        raise ValueError("the Dataverse simulator needs the Entra simulator (or a token verifier)")
    return DataverseSim(config or DataverseSimConfig(), entra)
