"""Python source (py, pyw, pyi): imports, functions, classes, and the syntax verdict.

Parsed with ``ast`` (never imported or executed). A file that does not parse is
still described (lines, the syntax error and where) rather than reported as an
extraction error: "this is Python 2" is metadata. The minimum Python version is a
lower bound from the syntax used (walrus, match, except*, ...).
"""

from __future__ import annotations

import ast
from typing import Any

from extractors.base import Extractor, read_source

NAME = "python"
VERSION = "2.0"
MAX_SOURCE_BYTES = 32 * 1024 * 1024
MAX_ITEMS = 1_000
MAX_DOC = 500

#: Syntax first accepted by a Python version (the parser of 3.11 knows these nodes).
_FEATURES: dict[type, tuple[int, int]] = {
    ast.TryStar: (3, 11),
    ast.Match: (3, 10),
    ast.NamedExpr: (3, 8),
    ast.AnnAssign: (3, 6),
    ast.JoinedStr: (3, 6),
    ast.AsyncFunctionDef: (3, 5),
    ast.Await: (3, 5),
    ast.AsyncFor: (3, 5),
    ast.AsyncWith: (3, 5),
}


def _params(args: ast.arguments) -> list[str]:
    names = [a.arg for a in args.posonlyargs + args.args]
    if args.vararg:
        names.append("*" + args.vararg.arg)
    names += [a.arg for a in args.kwonlyargs]
    if args.kwarg:
        names.append("**" + args.kwarg.arg)
    return names


def _doc(node: Any) -> str | None:
    doc = ast.get_docstring(node)
    return doc[:MAX_DOC] if doc else None


def _function(node: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, Any]:
    return {
        "name": node.name,
        "params": _params(node.args),
        "docstring": _doc(node),
        "line": node.lineno,
        "async": isinstance(node, ast.AsyncFunctionDef),
        "decorators": [ast.unparse(d)[:100] for d in node.decorator_list],
        "returns": ast.unparse(node.returns)[:100] if node.returns else None,
    }


def scan(tree: ast.AST) -> tuple[set[str], str]:
    """(imported modules, minimum Python version) in one walk over the tree."""
    imports: set[str] = set()
    best = (3, 0)
    features = _FEATURES
    for node in ast.walk(tree):
        kind = type(node)
        if kind is ast.Import:
            imports.update(a.name for a in node.names)  # type: ignore[attr-defined]
        elif kind is ast.ImportFrom:
            imports.add("." * node.level + (node.module or ""))  # type: ignore[attr-defined]
        elif kind is ast.arguments and node.posonlyargs:  # type: ignore[attr-defined]
            best = max(best, (3, 8))
        version = features.get(kind)
        if version is not None and version > best:
            best = version
    return imports, f"{best[0]}.{best[1]}"


def extract_python(path: str) -> dict[str, Any]:
    source = read_source(path, MAX_SOURCE_BYTES, "Python")
    text = source.decode("utf-8", errors="replace")
    lines = text.splitlines()
    out: dict[str, Any] = {
        "n_lines": len(lines),
        "n_blank_lines": sum(1 for ln in lines if not ln.strip()),
        "n_comment_lines": sum(1 for ln in lines if ln.lstrip().startswith("#")),
    }
    try:
        tree = ast.parse(source, filename=path)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        return {**out, "syntax_valid": False, "syntax_error": {"message": getattr(exc, "msg", str(exc)),
                                                               "line": line}}
    imports, min_python = scan(tree)
    functions, classes = [], []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            functions.append(_function(node))
        elif isinstance(node, ast.ClassDef):
            classes.append({
                "name": node.name, "bases": [ast.unparse(b)[:100] for b in node.bases], "docstring": _doc(node),
                "line": node.lineno,
                "methods": [_function(n) for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))],
            })
    return {
        **out,
        "syntax_valid": True,
        "docstring": _doc(tree),
        "imports": sorted(imports)[:MAX_ITEMS],
        "functions": functions[:MAX_ITEMS],
        "classes": classes[:MAX_ITEMS],
        "n_functions": len(functions),
        "n_classes": len(classes),
        "min_python": min_python,
        "has_main_guard": any(isinstance(n, ast.If) and "__main__" in ast.unparse(n.test) for n in tree.body),
    }


PYTHON = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_python,
    extensions=frozenset({"py", "pyw", "pyi"}),
    mimes=frozenset({"text/x-python", "text/x-script.python"}),
    kind="text",
)
