"""axe-core in the browser tests: the npm package at the version tests/e2e/axe/package-lock.json pins
(scripts/install-test-deps.sh installs it), injected into a page, run with the WCAG 2.0 and 2.1 A and
AA rules."""

from __future__ import annotations

import functools
from typing import Any

from playwright.sync_api import Page

from tests.conftest import ROOT

AXE = ROOT / "tests" / "e2e" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


@functools.cache
def _axe_source() -> str:
    return AXE.read_text(encoding="utf-8")


def axe_violations(page: Page) -> list[dict[str, Any]]:
    page.evaluate(_axe_source())  # through DevTools: the page's Content-Security-Policy stays as served
    result: dict[str, Any] = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})",
        WCAG_TAGS,
    )
    return [
        {
            "rule": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "targets": [" ".join(map(str, node["target"])) for node in v["nodes"][:5]],
            "count": len(v["nodes"]),
        }
        for v in result["violations"]
    ]
