"""The local host's stand-in for App Service authentication ("Easy Auth").

In Azure, App Service signs users in with Entra ID before a request reaches the Functions host,
strips any ``X-MS-CLIENT-PRINCIPAL*`` header a caller sent, injects its own for the signed-in
user, and tells the app it is on (``WEBSITE_AUTH_ENABLED=True``). Paths the Bicep excludes (the
webhooks, which cannot get Entra tokens) go through unauthenticated; anything else without a
session is redirected to the sign-in page (GET) or refused with 401.

The local host does the same with local users: a sign-in form at ``/.auth/login`` (user name and
password, printed by ``mdsync devhost`` and ``mdsync demo``), a signed session cookie
(``AppServiceAuthSession``, HttpOnly, SameSite=Lax, keyed per host process: a restart signs
everyone out), and the same principal header App Service would send, with the user's roles. The
principal headers a caller sends are always stripped, with or without sign-in, so the console
can trust the header exactly when the platform (or this stand-in) says authentication is on.
The host's own ``/admin`` API (master key) is also left alone, as the local tooling drives it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from shared.console.auth import PRINCIPAL_HEADERS, WEBHOOK_PATHS, encode_principal

SESSION_COOKIE = "AppServiceAuthSession"
AUTH_ENABLED_SETTING = "WEBSITE_AUTH_ENABLED"
SESSION_SECONDS = 8 * 3600
HOST_ADMIN = "/admin/"


@dataclass(frozen=True)
class LocalUser:
    name: str
    password: str
    roles: tuple[str, ...]


def strip_principal(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers without any principal a caller claims to be (App Service drops them too)."""
    return {k: v for k, v in headers.items() if k.lower() not in PRINCIPAL_HEADERS}


class LocalSignIn:
    def __init__(self, users: Sequence[LocalUser], *, excluded_paths: Sequence[str] = WEBHOOK_PATHS) -> None:
        if not users:
            raise ValueError("the local sign-in needs at least one user")
        self._users = {u.name.lower(): u for u in users}
        self._key = secrets.token_bytes(32)
        self.excluded_paths = tuple(p.lower().rstrip("/") for p in excluded_paths)

    # --- sessions ----------------------------------------------------------------------------------

    def _sign(self, payload: bytes) -> str:
        return hmac.new(self._key, payload, hashlib.sha256).hexdigest()

    def session_for(self, user: LocalUser) -> str:
        payload = base64.urlsafe_b64encode(
            json.dumps({"u": user.name, "exp": int(time.time()) + SESSION_SECONDS}).encode()
        )
        return f"{payload.decode()}.{self._sign(payload)}"

    def user_of(self, request: Request) -> LocalUser | None:
        raw = request.cookies.get(SESSION_COOKIE, "")
        payload, _, signature = raw.rpartition(".")
        if not payload or not hmac.compare_digest(self._sign(payload.encode()), signature):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload.encode()))
        except ValueError:
            return None
        if not isinstance(data, dict) or int(data.get("exp", 0)) < time.time():
            return None
        return self._users.get(str(data.get("u", "")).lower())

    # --- the front's part ------------------------------------------------------------------------

    def is_excluded(self, path: str) -> bool:
        lowered = path.lower().rstrip("/")
        return lowered.startswith(HOST_ADMIN.rstrip("/")) or any(
            lowered == p or lowered.startswith(p + "/") for p in self.excluded_paths
        )

    def gate(self, request: Request, path: str) -> Response | None:
        """None to let the request through; else the redirect or refusal App Service would give."""
        if self.is_excluded(path) or self.user_of(request) is not None:
            return None
        if request.method.upper() == "GET":
            target = path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/.auth/login?post_login_redirect_uri={quote(target)}", status_code=302)
        return PlainTextResponse(
            "You do not have permission to view this directory or page.", status_code=401
        )

    def principal_headers(self, request: Request) -> dict[str, str]:
        user = self.user_of(request)
        if user is None:
            return {}
        return {
            "x-ms-client-principal": encode_principal(
                f"local-{user.name}", user.name, list(user.roles), "aad"
            ),
            "x-ms-client-principal-id": f"local-{user.name}",
            "x-ms-client-principal-name": user.name,
            "x-ms-client-principal-idp": "aad",
        }

    # --- /.auth ----------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route("/.auth/login", self._login_form, methods=["GET"]),
            Route("/.auth/login", self._login, methods=["POST"]),
            Route("/.auth/logout", self._logout, methods=["GET", "POST"]),
        ]

    async def _login_form(self, request: Request) -> Response:
        return HTMLResponse(
            _login_page(_safe_target(request.query_params.get("post_login_redirect_uri")), "")
        )

    async def _login(self, request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        name = (form.get("username") or [""])[0]
        password = (form.get("password") or [""])[0]
        target = _safe_target((form.get("post_login_redirect_uri") or [""])[0])
        user = self._users.get(name.lower())
        # Compare against a dummy for an unknown name too: the time taken does not tell.
        expected = user.password if user else secrets.token_hex(16)
        if user is None or not hmac.compare_digest(password.encode(), expected.encode()):
            return HTMLResponse(_login_page(target, "Wrong user name or password."), status_code=401)
        response = RedirectResponse(target, status_code=302)
        response.set_cookie(
            SESSION_COOKIE,
            self.session_for(user),
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="lax",
            path="/",
        )
        return response

    async def _logout(self, request: Request) -> Response:
        response = RedirectResponse("/.auth/login", status_code=302)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response


def _safe_target(target: str | None) -> str:
    """Only a path on this host: never another site (an open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/api/console"
    return target


def _login_page(target: str, problem: str) -> str:
    warning = f'<p role="alert" style="color:#cf222e">{escape(problem)}</p>' if problem else ""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Sign in · mdsync local host</title><style>
body{{font:14px system-ui,sans-serif;background:#f6f8fa;display:grid;place-items:center;height:100vh;
margin:0}}
form{{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:24px;min-width:320px}}
input{{display:block;width:100%;margin:4px 0 12px;padding:6px;box-sizing:border-box}}
button{{padding:6px 16px}}
</style></head>
<body><form method="post" action="/.auth/login"><h1 style="font-size:18px">Sign in to the local host</h1>
<p style="color:#57606a">Stands in for App Service authentication (Entra ID) on this machine.</p>{warning}
<label>User name<input name="username" autocomplete="username" required></label>
<label>Password<input name="password" type="password" autocomplete="current-password" required></label>
<input type="hidden" name="post_login_redirect_uri" value="{escape(target)}">
<button type="submit">Sign in</button></form></body></html>"""
