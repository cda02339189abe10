"""The layering of docs/architecture.md holds, and its checks can fail.

``make lint`` runs import-linter with the contracts in pyproject.toml; these tests prove the
contracts bite (a deliberate upward import is reported) and that no import cycle exists
between Podium's modules (import-linter's contracts do not look for cycles).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("podium", "soak", "bench", "services", "devstack", "shared")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """The packages and pyproject.toml copied aside, so a test can break them."""
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_contracts_are_kept(tree_copy: Path) -> None:
    completed = _lint_imports(tree_copy)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "2 kept, 0 broken" in completed.stdout


@pytest.mark.parametrize(
    ("module", "statement", "contract"),
    [
        ("shared/_upward.py", "import services.ingest.app\n", "Dependencies point down"),
        ("shared/_root.py", "from podium import cli\n", "Dependencies point down"),
        ("services/query/_peer.py", "import services.ranker.applier\n", "No service imports"),
        ("services/ingest/_tool.py", "import devstack.processes\n", "Dependencies point down"),
    ],
)
def test_a_forbidden_import_breaks_the_contract(
    tree_copy: Path, module: str, statement: str, contract: str
) -> None:
    (tree_copy / module).write_text(statement)
    completed = _lint_imports(tree_copy)
    assert completed.returncode != 0
    broken = [line for line in completed.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(line.startswith(contract) for line in broken), completed.stdout


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    adjacency = {
        module: sorted(graph.find_modules_directly_imported_by(module)) for module in graph.modules
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in sorted(adjacency):
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            successors = adjacency[node]
            if child < len(successors):
                work.append((node, child + 1))
                successor = successors[child]
                if successor not in index:
                    work.append((successor, 0))
                elif successor in on_stack:
                    low[node] = min(low[node], index[successor])
                continue
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return groups


def test_no_import_cycles() -> None:
    graph = grimp.build_graph(*PACKAGES)
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for module in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(module)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.x")
    graph.add_import(importer="a.z", imported="a.x")
    assert _cycles(graph) == [["a.x", "a.y"]]
