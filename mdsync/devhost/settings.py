"""App settings for the local host: ``local.settings.json`` and ``%Setting%`` expressions.

Core Tools exports the ``Values`` of ``local.settings.json`` as environment variables before it
starts the worker, and a variable already set (non-empty) in the environment wins: it prints
"Skipping '<name>' from local settings as it's already defined in current environment
variables." We do the same, and remember what we set so that :meth:`ExportedSettings.restore`
leaves the process as it found it (tests start and stop several hosts in one process).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shared.errors import ConfigurationError

log = logging.getLogger(__name__)

_EXPRESSION = re.compile(r"%([^%]+)%")


def read_local_settings(path: Path) -> dict[str, str]:
    """The ``Values`` object of a ``local.settings.json``; empty when the file does not exist."""
    if not path.is_file():
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{path} is not valid JSON: {exc}") from exc
    values = document.get("Values", {}) if isinstance(document, dict) else None
    if not isinstance(values, dict):
        raise ConfigurationError(f"{path}: 'Values' must be an object")
    return {str(name): "" if value is None else str(value) for name, value in values.items()}


@dataclass
class ExportedSettings:
    """What :func:`export_settings` changed in ``os.environ``."""

    exported: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def restore(self) -> None:
        """Remove the variables we set, unless someone changed them since."""
        for name, value in self.exported.items():
            if os.environ.get(name) == value:
                del os.environ[name]
        self.exported.clear()


def export_settings(values: Mapping[str, str]) -> ExportedSettings:
    """Put ``values`` into ``os.environ``; a non-empty variable already there wins."""
    result = ExportedSettings()
    for name, value in values.items():
        if os.environ.get(name):
            result.skipped.append(name)
            log.info("Skipping '%s' from local settings: already set in the environment", name)
            continue
        os.environ[name] = value
        result.exported[name] = value
    return result


def resolve(value: str, env: Mapping[str, str] | None = None) -> str:
    """Replace each ``%Name%`` in a binding value by that app setting, as the host does.

    A missing setting is a start-up error in Azure ("'%Name%' does not resolve to a value"), so
    it is one here too.
    """
    source = os.environ if env is None else env

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in source:
            raise ConfigurationError(f"'%{name}%' does not resolve to a value (app setting {name})")
        return source[name]

    return _EXPRESSION.sub(lookup, value)
