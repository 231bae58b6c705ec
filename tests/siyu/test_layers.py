"""The floors of DESIGN.md hold: no import goes up or sideways, no two modules import each other, jobs are leaves.

`siyu → console → {miniprogram_api, webhooks, campaigns} → segments → {bot, membership} → config`. Every import
counts, those inside functions too (an import moved into a function still makes the circle). Tests and
benchmarks are exempt; the sandbox is part of bot.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FLOORS = {
    "config": 0,
    "membership": 1, "bot": 1,
    "segments": 2,
    "webhooks": 3, "campaigns": 3, "miniprogram_api": 3,
    "console": 4,
    "siyu": 5,
}
# Sibling imports DESIGN itself names, and why.
ALLOWED = {
    ("miniprogram_api", "campaigns"): "DESIGN: the consumer HTTP API over campaigns.groupbuy / campaigns.bookings",
}
Graph = dict[str, dict[str, int]]  # module -> imported module -> line of the first such import


def _module_names(root: Path) -> dict[str, Path]:
    found = {}
    for package in FLOORS:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imported(module: str, is_package: bool, node: ast.AST, known: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, *([node.module] if node.module else [])])
    # `from bot import clients` imports the module bot.clients; `from bot.clients import wecom_client` bot.clients.
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(root: Path = ROOT) -> Graph:
    """Every import between Siyu's modules under `root`, at any depth of the module (functions included)."""
    known = _module_names(root)
    graph: Graph = {}
    for module, path in known.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for name in _imported(module, path.name == "__init__.py", node, known):
                target = _resolve(name, known)
                if target and target != module:
                    graph.setdefault(module, {}).setdefault(target, node.lineno)
    return graph


def floor_violations(graph: Graph) -> list[str]:
    """Imports of a package on the same floor (a sibling) or a higher one, and imports of a jobs module."""
    found = []
    for module, targets in sorted(graph.items()):
        for target, line in sorted(targets.items()):
            mine, theirs = module.split(".")[0], target.split(".")[0]
            if mine != theirs and FLOORS[theirs] >= FLOORS[mine] and (mine, theirs) not in ALLOWED:
                kind = "a sibling" if FLOORS[theirs] == FLOORS[mine] else "a higher floor"
                found.append(f"{module}:{line} imports {target}, {kind}")
            if target.rpartition(".")[2] == "jobs" and module.rpartition(".")[2] != "scheduled":
                found.append(f"{module}:{line} imports {target}: a jobs module is imported by schedules only")
    return found


def cycles(graph: Graph) -> list[list[str]]:
    """The import circles: strongly connected sets of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, {}))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_goes_up_or_sideways_a_floor():
    # given every module of every package, imports inside functions included
    graph = import_graph()
    # then each imports only its own package or packages on lower floors, and no jobs module but from a schedule
    assert floor_violations(graph) == []


def test_no_two_modules_import_each_other_even_through_others():
    assert cycles(import_graph()) == []


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_check_finds_an_upward_import_a_sibling_import_and_a_circle_hidden_in_a_function(tmp_path):
    # given a small tree: bot imports webhooks inside a function, bot imports membership (its sibling),
    # and two segments modules import each other, one of them inside a function
    root = _tree(tmp_path, {
        "config/__init__.py": "", "bot/__init__.py": "", "membership/__init__.py": "", "membership/models.py": "",
        "webhooks/__init__.py": "", "webhooks/inbox.py": "", "segments/__init__.py": "",
        "bot/clients.py": "from membership import models\ndef f():\n    from webhooks.inbox import store\n",
        "segments/a.py": "from segments import b\n",
        "segments/b.py": "def g():\n    from . import a\n",
        "segments/jobs.py": "", "segments/service.py": "from segments.jobs import refresh\n",
    })
    graph = import_graph(root)
    # then all three are reported, and a jobs module imported by a service is too
    assert floor_violations(graph) == [
        "bot.clients:1 imports membership.models, a sibling",
        "bot.clients:3 imports webhooks.inbox, a higher floor",
        "segments.service:1 imports segments.jobs: a jobs module is imported by schedules only",
    ]
    assert cycles(graph) == [["segments.a", "segments.b"]]
