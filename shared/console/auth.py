"""Who may use the console: a user signed in through App Service authentication with the
operator app role, and CSRF protection for the actions.

Sign-in is the platform's (docs/operations.md): App Service authentication ("Easy Auth") signs
the user in with Entra ID and hands the function the ``X-MS-CLIENT-PRINCIPAL`` header, a Base64
JSON of the user's claims. App Service strips that header from incoming requests, but only while
its authentication is on; so the header is trusted only when the platform says it is on
(``WEBSITE_AUTH_ENABLED=True``, which App Service sets, and which the local host sets because it
plays Easy Auth's part with its own sign-in, ``mdsync/devhost/signin.py``). Otherwise every
console request is refused: there is no key to put in a URL, and no header a caller could forge.

Roles: app roles arrive as claims; after App Service's claim mapping their type is ``roles`` or
the principal's ``role_typ`` (the reference leaves open which), so both are read.

CSRF: the actions are POSTs carrying a token that must equal the ``mdsync_csrf`` cookie (set by
the console's pages, HttpOnly, SameSite=Strict: another site can neither read it nor make the
browser send it), and a cross-site Origin or ``Sec-Fetch-Site`` is refused outright.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

PRINCIPAL = "x-ms-client-principal"
PRINCIPAL_ID = "x-ms-client-principal-id"
PRINCIPAL_NAME = "x-ms-client-principal-name"
PRINCIPAL_IDP = "x-ms-client-principal-idp"
PRINCIPAL_HEADERS = (PRINCIPAL, PRINCIPAL_ID, PRINCIPAL_NAME, PRINCIPAL_IDP)
ROLE_CLAIMS = ("roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role")
NAME_CLAIMS = ("name", "preferred_username", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name")
ID_CLAIMS = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid", "sub")
CSRF_COOKIE = "mdsync_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
# Routes that callers without an Entra ID token use (each checks its own key and secret): App
# Service authentication must let them through (authsettingsV2 excludedPaths in the Bicep, and
# the local host's sign-in; tests keep the three lists equal). /api/backfill is an
# administrator's call with the master key (the Functions host checks it), from a shell.
WEBHOOK_PATHS = ("/api/dynamics/webhook", "/api/marketo/sync-person", "/api/backfill")


@dataclass(frozen=True)
class Principal:
    id: str
    name: str
    roles: frozenset[str]
    provider: str = ""


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str


def _claims(document: Mapping[str, object]) -> list[tuple[str, str]]:
    claims = document.get("claims")
    if not isinstance(claims, list):
        return []
    found = []
    for claim in claims:
        if (
            isinstance(claim, dict)
            and isinstance(claim.get("typ"), str)
            and isinstance(claim.get("val"), str)
        ):
            found.append((claim["typ"], claim["val"]))
    return found


def read_principal(headers: Mapping[str, str]) -> Principal | None:
    """The signed-in user the headers describe; None when there is none or it is unreadable."""
    raw = headers.get(PRINCIPAL)
    if not raw:
        return None
    try:
        document = json.loads(base64.b64decode(raw, validate=False))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    claims = _claims(document)
    role_type = document.get("role_typ")
    role_types = {*ROLE_CLAIMS, role_type} if isinstance(role_type, str) else set(ROLE_CLAIMS)
    roles = frozenset(value for typ, value in claims if typ in role_types)
    name_type = document.get("name_typ")
    names = [v for t, v in claims if t in NAME_CLAIMS or t == name_type]
    ids = [v for t, v in claims if t in ID_CLAIMS]
    name = headers.get(PRINCIPAL_NAME) or (names[0] if names else "")
    principal_id = headers.get(PRINCIPAL_ID) or (ids[0] if ids else name)
    if not principal_id:
        return None
    return Principal(principal_id, name or principal_id, roles, headers.get(PRINCIPAL_IDP, ""))


def authorize(headers: Mapping[str, str], *, platform_auth: bool, role: str) -> Principal | Refusal:
    if not platform_auth:
        return Refusal(
            401,
            "the console needs App Service authentication (Entra ID) in front of the app; "
            "it is off here, so no sign-in can be trusted (docs/operations.md)",
        )
    principal = read_principal(headers)
    if principal is None:
        return Refusal(401, "sign in first (App Service authentication did not name a user)")
    if role not in principal.roles:
        return Refusal(403, f"{principal.name} is signed in but lacks the app role {role!r}")
    return principal


def encode_principal(user_id: str, name: str, roles: list[str], provider: str = "aad") -> str:
    """The header App Service would send for this user (the local host's sign-in uses it)."""
    document = {
        "auth_typ": provider,
        "name_typ": "name",
        "role_typ": "roles",
        "claims": [
            {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": user_id},
            {"typ": "name", "val": name},
            *({"typ": "roles", "val": r} for r in roles),
        ],
    }
    return base64.b64encode(json.dumps(document).encode()).decode()


# --- CSRF ---------------------------------------------------------------------------------------


def cookies(headers: Mapping[str, str]) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


def csrf_token(headers: Mapping[str, str]) -> tuple[str, bool]:
    """The request's CSRF token, and whether it is new (then the page must set the cookie)."""
    existing = cookies(headers).get(CSRF_COOKIE, "")
    if len(existing) >= 32 and existing.isascii():
        return existing, False
    return secrets.token_urlsafe(32), True


def csrf_cookie(token: str, *, secure: bool) -> str:
    flags = "; Secure" if secure else ""
    return f"{CSRF_COOKIE}={token}; Path=/api/console; HttpOnly; SameSite=Strict{flags}"


def check_csrf(headers: Mapping[str, str], presented: str | None, url: str) -> Refusal | None:
    """None when the POST is the console's own; else why it is refused (403)."""
    site = (headers.get("sec-fetch-site") or "").lower()
    if site and site not in ("same-origin", "none"):
        return Refusal(403, f"cross-site request refused (Sec-Fetch-Site: {site})")
    origin = headers.get("origin")
    if origin and origin != "null":
        own = urlsplit(url)
        theirs = urlsplit(origin)
        if (theirs.scheme, theirs.netloc) != (own.scheme, own.netloc):
            return Refusal(403, "cross-origin request refused (Origin is not this console)")
    cookie = cookies(headers).get(CSRF_COOKIE, "")
    if not cookie or not presented or not hmac.compare_digest(cookie.encode(), presented.encode()):
        return Refusal(403, "missing or stale form token: reload the console page and try again")
    return None
