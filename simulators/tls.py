"""A local certificate authority for the simulators.

msal accepts only an HTTPS authority, so every simulator serves HTTPS with a certificate issued
by this CA; the local configuration trusts the CA through MDSYNC_CA_FILE. The CA files persist
in a directory so that a CA written once keeps being trusted across runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path


def ensure_local_ca(directory: Path) -> TlsFiles:
    """Create (once) a CA and a localhost/127.0.0.1 server certificate under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    if all(p.is_file() for p in (files.ca_file, files.cert_file, files.key_file)):
        return files
    ca = trustme.CA(organization_name="mdsync local simulators")
    cert = ca.issue_cert("localhost", "127.0.0.1")
    ca.cert_pem.write_to_path(str(files.ca_file))
    cert.private_key_pem.write_to_path(str(files.key_file))
    for i, blob in enumerate(cert.cert_chain_pems):
        blob.write_to_path(str(files.cert_file), append=i > 0)
    return files
