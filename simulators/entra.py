"""A local Microsoft Entra ID token endpoint (client credentials only), as msal calls it.

msal with ``instance_discovery=False`` makes exactly two calls: the tenant's OpenID
configuration, then ``POST {token_endpoint}`` with the client id and secret in the form body.
This simulator answers both with the documented success and error bodies (AADSTS codes), and
issues HMAC-SHA256 signed JWT-style access tokens (``aud``, ``appid``, ``tid``, ``exp``...)
that the Dataverse simulator verifies through :meth:`EntraSim.verify`.

Admin endpoints (for fault tests) live under ``/admin``: revoke every token issued so far,
move the token clock forward (tokens expire), fail the next token requests, read call counts
and what is armed (``GET /admin/state``). Their bodies are read strictly
(``simulators/admin_body.py``): a wrong JSON type is a 400 naming the field, and changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import requests
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulators.admin_body import BadField, Body

DEFAULT_TENANT = "6a1f3c2e-0b7d-4e59-9f3a-2c8d1e4b7a60"
DEFAULT_CLIENT_ID = "3f2b8c1d-5e6a-4b7c-8d9e-0a1b2c3d4e5f"
DEFAULT_CLIENT_SECRET = "local-simulator-secret-value-0001"
DEFAULT_APP_USER_ID = "d89254ff-9438-ef11-a315-000d3a5a54dc"


@dataclass(frozen=True)
class EntraClient:
    """A registered confidential client and the Dataverse application user bound to it."""

    client_id: str
    secret: str
    systemuserid: str
    name: str = "mdsync"


def default_clients() -> tuple[EntraClient, ...]:
    return (EntraClient(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_APP_USER_ID),)


@dataclass
class EntraSimConfig:
    tenant_id: str = DEFAULT_TENANT
    clients: tuple[EntraClient, ...] = field(default_factory=default_clients)
    token_lifetime: int = 3599
    # Accepted resources (token audiences); empty accepts any https resource.
    resources: tuple[str, ...] = ()
    signing_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))


@dataclass(frozen=True)
class TokenClaims:
    """What a verified access token says about its caller."""

    appid: str
    tenant_id: str
    audience: str
    expires_at: int
    systemuserid: str | None


class TokenError(Exception):
    """A bearer token is missing, malformed, forged, for another audience, expired or revoked.

    ``reason`` is one of ``missing``, ``malformed``, ``signature``, ``audience``, ``expired``,
    ``revoked``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def normalize_audience(value: str) -> str:
    return value.strip().rstrip("/").lower()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class EntraState:
    """Mutable, lock-protected state: call counts, issued and revoked tokens, clock, faults."""

    def __init__(self, config: EntraSimConfig) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.issued: set[str] = set()
        self.revoked: set[str] = set()
        self.clock_offset = 0.0
        self.fail_next: list[int] = []

    def now(self) -> float:
        return time.time() + self.clock_offset

    def count(self, endpoint: str) -> None:
        with self.lock:
            self.calls[endpoint] += 1

    def revoke_all(self) -> int:
        with self.lock:
            fresh = self.issued - self.revoked
            self.revoked |= self.issued
            return len(fresh)

    def advance_clock(self, seconds: float) -> None:
        with self.lock:
            self.clock_offset += seconds

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.revoked |= self.issued
            self.clock_offset = 0.0
            self.fail_next.clear()

    def take_fault(self) -> int | None:
        with self.lock:
            return self.fail_next.pop(0) if self.fail_next else None


class EntraSim:
    """The Starlette app (``.app``), its state (``.state``) and the token verifier."""

    def __init__(self, config: EntraSimConfig) -> None:
        self.config = config
        self.state = EntraState(config)
        self._clients = {c.client_id: c for c in config.clients}
        self.app = Starlette(routes=_routes(self))

    # --- tokens --------------------------------------------------------------------------

    def issue(self, client: EntraClient, resource: str) -> tuple[str, int]:
        now = int(self.state.now())
        uti = _b64(secrets.token_bytes(16))
        claims = {
            "aud": resource,
            "iss": f"https://sts.windows.net/{self.config.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + self.config.token_lifetime,
            "appid": client.client_id,
            "appidacr": "1",
            "idtyp": "app",
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{client.client_id}")),
            "tid": self.config.tenant_id,
            "uti": uti,
            "ver": "1.0",
        }
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = self._sign(f"{header}.{payload}")
        with self.state.lock:
            self.state.issued.add(uti)
        return f"{header}.{payload}.{signature}", self.config.token_lifetime

    def _sign(self, signing_input: str) -> str:
        digest = hmac.new(self.config.signing_key, signing_input.encode("ascii"), hashlib.sha256)
        return _b64(digest.digest())

    def verify(self, token: str, *, audience: str) -> TokenClaims:
        """Check signature, audience, expiry and revocation; raise TokenError otherwise."""
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("malformed", "The access token is malformed.")
        expected = self._sign(f"{parts[0]}.{parts[1]}")
        if not hmac.compare_digest(expected, parts[2]):
            raise TokenError("signature", "The access token signature is invalid.")
        try:
            claims: dict[str, Any] = json.loads(_unb64(parts[1]))
        except ValueError as exc:
            raise TokenError("malformed", "The access token is malformed.") from exc
        if normalize_audience(str(claims.get("aud", ""))) != normalize_audience(audience):
            raise TokenError("audience", "The access token audience is not this organization.")
        if int(claims.get("exp", 0)) <= self.state.now():
            raise TokenError("expired", "The access token has expired.")
        with self.state.lock:
            revoked = claims.get("uti") in self.state.revoked
        if revoked:
            raise TokenError("revoked", "The access token has been revoked.")
        client = self._clients.get(str(claims.get("appid")))
        return TokenClaims(
            appid=str(claims.get("appid")),
            tenant_id=str(claims.get("tid")),
            audience=str(claims.get("aud")),
            expires_at=int(claims["exp"]),
            systemuserid=client.systemuserid if client else None,
        )

    def application_users(self) -> dict[str, str]:
        """systemuserid -> display name of every client's application user."""
        return {c.systemuserid: f"# {c.name}" for c in self.config.clients}

    def client(self, client_id: str) -> EntraClient | None:
        return self._clients.get(client_id)


# --- HTTP ----------------------------------------------------------------------------------


def _error(status: int, error: str, code: int, text: str) -> JSONResponse:
    trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return JSONResponse(
        {
            "error": error,
            "error_description": f"AADSTS{code}: {text} Trace ID: {trace_id} "
            f"Correlation ID: {correlation_id} Timestamp: {stamp}",
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        },
        status_code=status,
    )


def _base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _routes(sim: EntraSim) -> list[Route]:
    async def openid_configuration(request: Request) -> Response:
        sim.state.count("GET openid-configuration")
        tenant = request.path_params["tenant"]
        if tenant != sim.config.tenant_id:
            return _error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        base = f"{_base(request)}/{tenant}"
        return JSONResponse(
            {
                "issuer": f"{base}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "jwks_uri": f"{_base(request)}/{tenant}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
                "response_types_supported": ["code", "id_token", "code id_token", "token id_token"],
                "tenant_region_scope": "EU",
            }
        )

    async def token(request: Request) -> Response:
        sim.state.count("POST token")
        fault = sim.state.take_fault()
        if fault is not None:
            headers = {"Retry-After": "1"} if fault in (429, 503) else {}
            response = _error(fault, "temporarily_unavailable", 50196, "The server is busy.")
            response.headers.update(headers)
            return response
        tenant = request.path_params["tenant"]
        if tenant != sim.config.tenant_id:
            return _error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        # The token endpoint takes application/x-www-form-urlencoded only.
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("application/x-www-form-urlencoded"):
            return _error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            )
        body = (await request.body()).decode("utf-8", errors="replace")
        fields = dict(parse_qsl(body, keep_blank_values=True))
        return _token_response(sim, tenant, fields)

    async def keys(request: Request) -> Response:
        sim.state.count("GET keys")
        # Tokens are HMAC-signed with a shared key; there is no public key to publish.
        return JSONResponse({"keys": []})

    async def admin_revoke(request: Request) -> Response:
        return JSONResponse({"revoked": sim.state.revoke_all()})

    async def admin_clock(request: Request) -> Response:
        try:
            seconds = Body.parse(await request.body(), ["advance_seconds"]).number("advance_seconds", 0.0)
        except BadField as why:
            return JSONResponse({"error": str(why)}, status_code=400)
        sim.state.advance_clock(seconds)
        return JSONResponse({"clock_offset": sim.state.clock_offset})

    async def admin_faults(request: Request) -> Response:
        try:
            body = Body.parse(await request.body(), ["status", "count"])
            status, count = body.whole("status", 503, minimum=100), body.whole("count", 1, minimum=1)
        except BadField as why:
            return JSONResponse({"error": str(why)}, status_code=400)
        with sim.state.lock:
            sim.state.fail_next.extend([status] * count)
        return JSONResponse({"pending": len(sim.state.fail_next)})

    async def admin_pending(request: Request) -> Response:
        with sim.state.lock:
            return JSONResponse({"pending": len(sim.state.fail_next), "clock_offset": sim.state.clock_offset})

    async def admin_reset(request: Request) -> Response:
        # Tokens issued before a reset stay revoked: a test never inherits another's token.
        sim.state.reset()
        return JSONResponse({"reset": True})

    async def admin_calls(request: Request) -> Response:
        with sim.state.lock:
            if request.method == "DELETE":
                sim.state.calls.clear()
            return JSONResponse(dict(sim.state.calls))

    return [
        Route("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration),
        Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
        Route("/{tenant}/discovery/v2.0/keys", keys),
        Route("/admin/revoke", admin_revoke, methods=["POST"]),
        Route("/admin/clock", admin_clock, methods=["POST"]),
        Route("/admin/faults", admin_faults, methods=["POST"]),
        Route("/admin/state", admin_pending, methods=["GET"]),
        Route("/admin/calls", admin_calls, methods=["GET", "DELETE"]),
        Route("/admin/reset", admin_reset, methods=["POST"]),
    ]


def _token_response(sim: EntraSim, tenant: str, fields: dict[str, str]) -> Response:
    for name in ("grant_type", "client_id", "scope"):
        if not fields.get(name):
            return _error(
                400,
                "invalid_request",
                900144,
                f"The request body must contain the following parameter: '{name}'.",
            )
    if fields["grant_type"] != "client_credentials":
        return _error(
            400,
            "unsupported_grant_type",
            70003,
            f"The app requested an unsupported grant type '{fields['grant_type']}'.",
        )
    client = sim.client(fields["client_id"])
    if client is None:
        return _error(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{fields['client_id']}' was not found in the "
            f"directory '{tenant}'. This can happen if the application has not been installed "
            "by the administrator of the tenant or consented to by any user in the tenant.",
        )
    if not hmac.compare_digest(fields.get("client_secret", ""), client.secret):
        return _error(
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the "
            f"client secret value, not the client secret ID, for a secret added to app "
            f"'{client.client_id}'.",
        )
    scope = fields["scope"].split()
    if len(scope) != 1 or not scope[0].endswith("/.default"):
        return _error(
            400,
            "invalid_scope",
            1002012,
            f"The provided value for scope {fields['scope']} is not valid. Client credential "
            "flows must have a scope value with /.default suffixed to the resource identifier "
            "(application ID URI).",
        )
    resource = scope[0].removesuffix("/.default")
    allowed = {normalize_audience(r) for r in sim.config.resources}
    if not resource.startswith("https://") or (allowed and normalize_audience(resource) not in allowed):
        return _error(
            400,
            "invalid_resource",
            500011,
            f"The resource principal named {resource} was not found in the tenant named "
            f"{tenant}. This can happen if the application has not been installed by the "
            "administrator of the tenant or consented to by any user in the tenant.",
        )
    token, lifetime = sim.issue(client, resource)
    return JSONResponse(
        {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
        },
        headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
    )


def create_app(config: EntraSimConfig | None = None) -> EntraSim:
    return EntraSim(config or EntraSimConfig())


class EntraAdmin:
    """The Entra simulator's admin API over HTTP (tests and the demo)."""

    def __init__(self, base_url: str, session: requests.Session) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.session.post(f"{self.base_url}/admin/{path}", json=body, timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def revoke_all(self) -> int:
        return int(self._post("revoke", {})["revoked"])

    def advance_clock(self, seconds: float) -> None:
        self._post("clock", {"advance_seconds": seconds})

    def fail_next(self, count: int = 1, *, status: int = 503) -> None:
        self._post("faults", {"count": count, "status": status})

    def calls(self) -> dict[str, int]:
        response = self.session.get(f"{self.base_url}/admin/calls", timeout=10)
        response.raise_for_status()
        return {str(k): int(v) for k, v in response.json().items()}

    def reset(self) -> None:
        self._post("reset", {})

    def reset_calls(self) -> None:
        self.session.delete(f"{self.base_url}/admin/calls", timeout=10).raise_for_status()
