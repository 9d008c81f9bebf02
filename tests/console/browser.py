"""Headless Chromium for the console's browser tests and screenshots: Debian's ``chromium``
(installed by the test set-up, ``.ci/ensure-chromium``), driven by Playwright for Python.

Playwright never downloads a browser here: it launches the system's binary
(``executable_path``), with the flags Chromium needs as root on a machine without a network
(no sandbox, no GPU, none of its background connections).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM_ENV = "MDSYNC_CHROMIUM"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def chromium_path() -> Path:
    """The browser to drive: MDSYNC_CHROMIUM, else Debian's chromium on the PATH."""
    named = os.environ.get(CHROMIUM_ENV) or shutil.which("chromium") or shutil.which("chromium-browser")
    if not named or not Path(named).exists():
        raise RuntimeError(
            "headless Chromium is not installed: run `make test` (it installs Debian's chromium) "
            f"or set {CHROMIUM_ENV} to a Chromium binary"
        )
    return Path(named)
