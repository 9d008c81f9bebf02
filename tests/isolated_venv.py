"""Virtualenvs of their own under .mdsync/, for tools whose dependencies must not mix with ours
(checkov) or for an environment that holds exactly what Azure installs (the worker indexing).

Built on first use and reused while their recipe is unchanged: the marker file is named after a
digest of the pip commands (and of any file they read), so editing requirements.txt or a pinned
version rebuilds the venv. A venv is built beside its final place and moved in only once every
install succeeded, so an interrupted or concurrent first run never leaves a half-built one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
VENVS = REPO / ".mdsync"


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)


def _marker(installs: Sequence[Sequence[str]], inputs: Sequence[Path]) -> str:
    digest = hashlib.sha256(repr([list(i) for i in installs]).encode())
    for path in inputs:
        digest.update(path.read_bytes())
    return f".installed-{digest.hexdigest()[:16]}"


def isolated_python(name: str, installs: Sequence[Sequence[str]], *, inputs: Sequence[Path] = ()) -> Path:
    """The python of ``.mdsync/<name>``, where each of ``installs`` was passed to ``pip install``
    in order. ``inputs`` are files the installs read (a requirements file)."""
    venv = VENVS / name
    marker = venv / _marker(installs, inputs)
    if not marker.is_file():
        VENVS.mkdir(parents=True, exist_ok=True)
        _build(venv, installs, marker.name)
    assert marker.is_file(), f"{venv} was not built"
    return venv / "bin" / "python"


def _build(venv: Path, installs: Sequence[Sequence[str]], marker: str) -> None:
    staging = venv.with_name(f"{venv.name}.building-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    created = run([sys.executable, "-m", "venv", str(staging)])
    assert created.returncode == 0, f"python -m venv failed:\n{created.stderr}"
    pip = [str(staging / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    for arguments in installs:
        installed = run([*pip, *arguments], cwd=REPO)
        if installed.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            pytest.fail(f"pip install {' '.join(arguments)} failed:\n{installed.stderr[-4000:]}")
    (staging / marker).touch()
    shutil.rmtree(venv, ignore_errors=True)
    try:
        staging.rename(venv)
    except OSError:
        # Another run finished first; its venv is as good as ours.
        shutil.rmtree(staging, ignore_errors=True)
