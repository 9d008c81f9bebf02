"""A small client of the simulator's admin API, for tests and the demo that talk over HTTP."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import requests


class MarketoAdminError(RuntimeError):
    pass


class MarketoAdmin:
    def __init__(self, base_url: str, session: requests.Session, *, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/") + "/admin"
        self.session = session
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None, **params: Any) -> Any:
        response = self.session.request(
            method, self.base_url + path, json=body, params=params or None, timeout=self.timeout
        )
        if response.status_code >= 400:
            raise MarketoAdminError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()

    # --- persons -------------------------------------------------------------------------

    def reset(self) -> None:
        self._call("POST", "/reset")

    def seed_persons(self, persons: Sequence[Mapping[str, Any]]) -> list[int]:
        """Create persons without recording any activity (the instance before the test)."""
        return list(self._call("POST", "/persons", {"persons": list(persons)})["ids"])

    def persons(self, fields: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Every person, with only ``fields`` when some are named."""
        if fields:
            return list(self._call("GET", "/persons", fields=",".join(fields))["persons"])
        return list(self._call("GET", "/persons")["persons"])

    def person(self, lead_id: int) -> dict[str, Any]:
        return dict(self._call("GET", f"/persons/{lead_id}")["person"])

    def activities(self, lead_id: int, type_ids: Iterable[int] | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"typeIds": ",".join(str(t) for t in type_ids)} if type_ids else {}
        return list(self._call("GET", f"/persons/{lead_id}/activities", **params)["activities"])

    def user_create(self, fields: Mapping[str, Any]) -> int:
        """Create a person as a Marketo user would (New Lead activity with a user source)."""
        return int(self._call("POST", "/ui/persons", {"fields": dict(fields)})["id"])

    def user_edit(self, lead_id: int, fields: Mapping[str, Any]) -> list[str]:
        """Edit a person on the Person Details page; returns the fields that changed."""
        return list(self._call("PATCH", f"/ui/persons/{lead_id}", {"fields": dict(fields)})["changed"])

    def user_delete(self, lead_id: int) -> None:
        self._call("DELETE", f"/ui/persons/{lead_id}")

    def user_merge(self, winner: int, losers: Sequence[int]) -> list[str]:
        """Merge People as a Marketo user: ``losers`` into ``winner``; returns the fields taken."""
        return list(self._call("POST", f"/ui/persons/{winner}/merge", {"losers": list(losers)})["taken"])

    # --- field management ----------------------------------------------------------------------

    def block_field_updates(self, name: str, sources: Sequence[str] = ("Web service API",)) -> None:
        """Block Field Updates on a person field for these input sources."""
        self._call("PUT", f"/fields/{name}/block", {"sources": list(sources)})

    def unblock_field_updates(self, name: str) -> None:
        self._call("DELETE", f"/fields/{name}/block")

    # --- partitions ----------------------------------------------------------------------------

    def move_to_partition(self, lead_ids: Sequence[int], partition: int) -> None:
        self._call("POST", "/partitions/move", {"ids": list(lead_ids), "partition": partition})

    def set_api_partitions(self, partitions: Sequence[int] | None) -> None:
        """The partitions the API user reaches (None: all): a role or workspace change."""
        self._call("PUT", "/api-partitions", {"partitions": None if partitions is None else list(partitions)})

    # --- limits, faults, counts ----------------------------------------------------------------

    def limits(self) -> dict[str, Any]:
        return dict(self._call("GET", "/limits"))

    def set_limits(self, **limits: Any) -> dict[str, Any]:
        """camelCase keys: rateLimit, rateWindowSeconds, concurrencyLimit, dailyQuota, maxBatch,
        maxFilterMatches, activityScanLimit."""
        return dict(self._call("PUT", "/limits", limits))

    def inject_fault(self, code: str, count: int = 1) -> None:
        """The next ``count`` REST calls answer Marketo error ``code`` (606, 615, 611, 604...)."""
        self._call("POST", "/faults", {"code": code, "count": count})

    def refuse_content(self, text: str, code: str = "1003", count: int | None = None) -> None:
        """REST calls whose query or body holds ``text`` are refused as a whole with ``code``
        (1001, 1003, 609...), ``count`` times (None: until faults are cleared)."""
        self._call("POST", "/faults", {"refuse": text, "code": code, "count": count})

    def inject_latency(self, milliseconds: float, count: int = 1) -> None:
        self._call("POST", "/faults", {"latencyMs": milliseconds, "count": count})

    def faults(self) -> dict[str, Any]:
        """The faults still armed: ``codes``, ``latency``, ``refusals``."""
        return dict(self._call("GET", "/faults"))

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def expire_tokens(self) -> int:
        return int(self._call("POST", "/tokens/expire")["expired"])

    def set_quota(self, *, daily: int | None = None, used: int | None = None) -> None:
        body = {k: v for k, v in {"dailyQuota": daily, "used": used}.items() if v is not None}
        self._call("PUT", "/quota", body)

    def calls(self) -> dict[str, Any]:
        return dict(self._call("GET", "/calls"))

    def reset_calls(self) -> None:
        self._call("DELETE", "/calls")

    # --- bulk jobs -------------------------------------------------------------------------------

    def bulk(self) -> dict[str, Any]:
        """Bulk settings (camelCase), ``paused``, ``exportUsedBytes``, and every job's status:
        ``exports`` (as Get Export Lead Job Status shows them) and ``imports``."""
        return dict(self._call("GET", "/bulk"))

    def set_bulk(self, **settings: Any) -> dict[str, Any]:
        """camelCase keys: maxProcessing, maxQueued, exportDailyQuotaBytes, importMaxBytes,
        maxDateRangeDays, fileRetentionDays, statusRetentionDays, unsupportedFilters,
        extractRowsPerSecond, importRowsPerSecond, startDelaySeconds; and paused, exportUsedBytes,
        cutDownloads (the next whole-file downloads break after so many bytes each)."""
        return dict(self._call("PUT", "/bulk", settings))

    def pause_bulk(self, paused: bool = True) -> None:
        """Held jobs still start (up to the processing limit) but make no progress."""
        self._call("PUT", "/bulk", {"paused": paused})

    # --- webhooks ------------------------------------------------------------------------------

    def define_webhook(
        self,
        name: str,
        url: str,
        *,
        method: str = "POST",
        template: str = "",
        encoding: str = "json",
        headers: Mapping[str, str] | None = None,
        response_mappings: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """``response_mappings`` maps a response path (``data.id``) to a SOAP field name."""
        body = {
            "name": name,
            "url": url,
            "method": method,
            "template": template,
            "encoding": encoding,
            "headers": dict(headers or {}),
            "responseType": "json",
            "responseMappings": [
                {"path": path, "field": field} for path, field in (response_mappings or {}).items()
            ],
        }
        return dict(self._call("POST", "/webhooks", body))

    def fire_webhook(self, name: str, lead_id: int) -> dict[str, Any]:
        """Run the Call Webhook flow step for one person: status, body, elapsedMs, errorType,
        mappedFields, activityId."""
        return dict(self._call("POST", f"/webhooks/{name}/fire", {"leadId": lead_id}))

    # --- trigger campaigns ---------------------------------------------------------------------

    def define_campaign(
        self,
        name: str,
        webhook: str,
        *,
        changed: Sequence[str] = (),
        created: bool = False,
        source_is_not: Sequence[str] = (),
        active: bool = True,
    ) -> dict[str, Any]:
        """A trigger campaign calling ``webhook``: "Data Value Changes" on the ``changed``
        attributes (REST names) and/or "Person is Created", each constrained to sources other
        than ``source_is_not``. ``active`` False keeps it defined but listening to nothing."""
        triggers: list[dict[str, Any]] = []
        if changed:
            triggers.append(
                {
                    "type": "Data Value Changes",
                    "attributes": list(changed),
                    "sourceIsNot": list(source_is_not),
                }
            )
        if created:
            triggers.append({"type": "Person is Created", "sourceIsNot": list(source_is_not)})
        body = {"name": name, "webhook": webhook, "triggers": triggers, "active": active}
        return dict(self._call("POST", "/campaigns", body))

    def campaigns(self) -> dict[str, Any]:
        return dict(self._call("GET", "/campaigns"))

    def pause_campaigns(self, paused: bool = True) -> None:
        self._call("PUT", "/campaigns", {"paused": paused})

    def wait_for_campaigns(self, timeout: float = 30) -> bool:
        """Whether every queued campaign run has run within ``timeout`` seconds."""
        return bool(self._call("POST", "/campaigns/idle", timeout=timeout)["idle"])
