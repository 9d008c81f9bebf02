"""``DataverseAdmin``: the simulator's admin API over HTTP, for tests and the demo."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import requests


class AdminError(RuntimeError):
    """The admin API answered an error (or the Web API call made as a user failed)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


class DataverseAdmin:
    def __init__(self, base_url: str, session: requests.Session, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        response = self.session.request(
            method,
            f"{self.base_url}/admin/{path}",
            json=body,
            params=params or None,
            timeout=self.timeout,
        )
        data = response.json() if response.content else None
        if response.status_code >= 400:
            raise AdminError(response.status_code, data)
        return data

    # --- data ---------------------------------------------------------------------------

    def reset(self) -> None:
        self._call("POST", "reset")

    def seed(self, logical: str, rows: list[dict[str, Any]]) -> list[str]:
        """Insert existing rows (Web API shapes; statecode/createdon allowed); no webhooks."""
        return [str(i) for i in self._call("POST", f"rows/{logical}", {"rows": rows})["ids"]]

    def rows(self, logical: str) -> list[dict[str, Any]]:
        """Every row, as the Web API shows it with all annotations."""
        return list(self._call("GET", f"rows/{logical}")["value"])

    def row(self, logical: str, row_id: str) -> dict[str, Any] | None:
        found = self._call("GET", f"rows/{logical}", id=row_id)["value"]
        return dict(found[0]) if found else None

    def users(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "users")["value"])

    # --- acting as a human user -----------------------------------------------------------

    def as_user(
        self,
        user: str,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """A Web API call (``path`` relative to the service root) made as a configured user."""
        return self.session.request(
            method,
            f"{self.base_url}/admin/as/{quote(user, safe='')}/{path}",
            json=body,
            headers=headers,
            timeout=self.timeout,
        )

    def create_as(self, user: str, entity_set: str, record: dict[str, Any]) -> str:
        response = self.as_user(user, "POST", entity_set, record)
        if response.status_code != 204:
            raise AdminError(response.status_code, response.text)
        return response.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")

    def update_as(self, user: str, entity_set: str, row_id: str, changes: dict[str, Any]) -> None:
        response = self.as_user(user, "PATCH", f"{entity_set}({row_id})", changes, headers={"If-Match": "*"})
        if response.status_code != 204:
            raise AdminError(response.status_code, response.text)

    def delete_as(self, user: str, entity_set: str, row_id: str) -> None:
        response = self.as_user(user, "DELETE", f"{entity_set}({row_id})")
        if response.status_code != 204:
            raise AdminError(response.status_code, response.text)

    def qualify_as(
        self, user: str, lead_id: str, *, create_contact: bool = True, create_account: bool = False
    ) -> list[dict[str, Any]]:
        body = {
            "CreateAccount": create_account,
            "CreateContact": create_contact,
            "CreateOpportunity": False,
            "Status": 3,
        }
        response = self.as_user(user, "POST", f"leads({lead_id})/Microsoft.Dynamics.CRM.QualifyLead", body)
        if response.status_code != 200:
            raise AdminError(response.status_code, response.text)
        return list(response.json()["value"])

    # --- customisation and faults ---------------------------------------------------------

    def set_column(
        self,
        logical: str,
        column: str,
        *,
        required_level: str | None = None,
        max_length: int | None = None,
        options: dict[int, str] | None = None,
    ) -> dict[str, Any]:
        """Customise a column: requirement level, MaxLength, choices added (value -> label)."""
        body: dict[str, Any] = {"required_level": required_level, "max_length": max_length}
        if options is not None:
            body["options"] = {str(k): v for k, v in options.items()}
        return dict(self._call("PUT", f"columns/{logical}/{column}", body))

    def merge_as(
        self,
        user: str,
        entity: str,
        target_id: str,
        subordinate_id: str,
        update: dict[str, Any] | None = None,
    ) -> None:
        """The Merge action as a user: ``subordinate_id`` merged into ``target_id``."""
        kind = f"Microsoft.Dynamics.CRM.{entity}"
        body = {
            "Target": {f"{entity}id": target_id, "@odata.type": kind},
            "Subordinate": {f"{entity}id": subordinate_id, "@odata.type": kind},
            "UpdateContent": {**(update or {}), "@odata.type": kind},
            "PerformParentingChecks": False,
        }
        response = self.as_user(user, "POST", "Merge", body)
        if response.status_code != 204:
            raise AdminError(response.status_code, response.text)

    def add_plugin(
        self,
        name: str,
        entity: str,
        kind: str,
        *,
        column: str = "",
        message: str = "",
        pattern: str = "",
        messages: tuple[str, ...] = ("Create", "Update"),
    ) -> None:
        body = {
            "name": name,
            "entity": entity,
            "kind": kind,
            "column": column,
            "message": message,
            "pattern": pattern,
            "messages": list(messages),
        }
        self._call("POST", "plugins", body)

    def remove_plugin(self, name: str) -> None:
        self._call("DELETE", f"plugins/{quote(name, safe='')}")

    def set_limits(self, **limits: Any) -> dict[str, Any]:
        return dict(self._call("PUT", "limits", limits))

    def throttle(self, count: int = 1, *, retry_after: int = 1, path: str = "") -> None:
        self._call(
            "POST", "faults", {"kind": "throttle", "count": count, "retry_after": retry_after, "path": path}
        )

    def fail(self, count: int = 1, *, status: int = 503, path: str = "") -> None:
        self._call("POST", "faults", {"kind": "error", "count": count, "status": status, "path": path})

    def slow(self, seconds: float, *, count: int | None = 1, path: str = "") -> None:
        self._call("POST", "faults", {"kind": "latency", "seconds": seconds, "count": count, "path": path})

    def refuse(self, contains: str, *, status: int = 400, count: int | None = None, path: str = "") -> None:
        """Requests holding ``contains`` (in path, query or body) are refused as a whole."""
        self._call(
            "POST",
            "faults",
            {"kind": "refuse", "contains": contains, "status": status, "count": count, "path": path},
        )

    def faults(self) -> list[dict[str, Any]]:
        """The fault rules still armed (a rule with a count goes once used up)."""
        return list(self._call("GET", "faults")["rules"])

    def drop_webhooks(self, count: int = 1) -> None:
        self._call("POST", "faults", {"kind": "drop_webhooks", "count": count})

    def duplicate_webhooks(self, count: int = 1) -> None:
        self._call("POST", "faults", {"kind": "duplicate_webhooks", "count": count})

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def set_bulk_support(self, entity: str, supported: bool) -> None:
        self._call("PUT", "bulk-support", {"entity": entity, "supported": supported})

    def grant_bypass(self, user: str, granted: bool = True) -> None:
        """Give (or take) ``user`` the prvBypassCustomBusinessLogic privilege."""
        self._call("PUT", "bypass", {"user": user, "granted": granted})

    def set_bypass_limit(self, limit: int) -> None:
        """BypassBusinessLogicExecutionStepIdsLimit: the step ids one request may name."""
        self._call("PUT", "bypass", {"limit": limit})

    # --- observation -----------------------------------------------------------------------

    def jobs(self) -> list[dict[str, Any]]:
        """Webhook system jobs (one per step run), oldest first."""
        return list(self._call("GET", "webhooks/jobs")["value"])

    def wait_for_webhooks(self, timeout: float = 10.0) -> bool:
        """Block until every queued webhook delivery is done; False after ``timeout`` seconds.
        A long wait is made of short drains, each well inside the HTTP client's own timeout."""
        deadline = time.monotonic() + timeout
        step = min(10.0, self.timeout / 2)
        while True:
            wait = min(step, max(0.1, deadline - time.monotonic()))
            if self._call("POST", "webhooks/drain", timeout=wait)["drained"]:
                return True
            if time.monotonic() >= deadline:
                return False

    def pause_webhooks(self, paused: bool = True) -> None:
        self._call("POST", "webhooks/pause", {"paused": paused})

    def calls(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self._call("GET", "calls").items()}

    def reset_calls(self) -> None:
        self._call("DELETE", "calls")
