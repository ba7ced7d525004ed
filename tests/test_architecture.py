"""The shape of the code stays true: the import-linter contracts in pyproject.toml hold for the tree,
and they do catch a domain reading another's tables; every service tab the domains declare is
reachable, whatever order the catch-all routes were declared in."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from quarterdeck.domains import DOMAINS
from tests.conftest import ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(tree / "pyproject.toml")],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("tree")
    shutil.copytree(ROOT / "quarterdeck", tree / "quarterdeck", ignore=shutil.ignore_patterns("static"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_contracts_hold_for_the_tree(tree_copy: Path) -> None:
    done = _lint(tree_copy)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("deploys/service.py", "from quarterdeck.catalog import models as catalog_tables"),
        ("catalog/service.py", "from quarterdeck.deploys.models import Deploy"),
        ("observability/service.py", "from quarterdeck.access.models import User"),
        ("access/service.py", "from quarterdeck.catalog import service as catalog_rules"),
        ("jobs/__init__.py", "from quarterdeck.deploys import service as deploys_rules"),
    ],
)
def test_a_domain_reaching_into_another_breaks_a_contract(
    tree_copy: Path, tmp_path: Path, importer: str, imported: str
) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(tree_copy, tree)
    target = tree / "quarterdeck" / importer
    target.write_text(target.read_text() + f"\n{imported}  # noqa\n")
    done = _lint(tree)
    assert done.returncode == 1, done.stdout[-3000:]
    assert "BROKEN" in done.stdout
    assert importer.replace("/", ".").removesuffix(".py").removesuffix(".__init__") in done.stdout


def test_only_the_console_module_prints_with_rich() -> None:
    """Commands print through quarterdeck/console.py, which never reads Rich markup: a Rich console of
    their own would read `[a-z0-9]` in a message as markup and drop it."""
    uses_rich = re.compile(r"^\s*(?:from|import) rich\b", re.MULTILINE)
    importers = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "quarterdeck").rglob("*.py"))
        if uses_rich.search(path.read_text(encoding="utf-8"))
    ]

    assert importers == ["quarterdeck/console.py"]


def test_every_service_tab_is_reachable(client: TestClient) -> None:
    assert client.post("/api/v1/teams", json={"slug": "shop", "name": "Shop"}).status_code == 201
    assert client.post("/api/v1/services", json={"slug": "cart", "owner": "shop"}).status_code == 201
    tabs = [tab for domain in DOMAINS for tab in domain.tabs]
    assert {tab.suffix for tab in tabs} >= {"", "/deploys"}
    for tab in tabs:
        page = client.get(f"/services/cart{tab.suffix}")
        assert page.status_code == 200, (tab, page.text[:300])
        current = f'id="{tab.element_id}" aria-current="page"'
        assert current in page.text, f"/services/cart{tab.suffix} is not the {tab.label} tab"
