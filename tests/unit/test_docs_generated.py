"""The steps the docs list are the ones the code registers and creates: each generated block of
a document equals what the code renders now (rewrite the block if this fails)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.capture.registration import steps_markdown, webhook_steps
from shared.dataverse.provisioning import maker_portal_markdown, requirements
from shared.mapping import load_mapping

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"<!-- generated from (\S+) \((\w+)\)[^>]*-->\n(.*?)\n<!-- end generated -->", re.S)


def _blocks(name: str) -> dict[str, str]:
    return {renderer: body for _, renderer, body in BLOCK.findall((DOCS / name).read_text(encoding="utf-8"))}


@pytest.mark.parametrize(
    ("document", "renderer", "rendered"),
    [
        ("dataverse-webhook.md", "steps_markdown", lambda: steps_markdown(webhook_steps(load_mapping(None)))),
        (
            "deploying.md",
            "maker_portal_markdown",
            lambda: maker_portal_markdown(requirements(load_mapping(None))),
        ),
    ],
)
def test_a_generated_block_is_what_the_code_does(document: str, renderer: str, rendered: object) -> None:
    blocks = _blocks(document)
    assert renderer in blocks, f"{document} has no generated block for {renderer}"
    assert callable(rendered)
    assert blocks[renderer] == rendered()
