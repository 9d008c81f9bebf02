"""Telemetry: free when Application Insights is not configured, exported through the Azure
Monitor exporter when it is.

The exporter is real (azure-monitor-opentelemetry); only its ingestion endpoint is local: the
connection string's IngestionEndpoint points at a small HTTP server here that records what the
exporter posts to ``/v2.1/track``, Application Insights' ingestion API. Each case runs in its own
interpreter, since OpenTelemetry accepts one meter provider per process.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEY = "00000000-0000-4000-8000-00000000c0de"

EXPORT = """
from shared import telemetry
assert telemetry.configure_from_environment(disable_offline_storage=True)
assert not telemetry.configure_from_environment()  # once per process
telemetry.writes.add(3, {"direction": "to_dynamics"})
telemetry.notices_received.add(2, {"source": "marketo", "via": "poll"})
telemetry.backlog_oldest_age.set(420.0, {"lane": "lead-to_marketo"})
assert telemetry.flush()
"""

UNCONFIGURED = """
import sys
from shared import telemetry
from shared.bootstrap import container
container()  # what the first invocation does
assert not telemetry.configure_from_environment()
telemetry.writes.add(3, {"direction": "to_dynamics"})
print(sorted(m for m in sys.modules if m.startswith(("azure.monitor", "opentelemetry.sdk"))))
"""


class Ingestion(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.envelopes: list[dict[str, Any]] = []
        self.paths: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    server: Ingestion

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.paths.append(self.path)
        text = body.decode("utf-8")
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        items = lines[0] if len(lines) == 1 and isinstance(lines[0], list) else lines
        self.server.envelopes.extend(items)
        answer = json.dumps({"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def ingestion() -> Iterator[Ingestion]:
    server = Ingestion()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**env, "MDSYNC_LOCAL_SETTINGS": str(ROOT / ".mdsync" / "no-local-settings.json")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _env(**extra: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLICATIONINSIGHTS_")}
    env.update(extra)
    return env


def test_a_metric_reaches_application_insights_through_the_azure_monitor_exporter(
    ingestion: Ingestion,
) -> None:
    port = ingestion.server_address[1]
    connection = f"InstrumentationKey={KEY};IngestionEndpoint=http://127.0.0.1:{port}/"
    done = _run(EXPORT, _env(APPLICATIONINSIGHTS_CONNECTION_STRING=connection))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "/v2.1/track" in ingestion.paths
    metrics = {}
    for envelope in ingestion.envelopes:
        assert envelope["iKey"] == KEY
        base = envelope["data"]["baseData"]
        for point in base.get("metrics", []):
            metrics[point["name"]] = (point["value"], base.get("properties", {}))
    assert metrics["mdsync.writes"] == (3.0, {"direction": "to_dynamics"})
    assert metrics["mdsync.notices.received"] == (2.0, {"source": "marketo", "via": "poll"})
    # A console gauge, as the alert on the oldest backlog reads it.
    assert metrics["mdsync.backlog.oldest_age"] == (420.0, {"lane": "lead-to_marketo"})


def test_without_a_connection_string_nothing_is_loaded_or_sent() -> None:
    done = _run(UNCONFIGURED, _env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]"
