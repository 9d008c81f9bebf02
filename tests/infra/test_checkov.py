"""checkov (PyPI) over infra/: every .bicep file parses, and no check fails.

checkov's dependencies would fight ours, so it lives in its own virtualenv under
.mdsync/checkov-venv (tests/isolated_venv.py), built on first use and reused afterwards.
Severities come from the vendor's online mapping, which we do not download (BC_SKIP_MAPPING,
--skip-download), so the bar is the strictest one: no failed check at all. Every skip is an inline
``checkov:skip=ID:reason`` comment, explained in docs/deploying.md.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.bicep_text import INFRA, REPO, bicep_files, inline_skips
from tests.isolated_venv import isolated_python, run

CHECKOV_VERSION = "3.3.30"

# Lists what checkov's own Bicep parser makes of each file (run inside the checkov venv).
PARSE_SCRIPT = """
import json, sys
from pathlib import Path
from checkov.bicep.parser import Parser
paths = [Path(p) for p in sys.argv[1:]]
definitions, _, errors = Parser().get_files_definitions(paths)
print(json.dumps({
    "errors": [str(p) for p in errors],
    "files": {
        str(path): {
            kind: {name: conf.get("type") for name, conf in (definition.get(kind) or {}).items()}
            for kind in ("resources", "modules")
        }
        for path, definition in definitions.items()
    },
}))
"""

# Resource types each file must declare, as checkov's parser sees them.
EXPECTED_TYPES = {
    "main.bicep": {"Microsoft.Resources/resourceGroups"},
    "core/identity.bicep": {"Microsoft.ManagedIdentity/userAssignedIdentities"},
    "core/monitoring.bicep": {
        "Microsoft.OperationalInsights/workspaces",
        "Microsoft.Insights/components",
    },
    "core/storage.bicep": {
        "Microsoft.Storage/storageAccounts",
        "Microsoft.Storage/storageAccounts/blobServices/containers",
        "Microsoft.Storage/storageAccounts/tableServices/tables",
    },
    "core/servicebus.bicep": {
        "Microsoft.ServiceBus/namespaces",
        "Microsoft.ServiceBus/namespaces/queues",
    },
    "core/keyvault.bicep": {"Microsoft.KeyVault/vaults", "Microsoft.KeyVault/vaults/secrets"},
    "app/rbac.bicep": {"Microsoft.Authorization/roleAssignments"},
    "app/api.bicep": {"Microsoft.Web/serverfarms", "Microsoft.Web/sites"},
    "app/console-auth.bicep": {"Microsoft.Web/sites/config"},
    # app/console-app.bicep (Microsoft Graph resources) is skipped: see SKIPPED.
    "core/alerts.bicep": {
        "Microsoft.Insights/actionGroups",
        "Microsoft.Insights/metricAlerts",
        "Microsoft.Insights/scheduledQueryRules",
        "Microsoft.Insights/workbooks",
    },
}

# Checks that must have run and passed: proof that checkov evaluated the resources we care
# about rather than silently skipping them.
MUST_PASS = {
    "CKV_AZURE_3": "storage: HTTPS only",
    "CKV_AZURE_44": "storage: TLS 1.2",
    "CKV_AZURE_34": "deployment container: private",
    "CKV_AZURE_14": "function app: HTTPS only",
    "CKV_AZURE_145": "function app: TLS 1.2",
    "CKV_AZURE_71": "function app: managed identity",
    "CKV_AZURE_42": "key vault: recoverable",
    "CKV_AZURE_110": "key vault: purge protection",
    "CKV_AZURE_111": "key vault: soft delete",
    "CKV_AZURE_114": "secrets: content type",
    "CKV_AZURE_131": "secure parameters: no hard-coded default",
}


def _skipped_paths() -> set[str]:
    """Files .checkov.yaml keeps from checkov (skip-path), each explained there."""
    config = yaml.safe_load((INFRA / ".checkov.yaml").read_text(encoding="utf-8"))
    return set(config.get("skip-path") or [])


SKIPPED = _skipped_paths()


def _scanned_files() -> list[Path]:
    return [path for path in bicep_files() if str(path.relative_to(INFRA)) not in SKIPPED]


def test_only_the_graph_resources_are_kept_from_checkov() -> None:
    """The one skipped file holds Microsoft Graph resources only, which checkov has no checks for
    (and whose `extension` statement its parser does not read)."""
    assert {"app/console-app.bicep"} == SKIPPED
    text = (INFRA / "app/console-app.bicep").read_text(encoding="utf-8")
    types = set(re.findall(r"^resource \w+ '([^'@]+)@", text, flags=re.MULTILINE))
    assert types == {
        "Microsoft.Graph/applications",
        "Microsoft.Graph/servicePrincipals",
        "Microsoft.Graph/appRoleAssignedTo",
    }


@pytest.fixture(scope="session")
def checkov_python() -> Path:
    return isolated_python("checkov-venv", [[f"checkov=={CHECKOV_VERSION}"]])


def _checkov_env() -> dict[str, str]:
    env = dict(os.environ)
    env["BC_SKIP_MAPPING"] = "TRUE"
    # checkov 3.3.30 has no --hard-fail-on-parsing-errors flag; this variable is its switch
    # (exit code 1 on any parsing error).
    env["CKV_PARSE_ERROR_FAIL"] = "true"
    return env


def _relative(path: str) -> str:
    """checkov names files '/app/api.bicep' (relative to the scanned directory) in reports and
    by the path it was given in the parser; both become 'app/api.bicep'."""
    candidate = Path(path)
    if candidate.is_absolute() and candidate.is_relative_to(INFRA):
        return str(candidate.relative_to(INFRA))
    if (REPO / path).is_file():
        return str((REPO / path).resolve().relative_to(INFRA))
    return path.lstrip("/")


def _describe(check: dict[str, Any]) -> str:
    where = f"{_relative(check['file_path'])} {check['resource']}"
    return f"{check['check_id']} {where}: {check['check_name']} (severity {check.get('severity')})"


@pytest.fixture(scope="session")
def checkov_report(checkov_python: Path) -> dict[str, Any]:
    command = [
        str(checkov_python), "-m", "checkov.main",
        "--directory", "infra",
        "--framework", "bicep",
        "--config-file", "infra/.checkov.yaml",
        "--skip-download",
        "--output", "json",
    ]  # fmt: skip
    completed = run(command, cwd=REPO, env=_checkov_env(), timeout=600)
    try:
        report = json.loads(completed.stdout)
    except json.JSONDecodeError:
        tail = completed.stderr[-4000:]
        pytest.fail(f"checkov printed no JSON (exit {completed.returncode}):\n{tail}")
    # One framework gives one report object; keep the list form working too.
    report = report[0] if isinstance(report, list) else report
    report["exit_code"] = completed.returncode
    return dict(report)


@pytest.mark.timeout(900)
def test_checkov_parser_reads_every_bicep_file(checkov_python: Path) -> None:
    files = [str(path) for path in _scanned_files()]
    assert len(files) == len(EXPECTED_TYPES), sorted(files)
    completed = run([str(checkov_python), "-c", PARSE_SCRIPT, *files], cwd=REPO, timeout=300)
    assert completed.returncode == 0, completed.stderr[-4000:]
    parsed = json.loads(completed.stdout)
    assert parsed["errors"] == []
    by_file = {_relative(path): found for path, found in parsed["files"].items()}
    assert set(by_file) == set(EXPECTED_TYPES)
    for relative, expected in EXPECTED_TYPES.items():
        types = set(by_file[relative]["resources"].values())
        assert expected <= types, f"{relative}: parsed {sorted(types)}"
    assert len(by_file["main.bicep"]["modules"]) == len(bicep_files()) - 1


@pytest.mark.timeout(900)
def test_checkov_finds_no_failed_check(checkov_report: dict[str, Any]) -> None:
    summary = checkov_report["summary"]
    results = checkov_report["results"]
    assert summary["checkov_version"] == CHECKOV_VERSION
    assert summary["parsing_errors"] == 0, results["parsing_errors"]
    failed = [_describe(check) for check in results["failed_checks"]]
    assert not failed, "checkov failed checks:\n" + "\n".join(failed)
    assert checkov_report["exit_code"] == 0
    passed = {c["check_id"] for c in results["passed_checks"]}
    missing = {check: why for check, why in MUST_PASS.items() if check not in passed}
    assert not missing, f"checks that did not run or pass: {missing}"
    evaluated = results["passed_checks"] + results["skipped_checks"]
    scanned = {_relative(check["file_path"]) for check in evaluated}
    assert {"main.bicep", "core/storage.bicep", "core/keyvault.bicep", "app/api.bicep"} <= scanned


@pytest.mark.timeout(900)
def test_checkov_skips_are_exactly_the_inline_ones(checkov_report: dict[str, Any]) -> None:
    skipped = checkov_report["results"]["skipped_checks"]
    reported = sorted((_relative(c["file_path"]), c["check_id"]) for c in skipped)
    # One inline comment suppresses one check on the resource block that holds it.
    inline = sorted((path, check_id) for path, check_id, _ in inline_skips())
    assert reported == inline
    for check in skipped:
        assert check["check_result"].get("suppress_comment"), check["check_id"]
