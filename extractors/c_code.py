"""C and C++ source (c, h, cpp, hpp, cc, cxx, hh): includes, functions, structs.

A small scanner, not a compiler: comments and string literals are blanked
(newlines kept, so line numbers hold), preprocessor lines are read for includes
and macros and then dropped, and the rest is split into top-level statements by
tracking braces. A statement ending in ``{`` that looks like ``type name(params)``
is a definition, one ending in ``;`` a prototype. Functions are keyed by name and
parameter list, so a prototype and its definition are one function (the original
counted them twice), flagged ``defined`` and ``declared``.
"""

from __future__ import annotations

import bisect
import re
from typing import Any

from extractors.base import Extractor, read_source

NAME = "c_code"
VERSION = "2.0"
MAX_SOURCE_BYTES = 16 * 1024 * 1024
MAX_ITEMS = 2_000

_COMMENT_OR_STRING = re.compile(
    r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'", re.DOTALL)
_INCLUDE = re.compile(r"^\s*#\s*include\s*([<\"])([^>\"]+)[>\"]", re.MULTILINE)
_DEFINE = re.compile(r"^\s*#\s*define\s+([A-Za-z_]\w*)(\()?", re.MULTILINE)
_DIRECTIVE = re.compile(r"^\s*#(?:[^\n]*\\\n)*[^\n]*", re.MULTILINE)
_TEMPLATE = re.compile(r"^\s*template\s*<[^{;]*?>\s*")
_SIGNATURE = re.compile(
    r"^(?P<ret>(?:[A-Za-z_][\w:<>,]*[\s*&]+)+?)(?P<name>~?[A-Za-z_][\w:~]*(?:operator\s*\S+)?)\s*"
    r"\((?P<params>[^()]*(?:\([^()]*\)[^()]*)*)\)"
    r"\s*(?:const|noexcept|override|final|volatile|&|&&|->\s*[\w:<>*& ]+|\s)*$", re.DOTALL)
_RECORD = re.compile(r"^(?:typedef\s+)?(struct|union|class|enum(?:\s+class)?)(?:\s+([A-Za-z_]\w*))?[^()=]*$",
                     re.DOTALL)
_TRANSPARENT = re.compile(r'^(?:namespace(?:\s+[\w:]+)?|extern\s*"\s*")\s*$')
_SPECIFIERS = frozenset({"static", "inline", "extern", "virtual", "explicit", "constexpr", "friend", "__inline",
                         "__forceinline"})
_PUNCT = re.compile(r"[{};]")
_NEWLINE = re.compile(r"\n")
_NOT_NAMES = frozenset({"if", "for", "while", "switch", "return", "sizeof", "else", "do", "case", "typedef",
                        "decltype", "alignof", "static_assert", "catch"})


def _blank(match: re.Match[str]) -> str:
    text = match.group(0)
    if text.startswith(("\"", "'")):
        return text[0] + " " * (len(text) - 2) + text[-1] if len(text) >= 2 else text
    return re.sub(r"[^\n]", " ", text)


def _split_params(params: str) -> list[str]:
    params = " ".join(params.split())
    if params in ("", "void"):
        return []
    out, depth, cur = [], 0, []
    for ch in params:
        if ch in "(<":
            depth += 1
        elif ch in ")>":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return out


def _statements(code: str) -> list[tuple[str, str, int]]:
    """Top-level (statement, terminator, line) triples; bodies skipped, namespaces entered.

    Only the braces and semicolons are visited (a regex finds them), and line numbers
    come from a bisect over newline offsets, so the scan is linear in the file size.
    """
    newlines = [m.start() for m in _NEWLINE.finditer(code)]

    def line_of(start: int, stop: int) -> int:
        seg = code[start:stop]
        return bisect.bisect_left(newlines, start + len(seg) - len(seg.lstrip())) + 1

    out: list[tuple[str, str, int]] = []
    buf_start = depth = 0
    skip_to: int | None = None  # depth at which a skipped body ends
    for m in _PUNCT.finditer(code):
        i, ch = m.start(), m.group()
        if ch == "{":
            if skip_to is None:
                stmt = code[buf_start:i].strip()
                if _TRANSPARENT.match(stmt):
                    buf_start = i + 1
                else:
                    out.append((stmt, "{", line_of(buf_start, i)))
                    skip_to = depth
            depth += 1
        elif ch == "}":
            depth -= 1
            if skip_to is not None and depth == skip_to:
                skip_to = None
                buf_start = i + 1
                out.append(("", "}", 0))  # end of a body: what follows up to ';' names a typedef
            elif skip_to is None:
                buf_start = i + 1  # end of a namespace
        elif skip_to is None:  # ';'
            out.append((code[buf_start:i].strip(), ";", line_of(buf_start, i)))
            buf_start = i + 1
    return out


def extract_c_code(path: str) -> dict[str, Any]:
    text = read_source(path, MAX_SOURCE_BYTES, "C").decode("utf-8", errors="replace")
    code = _COMMENT_OR_STRING.sub(_blank, text)
    includes = [{"name": m.group(2), "system": m.group(1) == "<"} for m in _INCLUDE.finditer(text)]
    macros = [m.group(1) for m in _DEFINE.finditer(code)]
    code = _DIRECTIVE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), code)

    functions: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}
    records: list[dict[str, Any]] = []
    pending_typedef: dict[str, Any] | None = None
    for stmt, end, line in _statements(code):
        if end == "}":
            continue
        stmt = _TEMPLATE.sub("", " ".join(stmt.split()))
        if pending_typedef is not None and end == ";":
            alias = stmt.split(",")[0].strip().lstrip("*").strip()
            if alias and re.fullmatch(r"[A-Za-z_]\w*", alias):
                pending_typedef["typedef"] = alias
                if not pending_typedef["name"]:
                    pending_typedef["name"] = alias
            pending_typedef = None
            continue
        pending_typedef = None
        rec = _RECORD.match(stmt)
        if rec and end == "{":
            entry = {"kind": rec.group(1).split()[0], "name": rec.group(2), "line": line}
            records.append(entry)
            if stmt.startswith("typedef"):
                pending_typedef = entry
            continue
        sig = _SIGNATURE.match(stmt)
        if not sig or sig.group("name") in _NOT_NAMES or "=" in sig.group("ret"):
            continue
        words = sig.group("ret").split()
        if words[0] in _NOT_NAMES:
            continue
        specifiers = [w for w in words if w in _SPECIFIERS]
        ret = " ".join(w for w in words if w not in _SPECIFIERS) or "int"
        params = _split_params(sig.group("params"))
        key = (sig.group("name"), tuple(" ".join(p.split()) for p in params))
        fn = functions.setdefault(key, {"name": key[0], "return_type": ret, "params": params, "line": line,
                                        "specifiers": specifiers, "defined": False, "declared": False})
        fn["specifiers"] = sorted(set(fn["specifiers"]) | set(specifiers))
        if end == "{":
            fn["defined"], fn["line"], fn["return_type"] = True, line, ret
        else:
            fn["declared"] = True
    fn_list = list(functions.values())
    lines = text.splitlines()
    return {
        "language": "c++" if path.lower().endswith((".cpp", ".hpp", ".cc", ".cxx", ".hh", ".hxx")) else "c",
        "n_lines": len(lines),
        "includes": includes[:MAX_ITEMS],
        "macros": macros[:MAX_ITEMS],
        "functions": fn_list[:MAX_ITEMS],
        "n_functions": len(fn_list),
        "n_defined": sum(f["defined"] for f in fn_list),
        "n_declared_only": sum(f["declared"] and not f["defined"] for f in fn_list),
        "structs": [r for r in records if r["kind"] in ("struct", "union")][:MAX_ITEMS],
        "classes": [r for r in records if r["kind"] == "class"][:MAX_ITEMS],
        "enums": [r for r in records if r["kind"] == "enum"][:MAX_ITEMS],
    }


C_CODE = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_c_code,
    extensions=frozenset({"c", "h", "cpp", "hpp", "cc", "cxx", "hh", "hxx"}),
    mimes=frozenset({"text/x-c", "text/x-c++", "text/x-csrc", "text/x-chdr", "text/x-c++src", "text/x-c++hdr"}),
    kind="text",
)
