"""The deploy package: the project's files that ``.funcignore`` does not exclude.

``azd deploy`` and ``func azure functionapp publish`` zip what ``.funcignore`` leaves (gitignore
patterns). Ours are names and simple globs, so a path is left out when any of its components
matches a pattern; a pattern with a slash or a negation would need more, and is refused here
rather than misread.
"""

from __future__ import annotations

import fnmatch
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def funcignore_patterns(root: Path = REPO) -> list[str]:
    patterns = []
    for line in (root / ".funcignore").read_text(encoding="utf-8").splitlines():
        pattern = line.strip().rstrip("/")
        if not pattern or pattern.startswith("#"):
            continue
        if "/" in pattern or pattern.startswith("!"):
            raise ValueError(f".funcignore pattern {line!r}: only names and globs are understood here")
        patterns.append(pattern)
    return patterns


def deploy_files(root: Path = REPO) -> list[Path]:
    """Every file of the package, relative to ``root``."""
    patterns = funcignore_patterns(root)

    def excluded(relative: Path) -> bool:
        return any(fnmatch.fnmatch(part, p) for part in relative.parts for p in patterns)

    return sorted(
        path.relative_to(root)
        for path in root.rglob("*")
        if path.is_file() and not excluded(path.relative_to(root))
    )


def copy_package(destination: Path, root: Path = REPO) -> list[Path]:
    files = deploy_files(root)
    for relative in files:
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, target)
    return files
