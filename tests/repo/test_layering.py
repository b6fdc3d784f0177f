"""The code keeps its shape: small modules, no import cycle, and no engine module outside the layering contract.

The contracts themselves are checked by `lint-imports` (``make lint``, run by ``make check`` and CI);
these tests make sure the contracts cannot be sidestepped by a new module nobody listed.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import grimp

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "worker" / "imunban"
MAX_LINES = 400


@cache
def import_graph() -> grimp.ImportGraph:
    """The imports among imunban and imunban_celery modules (no cache written to the working tree)."""
    return grimp.build_graph("imunban", "imunban_celery", cache_dir=None)


def first_contract() -> dict[str, Any]:
    contracts: list[dict[str, Any]] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"
    ]
    return contracts[0]


def strongly_connected(nodes: Iterable[str], edges: Any) -> Iterator[list[str]]:
    """Tarjan's algorithm, iterative: every strongly connected component with more than one node."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(edges(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    yield sorted(component)


def test_strongly_connected_finds_cycles() -> None:
    """The cycle finder reports a 3-cycle and a 2-cycle, and nothing for a chain (guards the test below)."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"f"}, "f": {"e"}, "g": {"a"}}
    assert sorted(strongly_connected(graph, graph.__getitem__)) == [["a", "b", "c"], ["e", "f"]]
    chain = {"a": {"b"}, "b": {"c"}, "c": set()}
    assert list(strongly_connected(chain, chain.__getitem__)) == []


def test_modules_stay_small() -> None:
    """No module under worker/ or tasks/ is over 400 lines: one module, one responsibility."""
    too_long = {
        str(path.relative_to(ROOT)): lines
        for folder in ("worker", "tasks")
        for path in (ROOT / folder).rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not too_long, f"split these modules: {too_long}"


def test_no_import_cycle() -> None:
    """No two project modules import each other, directly or through others (imports under TYPE_CHECKING count)."""
    graph = import_graph()
    assert "imunban.store" in graph.modules and "imunban_celery.app" in graph.modules  # the graph is the project's
    cycles = list(strongly_connected(graph.modules, graph.find_modules_directly_imported_by))
    assert not cycles, f"import cycles: {cycles}"


def test_every_engine_module_is_in_the_engine_contract() -> None:
    """Each top-level module of imunban is a source of the first import-linter contract, and each one listed exists."""
    contract = first_contract()
    assert contract["type"] == "forbidden" and "imunban_celery" in contract["forbidden_modules"]
    modules = {f"imunban.{p.stem}" for p in ENGINE.glob("*.py") if p.stem not in ("__init__", "__main__")}
    listed = set(contract["source_modules"])
    assert modules - listed == set(), "add to the first contract's source_modules in pyproject.toml"
    assert listed - modules == set(), "listed in the first contract but no such module"
    assert modules <= set(import_graph().find_children("imunban"))


def test_every_tool_package_is_forbidden_to_the_engine() -> None:
    """Each sub-package of imunban (a tool: cli, sim, local, demo, bench, web) is forbidden to the engine."""
    packages = {f"imunban.{p.parent.name}" for p in ENGINE.glob("*/__init__.py")}
    assert {"imunban.cli", "imunban.sim", "imunban.local", "imunban.demo", "imunban.bench", "imunban.web"} <= packages
    assert packages - set(first_contract()["forbidden_modules"]) == set()
