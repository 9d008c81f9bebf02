"""All three simulators together, configured to match the embedded local settings.

``mdsync simulate``, the demo, the bench and the tests start a :class:`SimulatorStack`; its
:meth:`settings` are the app settings that point mdsync at it. From the command line the
simulators listen on fixed ports (the ones ``local.settings.json`` names); tests use ephemeral
ports.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from simulators.dataverse import DataverseSim, DataverseSimConfig
from simulators.dataverse import create_app as create_dataverse
from simulators.entra import EntraClient, EntraSim, EntraSimConfig
from simulators.entra import create_app as create_entra
from simulators.marketo import MarketoSim, MarketoSimConfig
from simulators.marketo import create_app as create_marketo
from simulators.server import ServerThread
from simulators.tls import TlsFiles, ensure_local_ca

# Must match local.settings.json.
TENANT_ID = "6d0a0f3e-0000-4000-8000-00000000c0de"
DATAVERSE_CLIENT_ID = "0e0a51c1-0000-4000-8000-00000000c0de"
DATAVERSE_CLIENT_SECRET = "local-dataverse-secret-not-for-production"
SYNC_USER_ID = "5a1e0000-0000-4000-8000-00000000c0de"
MARKETO_CLIENT_ID = "mdsync-local"
MARKETO_CLIENT_SECRET = "local-marketo-secret-not-for-production"
WEBHOOK_SECRET = "local-webhook-secret-not-for-production"
FLOW_STEP_SECRET = "local-flow-step-secret-not-for-production"
MARKETO_WEBHOOK_SECRET = "local-marketo-webhook-secret-not-for-production"
FIXED_PORTS = {"entra": 7443, "dataverse": 7444, "marketo": 7445}
DEFAULT_TLS_DIR = Path(".mdsync/tls")


@dataclass
class StackConfig:
    tls_dir: Path = DEFAULT_TLS_DIR
    ports: dict[str, int] = field(default_factory=lambda: {"entra": 0, "dataverse": 0, "marketo": 0})
    marketo: MarketoSimConfig = field(default_factory=MarketoSimConfig)
    dataverse: DataverseSimConfig = field(default_factory=DataverseSimConfig)


class SimulatorStack:
    def __init__(self, config: StackConfig | None = None, *, tls: TlsFiles | None = None) -> None:
        self.config = config or StackConfig()
        self.tls = tls or ensure_local_ca(self.config.tls_dir)
        client = EntraClient(DATAVERSE_CLIENT_ID, DATAVERSE_CLIENT_SECRET, SYNC_USER_ID, name="mdsync")
        self.entra: EntraSim = create_entra(EntraSimConfig(tenant_id=TENANT_ID, clients=(client,)))
        self.dataverse: DataverseSim = create_dataverse(
            replace(self.config.dataverse, tenant_id=TENANT_ID, webhook_ca_file=self.tls.ca_file), self.entra
        )
        self.marketo: MarketoSim = create_marketo(
            replace(
                self.config.marketo,
                client_id=MARKETO_CLIENT_ID,
                client_secret=MARKETO_CLIENT_SECRET,
                extra_ca_file=self.tls.ca_file,
            )
        )
        ports = self.config.ports
        self.servers = {
            "entra": ServerThread(self.entra.app, port=ports.get("entra", 0), tls=self.tls, name="entra"),
            "dataverse": ServerThread(
                self.dataverse.app, port=ports.get("dataverse", 0), tls=self.tls, name="dataverse"
            ),
            "marketo": ServerThread(
                self.marketo.app, port=ports.get("marketo", 0), tls=self.tls, name="marketo"
            ),
        }

    def start(self) -> SimulatorStack:
        started = []
        try:
            for server in self.servers.values():
                started.append(server.start())
        except Exception:
            for server in started:
                server.stop()
            raise
        return self

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.marketo.close()

    def __enter__(self) -> SimulatorStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def urls(self) -> dict[str, str]:
        return {name: server.url for name, server in self.servers.items()}

    def settings(self) -> dict[str, str]:
        """App settings pointing mdsync at this stack (queue and state left to the caller)."""
        urls = self.urls
        return {
            "MARKETO_BASE_URL": urls["marketo"],
            "MARKETO_CLIENT_ID": MARKETO_CLIENT_ID,
            "MARKETO_CLIENT_SECRET": MARKETO_CLIENT_SECRET,
            "DATAVERSE_URL": urls["dataverse"],
            "DATAVERSE_CREDENTIAL": "client_secret",
            "DATAVERSE_TENANT_ID": TENANT_ID,
            "DATAVERSE_CLIENT_ID": DATAVERSE_CLIENT_ID,
            "DATAVERSE_CLIENT_SECRET": DATAVERSE_CLIENT_SECRET,
            "DATAVERSE_AUTHORITY_HOST": urls["entra"],
            "DYNAMICS_SYNC_USER_IDS": SYNC_USER_ID,
            "MDSYNC_CA_FILE": str(self.tls.ca_file),
            "DYNAMICS_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "FLOW_STEP_SECRET": FLOW_STEP_SECRET,
            "MARKETO_WEBHOOK_SECRET": MARKETO_WEBHOOK_SECRET,
        }
