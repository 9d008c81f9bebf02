"""`make screenshots`: the console's pages as docs/operations.md shows them, taken in headless
Chromium from a local system staged with a backlog, a collision, a refused value and a parked
notice (``mdsync.console_scene``), as the browser tests stage it.

    python -m tests.console.screenshots docs/images
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from mdsync.console_scene import stage
from mdsync.harness import HarnessConfig, LocalSystem
from tests.console.browser import ARGS, chromium_path
from tests.console.conftest import PASSWORD, browser_sign_in

PAGES = {
    "console-status.png": "/api/console",
    "console-errors.png": "/api/console/errors",
}


def take(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as work:
        config = HarnessConfig(workdir=Path(work), batch_wait=0, operator_password=PASSWORD)
        with LocalSystem(config) as system, sync_playwright() as driver:
            assert system.host is not None
            scene = stage(system)
            pages = {**PAGES, "console-person.png": f"/api/console/person/{scene.ana}"}
            browser = driver.chromium.launch(executable_path=str(chromium_path()), headless=True, args=ARGS)
            try:
                page = browser.new_page(viewport={"width": 1360, "height": 900})
                browser_sign_in(page, system.host.url)
                page.wait_for_selector("[data-figure=signed-in-as]")
                for name, path in pages.items():
                    page.goto(system.host.url + path)
                    target = folder / name
                    page.screenshot(path=str(target), full_page=True)
                    written.append(target)
            finally:
                browser.close()
                system.host.hold_queue(False)
    return written


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else Path("docs/images")
    for path in take(folder):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
