"""`pip install .` gives a working mdsync: the function app's dependencies are exactly
requirements.txt, the command adds rich, the local tooling is an extra, the licence is declared
the current way (no setuptools warnings) and the LICENSE file ships."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest

from tests.deploy.package import REPO
from tests.isolated_venv import isolated_python, run

CLI_ONLY = {"rich"}
WARNINGS = re.compile(r"BuildBackendWarning|SetuptoolsDeprecationWarning|DeprecationWarning|deprecated", re.I)


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower()


def _pyproject() -> dict[str, object]:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _requirements() -> list[str]:
    lines = (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_the_function_app_needs_exactly_requirements_txt_and_the_command_adds_rich() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    dependencies = {_name(d): d for d in project["dependencies"]}
    requirements = {_name(r): r for r in _requirements()}
    assert set(dependencies) - set(requirements) == CLI_ONLY
    assert set(requirements) <= set(dependencies)
    assert all(dependencies[n] == requirements[n] for n in requirements)  # same bounds
    local = {_name(d) for d in project["optional-dependencies"]["local"]}
    assert {"starlette", "uvicorn", "trustme", "croniter"} <= local
    assert not local & set(requirements)
    bench = {_name(d) for d in project["optional-dependencies"]["bench"]}  # the bench's charts
    assert bench == {"matplotlib"}
    assert not bench & set(requirements)


def test_the_licence_is_declared_and_shipped() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    assert (REPO / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with `pip install .` of the working tree (dependencies cached between runs)."""
    requirements = REPO / "requirements.txt"
    python = isolated_python("install-venv", [["-r", str(requirements)], ["rich>=14"]], inputs=[requirements])
    done = run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--force-reinstall",
            "--disable-pip-version-check",
            ".",
        ],
        cwd=REPO,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert not WARNINGS.search(done.stdout + done.stderr), done.stdout[-4000:] + done.stderr[-4000:]
    return python.parent / "mdsync"


def _mdsync(command: Path, *args: str, cwd: Path) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MARKETO_", "DATAVERSE_", "MDSYNC_"))}
    env["COLUMNS"] = "200"
    done = run([str(command), *args], cwd=cwd, env=env, timeout=120)
    return done.returncode, " ".join((done.stdout + done.stderr).split())


@pytest.mark.timeout(900)
def test_pip_install_gives_a_working_mdsync_command(installed: Path, tmp_path: Path) -> None:
    code, out = _mdsync(installed, "--help", cwd=tmp_path)
    assert code == 0, out
    assert "doctor" in out
    assert "dynamics" in out
    # No settings at all: doctor says what is missing, one line per check, no traceback.
    code, out = _mdsync(installed, "doctor", cwd=tmp_path)
    assert code == 1, out
    assert "MARKETO_BASE_URL, MARKETO_CLIENT_ID, MARKETO_CLIENT_SECRET are not set" in out
    assert "Traceback" not in out
    # The local tooling is an extra, and says so.
    code, out = _mdsync(installed, "simulate", cwd=tmp_path)
    assert code == 2
    assert "pip install 'mdsync[local]'" in out
