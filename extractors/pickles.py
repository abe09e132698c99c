"""Pickles (pkl, pickle, joblib; also gzip/bz2/xz-compressed): protocol and the classes they name.

A pickle is never loaded: loading runs arbitrary code. ``pickletools.genops`` only
decodes the opcode stream, so the classes a pickle would import (``GLOBAL`` and
``STACK_GLOBAL`` references such as ``pandas.core.frame.DataFrame``) are read
without importing or calling anything. The walk stops after ``MAX_OPS`` opcodes or
``MAX_BYTES`` of (decompressed) stream, so a bomb or a giant pickle is bounded.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import pickletools
from collections import Counter
from typing import IO, Any

from extractors.base import Extractor, ExtractorError, NotMyFormat

NAME = "pickle"
VERSION = "1.0"
MAX_OPS = 2_000_000
MAX_BYTES = 256 * 1024 * 1024
MAX_GLOBALS = 200
_STRING_OPS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8", "SHORT_BINSTRING",
                         "BINSTRING", "STRING"})


class _Capped:
    """A read-only stream that ends after ``limit`` bytes (genops reads as it goes)."""

    def __init__(self, fh: IO[bytes], limit: int) -> None:
        self.fh, self.left = fh, limit

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            raise ExtractorError(f"pickle stream longer than {MAX_BYTES} bytes: stopped")
        n = self.left if n < 0 else min(n, self.left)
        data = self.fh.read(n)
        self.left -= len(data)
        return data

    def readline(self) -> bytes:
        line = self.fh.readline(min(self.left, 1 << 20))
        self.left -= len(line)
        return line

    def tell(self) -> int:
        return self.fh.tell()


def _open(path: str) -> tuple[IO[bytes], str | None]:
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(path, "rb"), "gzip"
    if magic[:3] == b"BZh":
        return bz2.open(path, "rb"), "bzip2"
    if magic[:6] == b"\xfd7zXZ\x00":
        return lzma.open(path, "rb"), "xz"
    return open(path, "rb"), None


def extract_pickle(path: str) -> dict[str, Any]:
    fh, compression = _open(path)
    globals_: Counter[str] = Counter()
    opcodes = 0
    protocol = 0
    strings: list[str] = []  # the last strings pushed (directly or from the memo): STACK_GLOBAL's operands
    frames = 0
    complete = False
    stopped = None
    with fh:
        first = fh.read(1)
        if not first:
            raise ExtractorError("empty pickle")
        if first != b"\x80" and first not in b"(]}cI":
            raise NotMyFormat("does not start like a pickle")
        stream = _Capped(fh, MAX_BYTES)
        pending = first

        class _Prefixed:
            def read(self, n: int = -1) -> bytes:
                nonlocal pending
                head, pending = pending, b""
                if n >= 0:
                    return head + stream.read(n - len(head)) if n > len(head) else head[:n]
                return head + stream.read()

            def readline(self) -> bytes:
                nonlocal pending
                head, pending = pending, b""
                return head + stream.readline()

            def tell(self) -> int:
                return stream.tell()

        memo: dict[int, str | None] = {}
        try:
            for op, arg, _ in pickletools.genops(_Prefixed()):
                opcodes += 1
                name = op.name
                if name == "PROTO":
                    protocol = int(arg)
                elif name in _STRING_OPS and isinstance(arg, str):
                    strings = (strings + [arg])[-2:]
                elif name == "MEMOIZE":
                    memo[len(memo)] = strings[-1] if strings else None
                elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                    memo[int(arg)] = strings[-1] if strings else None
                elif name in ("GET", "BINGET", "LONG_BINGET"):
                    value = memo.get(int(arg))
                    strings = (strings + [value])[-2:] if value is not None else []
                elif name == "GLOBAL" and isinstance(arg, str):
                    globals_[arg.replace(" ", ".", 1)] += 1
                elif name == "STACK_GLOBAL" and len(strings) == 2:
                    globals_[f"{strings[0]}.{strings[1]}"] += 1
                    strings = []
                elif name == "FRAME":
                    frames += 1
                elif name not in ("STOP",):
                    strings = []  # anything else pushed or popped: the last pushes are no longer two strings
                elif name == "STOP":
                    complete = True
                    break
                if opcodes >= MAX_OPS:
                    break
        except UnicodeDecodeError as exc:  # Python 2 str opcodes holding non-ASCII bytes: stop, keep what was read
            if opcodes == 0:
                raise NotMyFormat(f"not a pickle: {exc}") from None
            stopped = f"undecodable Python 2 string after {opcodes} opcodes"
        except ValueError as exc:
            if opcodes == 0:
                raise NotMyFormat(f"not a pickle: {exc}") from None
            raise ExtractorError(f"damaged pickle after {opcodes} opcodes: {exc}") from None
    ranked = [g for g, _ in globals_.most_common(MAX_GLOBALS)]
    out: dict[str, Any] = {"format": "pickle", "protocol": protocol, "compression": compression,
                           "opcodes": opcodes, "complete": complete, "globals": ranked,
                           "top_modules": sorted({g.split(".", 1)[0] for g in ranked})}
    if stopped:
        out["stopped"] = stopped
    elif not complete and opcodes < MAX_OPS:
        out["truncated"] = True
    return out


PICKLE = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_pickle,
    extensions=frozenset({"pkl", "pickle", "joblib", "pkl.gz", "pkl.bz2", "pkl.xz", "pickle.gz", "p"}),
    mimes=frozenset({"application/x-pickle", "application/python-pickle"}),
    kind="any",
    accepts=frozenset({"application/gzip", "application/x-bzip2", "application/x-xz"}),
)
