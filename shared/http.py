"""The one place HTTP sessions for Marketo, Dataverse and Entra ID are made."""

from __future__ import annotations

from pathlib import Path

import requests
from requests.adapters import HTTPAdapter

from shared.redaction import install_log_redaction


def make_session(*, extra_ca_file: Path | None = None, pool_size: int = 16) -> requests.Session:
    """A pooled session. ``extra_ca_file`` (local simulators only) is trusted instead of the
    system store; ``trust_env`` is then off, because requests lets REQUESTS_CA_BUNDLE override
    ``session.verify`` otherwise. Production passes None and keeps the system trust store."""
    install_log_redaction()
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    if extra_ca_file is not None:
        session.trust_env = False
        session.verify = str(extra_ca_file)
    return session
