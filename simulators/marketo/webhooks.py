"""Webhooks as Admin > Webhooks defines them, and the rendering of a Call Webhook request.

Tokens are ``{{lead.<Display Name>}}`` with an optional ``:default=<text>``. Request Token
Encoding applies to the template: ``json`` emits string-typed values already JSON-quoted (so
the template does not quote them) and numbers/booleans bare; ``form-url`` percent-encodes
them as in a form body; ``none`` inserts the raw text. Tokens in the URL and in custom
headers are inserted as raw text (the URL is sent exactly as written). Other token scopes
(``{{system.*}}``, ``{{my.*}}``) are left untouched.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

from simulators.admin_body import BadField, Body
from simulators.marketo.fields import STRING_TYPES, FieldCatalog, FieldDef, Value

ENCODINGS = frozenset({"none", "form-url", "json"})
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_TOKEN = re.compile(r"\{\{\s*lead\.([^}:]+?)\s*(?::default=([^}]*))?\}\}")
_SEGMENT = re.compile(r"^([A-Za-z0-9_\-: ]+)((?:\[\d+\])*)$")


class WebhookDefinitionError(ValueError):
    """The admin API was given an unusable webhook definition."""


@dataclass(frozen=True)
class Mapping:
    path: str
    field: str  # SOAP name of the person field


@dataclass(frozen=True)
class Webhook:
    webhook_id: int
    name: str
    url: str
    method: str = "POST"
    template: str = ""
    encoding: str = "json"
    headers: tuple[tuple[str, str], ...] = ()
    response_type: str = "json"
    mappings: tuple[Mapping, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.webhook_id,
            "name": self.name,
            "url": self.url,
            "method": self.method,
            "template": self.template,
            "encoding": self.encoding,
            "headers": dict(self.headers),
            "responseType": self.response_type,
            "responseMappings": [{"path": m.path, "field": m.field} for m in self.mappings],
        }


def parse_webhook(webhook_id: int, body: dict[str, Any], catalog: FieldCatalog) -> Webhook:
    name = body.get("name")
    url = body.get("url")
    if not isinstance(name, str) or not name.strip():
        raise WebhookDefinitionError("name is required")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise WebhookDefinitionError("url must be an http(s) URL")
    fields = Body(body)
    method = fields.text("method", "POST").upper()
    encoding = fields.text("encoding", "json").lower()
    response_type = fields.text("responseType", "json").lower()
    template = fields.text("template", "")
    if method not in METHODS:
        raise WebhookDefinitionError(f"method must be one of {sorted(METHODS)}")
    if encoding not in ENCODINGS:
        raise WebhookDefinitionError(f"encoding must be one of {sorted(ENCODINGS)}")
    if response_type != "json":
        raise WebhookDefinitionError("only the JSON response type is simulated")
    headers = fields.obj("headers", {})
    for key, value in headers.items():
        if not isinstance(value, str):
            raise BadField(f"headers.{key}", "a string", value)
    mappings = []
    for item in fields.objects("responseMappings", []):
        mapping = Body(item)
        soap, path = mapping.text("field", ""), mapping.text("path", "")
        if catalog.by_soap(soap) is None:
            raise WebhookDefinitionError(f"response mapping field '{soap}' is not a SOAP field name")
        parse_path(path)
        mappings.append(Mapping(path, soap))
    return Webhook(
        webhook_id=webhook_id,
        name=name,
        url=url,
        method=method,
        template=template,
        encoding=encoding,
        headers=tuple(headers.items()),
        response_type=response_type,
        mappings=tuple(mappings),
    )


@dataclass(frozen=True)
class RenderedRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None


def render_request(hook: Webhook, person: dict[str, Value], catalog: FieldCatalog) -> RenderedRequest:
    body = None
    if hook.method != "GET" and hook.template:
        body = render(hook.template, person, catalog, hook.encoding).encode("utf-8")
    return RenderedRequest(
        method=hook.method,
        url=render(hook.url, person, catalog, "none"),
        headers={k: render(v, person, catalog, "none") for k, v in hook.headers},
        body=body,
    )


def render(text: str, person: dict[str, Value], catalog: FieldCatalog, encoding: str) -> str:
    def token(match: re.Match[str]) -> str:
        field = catalog.by_display(match.group(1))
        value = person.get(field.name) if field else None
        default = match.group(2)
        return encode_value(field, value, default, encoding)

    return _TOKEN.sub(token, text)


def encode_value(field: FieldDef | None, value: Value, default: str | None, encoding: str) -> str:
    empty = value is None or value == ""
    text = default if empty and default is not None else ("" if empty else _text(value))
    if encoding == "form-url":
        return quote_plus(text)
    if encoding != "json":
        return text
    is_string = field is None or field.data_type in STRING_TYPES or field.data_type in {"date", "datetime"}
    if is_string:
        return json.dumps(text)
    return "null" if empty and default is None else text


def _text(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def parse_path(path: str) -> list[str | int]:
    """``orders[0].orderDate`` -> ``["orders", 0, "orderDate"]``."""
    steps: list[str | int] = []
    for segment in path.split("."):
        match = _SEGMENT.match(segment)
        if not match:
            raise WebhookDefinitionError(f"invalid response attribute path '{path}'")
        steps.append(match.group(1))
        steps.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(2)))
    return steps


def extract(document: object, path: str) -> tuple[bool, object]:
    """The value at ``path`` in a parsed JSON response: (found, value)."""
    current = document
    for step in parse_path(path):
        if isinstance(step, int):
            if not isinstance(current, list) or step >= len(current):
                return False, None
            current = current[step]
        else:
            if not isinstance(current, dict) or step not in current:
                return False, None
            current = current[step]
    return True, current
