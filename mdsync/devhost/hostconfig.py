"""The parts of ``host.json`` the local host honours."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.errors import ConfigurationError

DEFAULT_ROUTE_PREFIX = "api"
DEFAULT_MAX_MESSAGE_BATCH_SIZE = 1000


def _default_concurrent_calls() -> int:
    # The Service Bus extension's default: 16 per processor.
    return 16 * (os.cpu_count() or 1)


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = DEFAULT_ROUTE_PREFIX
    max_message_batch_size: int = DEFAULT_MAX_MESSAGE_BATCH_SIZE
    max_concurrent_calls: int = field(default_factory=_default_concurrent_calls)
    # Batch functions wait (best effort) for at least this many messages, up to max_batch_wait.
    min_message_batch_size: int = 1
    max_batch_wait_seconds: float = 30.0

    @classmethod
    def load(cls, path: Path | None) -> HostConfig:
        """Read ``host.json``; defaults for whatever is absent (or for no file at all)."""
        if path is None or not path.is_file():
            return cls()
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{path} is not valid JSON: {exc}") from exc
        return cls.from_document(document, source=str(path))

    @classmethod
    def from_document(cls, document: Any, *, source: str = "host.json") -> HostConfig:
        if not isinstance(document, dict):
            raise ConfigurationError(f"{source}: the document must be a JSON object")
        extensions = _object(document, "extensions", source)
        http = _object(extensions, "http", source)
        service_bus = _object(extensions, "serviceBus", source)
        prefix = http.get("routePrefix", DEFAULT_ROUTE_PREFIX)
        if not isinstance(prefix, str):
            raise ConfigurationError(f"{source}: extensions.http.routePrefix must be a string")
        return cls(
            route_prefix=prefix.strip("/"),
            max_message_batch_size=_positive(
                service_bus, "maxMessageBatchSize", DEFAULT_MAX_MESSAGE_BATCH_SIZE, source
            ),
            max_concurrent_calls=_positive(
                service_bus, "maxConcurrentCalls", _default_concurrent_calls(), source
            ),
            min_message_batch_size=_positive(service_bus, "minMessageBatchSize", 1, source),
            max_batch_wait_seconds=_timespan(service_bus, "maxBatchWaitTime", 30.0, source),
        )


def _object(parent: Any, key: str, source: str) -> dict[str, Any]:
    value = parent.get(key, {}) if isinstance(parent, dict) else {}
    if not isinstance(value, dict):
        raise ConfigurationError(f"{source}: '{key}' must be an object")
    return value


def _positive(section: dict[str, Any], key: str, default: int, source: str) -> int:
    value = section.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(f"{source}: extensions.serviceBus.{key} must be a positive integer")
    return value


def _timespan(section: dict[str, Any], key: str, default: float, source: str) -> float:
    """A .NET TimeSpan ``hh:mm:ss[.fff]`` as seconds."""
    value = section.get(key)
    if value is None:
        return default
    parts = str(value).split(":")
    try:
        if len(parts) != 3:
            raise ValueError(value)
        seconds = int(parts[0]) * 3600 + int(parts[1]) * 60 + float(parts[2])
    except ValueError:
        raise ConfigurationError(f"{source}: extensions.serviceBus.{key} must be hh:mm:ss") from None
    if seconds < 0:
        raise ConfigurationError(f"{source}: extensions.serviceBus.{key} must not be negative")
    return seconds
