"""Just enough reading of our own Bicep files for structural tests, without a Bicep compiler.

The files in ``infra/`` are written in a plain style (one property per line, single-quoted
strings), which these helpers rely on; checkov's own parser is exercised in test_checkov.py.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"


def read(relative: str) -> str:
    return (INFRA / relative).read_text(encoding="utf-8")


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def block(text: str, opening: str) -> str:
    """The balanced ``{...}`` or ``[...]`` that starts at the end of the first match of the
    regex ``opening`` (which must end with the opening bracket)."""
    match = re.search(opening, text, flags=re.MULTILINE)
    assert match, f"no match for {opening!r}"
    start = match.end() - 1
    left = text[start]
    assert left in "{[", f"{opening!r} must end with an opening bracket"
    right = "}" if left == "{" else "]"
    depth = 0
    for index in range(start, len(text)):
        if text[index] == left:
            depth += 1
        elif text[index] == right:
            depth -= 1
            if depth == 0:
                return text[start : index + 1]
    raise AssertionError(f"unbalanced brackets after {opening!r}")


def resource(text: str, symbol: str) -> str:
    """The body of ``resource <symbol> '<type>@<version>' = {...}``."""
    return block(text, rf"^resource {re.escape(symbol)} '[^']+'\s*=\s*[\[{{]")


def prop(body: str, name: str) -> str:
    """The raw value of a one-line property ``name: value`` inside ``body`` (first occurrence)."""
    match = re.search(rf"^\s*{re.escape(name)}:\s*(.+?)\s*$", body, flags=re.MULTILINE)
    assert match, f"property {name!r} not found"
    return match.group(1)


def object_entries(body: str) -> dict[str, str]:
    """Top-level ``key: value`` lines of an object literal (one entry per line)."""
    entries: dict[str, str] = {}
    for line in body.strip()[1:-1].splitlines():
        match = re.match(r"^\s{2}'?([A-Za-z_][A-Za-z0-9_\-]*)'?:\s*(.+?)\s*$", line)
        if match:
            entries[match.group(1)] = match.group(2)
    return entries


def name_values(body: str) -> dict[str, str]:
    """Entries of an array of one-line ``{ name: 'N', value: V }`` objects, as {N: V}."""
    pattern = r"^\s*\{ name: '([^']+)', value: (.+) \}$"
    return dict(re.findall(pattern, body, flags=re.MULTILINE))


def params(text: str) -> dict[str, str | None]:
    """Declared parameters and their default expression (None when required)."""
    found: dict[str, str | None] = {}
    for match in re.finditer(r"^param (\w+) \w+(?:\s*=\s*(.+))?$", text, flags=re.MULTILINE):
        found[match.group(1)] = match.group(2)
    return found


SKIP = re.compile(r"checkov:skip=(CKV2?_[A-Z]+_\d+):(.*)$", flags=re.MULTILINE)


def inline_skips() -> list[tuple[str, str, str]]:
    """Every ``checkov:skip=ID:reason`` comment as (file relative to infra/, id, reason)."""
    skips = []
    for path in bicep_files():
        for match in SKIP.finditer(path.read_text(encoding="utf-8")):
            skips.append((str(path.relative_to(INFRA)), match.group(1), match.group(2).strip()))
    return skips
