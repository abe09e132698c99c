"""The layout's rules, checked on the code itself (docs/architecture.md)."""

from __future__ import annotations

import ast
import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("flows", "tasks", "extractors", "xtract_blocks")


def modules() -> dict[str, pathlib.Path]:
    found = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports_of(path: pathlib.Path, known: set[str]) -> set[str]:
    """Project modules ``path`` imports, at module level or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                     for a in node.names]
        out |= {n for n in names if n in known}
    return out


def test_no_import_cycles_counting_imports_inside_functions():
    mods = modules()
    graph = {m: imports_of(p, set(mods)) - {m} for m, p in mods.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert cycles == []


def test_imports_run_downward():
    mods = modules()
    rank = {"flows": 3, "tasks": 2, "tasks.habitats": 1, "tasks.pools": 1, "tasks.store": 1, "extractors": 0,
            "xtract_blocks": -1}

    def room(mod: str) -> str:
        return next(r for r in sorted(rank, key=len, reverse=True) if mod == r or mod.startswith(r + "."))

    upward = []
    for m, p in mods.items():
        for target in imports_of(p, set(mods)):
            a, b = room(m), room(target)
            allowed = rank[b] < rank[a] or a == b or (a, b) == ("tasks.pools", "tasks.habitats") \
                or b == "tasks.store" and a in ("tasks.habitats", "tasks.pools") or b == "xtract_blocks"
            if m.startswith("extractors") and b != "extractors":
                allowed = False
            if not allowed:
                upward.append(f"{m} -> {target}")
    assert upward == []


def test_extractors_never_import_prefect():
    for path in (REPO / "extractors").rglob("*.py"):
        assert not re.search(r"^\s*(import|from) prefect", path.read_text(encoding="utf-8"), re.M), path


def test_repo_type_is_compared_only_inside_the_habitats():
    offenders = []
    for m, path in modules().items():
        if m.startswith("tasks.habitats"):
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"repo_type\s*(==|!=|\bin\b|\bnot in\b)", line):
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert offenders == []


def test_only_the_layout_spells_the_state_directory():
    spelled = [str(p.relative_to(REPO)) for m, p in modules().items()
               if re.search(r"""["']\.xtract["']""", p.read_text(encoding="utf-8")) and m != "tasks.store.layout"]
    assert spelled == []
