"""Free text (txt, md, rst, html, pdf): counts, ranked keywords (RAKE) and language.

Keywords are ranked with RAKE (Rose et al., 2010): candidate phrases are the runs
of words between stopwords and punctuation; a word scores degree/frequency (words
that co-occur in long phrases score higher than frequent loners), a phrase the sum
of its words, times 1 + ln(occurrences). Stopwords never become keywords. Counts
stream over the whole file; the ranking reads the first few MB.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from typing import Any

from extractors.base import Extractor, ExtractorError, MissingLibrary
from extractors.stopwords import STOPWORDS, detect_language

NAME = "keyword"
VERSION = "2.1"
TOP_KEYWORDS = 15
#: Keywords are ranked on the first MB: enough to characterise a text, and RAKE is pure Python.
RANK_BYTES = 1024 * 1024
BLOCK = 1024 * 1024
MAX_PDF_PAGES = 50
#: Longer runs without a stopword are lists or code, not key phrases.
MAX_PHRASE_WORDS = 5

_WORD = re.compile(r"[^\W\d_][\w'-]*", re.UNICODE)
# punctuation, and tokens holding digits or symbols, end a candidate phrase
_SPLIT = re.compile(r"[.,;:!?()\[\]{}<>\"|/\\=+*#`~\n\r\t•–—]+|\s-\s|\S*[\d_@&%$^]\S*")
_TAG = re.compile(r"<(script|style)\b.*?</\1>|<[^>]+>", re.DOTALL | re.IGNORECASE)
_ALL_STOPS = frozenset().union(*STOPWORDS.values())


def rake(text: str, stops: frozenset[str], top: int = TOP_KEYWORDS) -> list[dict[str, Any]]:
    """Top RAKE phrases of ``text`` as [{keyword, score, count}]."""
    phrases: list[tuple[str, ...]] = []
    for fragment in _SPLIT.split(text.lower()):
        current: list[str] = []
        for token in fragment.split():
            word = token.strip("'-")
            if len(word) < 2 or word in stops:
                if current:
                    phrases.append(tuple(current))
                current = []
            else:
                current.append(word)
        if current:
            phrases.append(tuple(current))
    phrases = [p for p in phrases if len(p) <= MAX_PHRASE_WORDS]
    freq: Counter[str] = Counter()
    degree: defaultdict[str, int] = defaultdict(int)
    for p in phrases:
        for w in p:
            freq[w] += 1
            degree[w] += len(p)
    word_score = {w: degree[w] / freq[w] for w in freq}
    counts = Counter(phrases)
    # RAKE scores a phrase once however often it occurs; weight by log frequency so a
    # phrase repeated through a document outranks a one-off string of rare words
    scored = {p: sum(word_score[w] for w in p) * (1 + math.log(counts[p])) for p in counts}
    best = sorted(scored.items(), key=lambda kv: (-kv[1], " ".join(kv[0])))
    return [{"keyword": " ".join(p), "score": round(s, 4), "count": counts[p]} for p, s in best[:top]]


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(raw) - 4:
            return raw[: exc.start].decode("utf-8")
        return raw.decode("latin-1")


def _text_stats(path: str) -> tuple[str, int, int, int, bool]:
    """(text for ranking, n_lines, n_words, n_chars, truncated) streaming the whole file."""
    keep: list[str] = []
    kept = n_lines = n_words = n_chars = 0
    carry = b""
    with open(path, "rb") as fh:
        first = fh.read(BLOCK)
        if b"\x00" in first[:8192]:
            raise ExtractorError("binary content (NUL bytes): not free text")
        block = first
        while block:
            data = carry + block
            cut = data.rfind(b"\n") + 1 if len(block) == BLOCK else len(data)
            data, carry = data[:cut], data[cut:]
            text = _decode(data)
            n_lines += text.count("\n")
            n_words += len(text.split())
            n_chars += len(text)
            if kept < RANK_BYTES:
                keep.append(text)
                kept += len(data)
            block = fh.read(BLOCK)
        if carry:
            text = _decode(carry)
            n_words += len(text.split())
            n_chars += len(text)
            keep.append(text)
    joined = "".join(keep)
    if joined and not joined.endswith("\n"):
        n_lines += 1
    return joined, n_lines, n_words, n_chars, kept >= RANK_BYTES


def _pdf_text(path: str) -> tuple[str, dict[str, Any]]:
    """Text of the first pages, plus what a PDF says about itself even without a text layer."""
    try:
        from pypdf import PdfReader
    except ImportError:
        raise MissingLibrary("reading PDF needs pypdf: install the science extra "
                             "(pip install 'prefect-xtract[science]')") from None
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        info: dict[str, Any] = {"format": "pdf", "encrypted": reader.is_encrypted}
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractorError("encrypted PDF: text not readable without a password")
        info["pdf_version"] = getattr(reader, "pdf_header", "")[5:] or None
        info["pages"] = len(reader.pages)
        meta = reader.metadata or {}
        info["document_info"] = {str(k).lstrip("/"): str(v)[:500] for k, v in meta.items()}
    except PdfReadError as exc:
        raise ExtractorError(f"damaged PDF: {exc}") from None
    sizes: dict[str, int] = {}
    parts = []
    for page in reader.pages[:MAX_PDF_PAGES]:
        try:
            box = page.mediabox
            key = f"{float(box.width):g}x{float(box.height):g}"
            sizes[key] = sizes.get(key, 0) + 1
        except Exception:  # noqa: BLE001 - a broken page box must not lose the document
            pass
        try:
            parts.append(page.extract_text() or "")
        except Exception:  # noqa: BLE001 - one undecodable content stream: the other pages still count
            parts.append("")
    info["page_sizes_pt"] = sizes
    info["pages_read"] = len(parts)
    return "\n".join(parts), info


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)
_META = re.compile(r"<meta\s[^>]*>", re.I)
_ATTR = re.compile(r"""(\w[\w:-]*)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""")
_HTML_HEADING = re.compile(r"<h([1-3])[^>]*>(.*?)</h\1>", re.I | re.S)
_MD_HEADING = re.compile(r"^(#{1,3})\s+(.+?)\s*#*\s*$", re.M)
_RST_HEADING = re.compile(r"^([^\s].{0,200})\n([=\-~^\"'`#*+]{3,})\s*$", re.M)
_TEX = re.compile(r"\\(title|section|subsection|chapter|documentclass)\*?(?:\[[^\]]*\])?\{([^}]{0,300})\}")
MAX_HEADINGS = 50


def _structure(text: str, fmt: str, lower: str) -> dict[str, Any]:
    """Title, meta tags and headings: what a document says it is about."""
    out: dict[str, Any] = {}
    sample = text[:RANK_BYTES]
    if fmt == "html":
        m = _TITLE.search(sample)
        if m:
            out["title"] = _TAG.sub("", m.group(1)).strip()[:300]
        meta = {}
        for tag in _META.findall(sample)[:100]:
            attrs = {k.lower(): v.strip("\"'") for k, v in _ATTR.findall(tag)}
            key = attrs.get("name") or attrs.get("property") or attrs.get("http-equiv")
            if key and "content" in attrs:
                meta[key[:100]] = attrs["content"][:300]
            elif "charset" in attrs:
                meta["charset"] = attrs["charset"][:50]
        if meta:
            out["meta"] = meta
        heads = [_TAG.sub("", h).strip()[:200] for _, h in _HTML_HEADING.findall(sample)]
    elif lower.endswith((".md", ".markdown")):
        heads = [h[:200] for _, h in _MD_HEADING.findall(sample)]
    elif lower.endswith((".rst", ".rest")):
        heads = [h.strip()[:200] for h, line in _RST_HEADING.findall(sample) if len(line) >= len(h.strip()) - 1]
    elif lower.endswith((".tex", ".ltx", ".latex")):
        found = _TEX.findall(sample)
        heads = [v[:200] for k, v in found if k in ("section", "subsection", "chapter")]
        for k, v in found:
            if k in ("title", "documentclass") and k not in out:
                out[k] = v[:300]
    else:
        heads = []
    if heads:
        out["headings"] = [h for h in heads if h][:MAX_HEADINGS]
    return out


def extract_keyword(path: str) -> dict[str, Any]:
    with open(path, "rb") as fh:
        head = fh.read(5)
    if head == b"%PDF-":
        text, info = _pdf_text(path)
        n_lines, n_words, n_chars, truncated = text.count("\n") + 1, len(text.split()), len(text), False
    else:
        text, n_lines, n_words, n_chars, truncated = _text_stats(path)
        if not text.strip():
            raise ExtractorError("no text: the file is empty or blank")
        info = {"format": "text"}
        lower = path.lower()
        if lower.endswith((".html", ".htm", ".xhtml")) or text.lstrip()[:15].lower().startswith(
                ("<!doctype html", "<html")):
            info["format"] = "html"
        info.update(_structure(text, info["format"], lower))
        if info["format"] == "html":
            text = _TAG.sub(" ", text)
    if not text.strip():  # a scanned PDF, an HTML page of scripts and images: a fact, not an error
        return {**info, "n_lines": n_lines, "n_words": 0, "n_chars": n_chars, "has_text": False,
                "language": None, "language_confidence": None, "keywords": [], "ranked_on_truncated_text": False}
    words = _WORD.findall(text[:200_000])
    language = detect_language(words)
    stops = STOPWORDS[language["code"]] if language else _ALL_STOPS  # type: ignore[index]
    return {
        **info,
        "n_lines": n_lines,
        "n_words": n_words,
        "n_chars": n_chars,
        "has_text": True,
        "language": language["code"] if language else None,
        "language_confidence": language,
        "keywords": rake(text, stops),
        "ranked_on_truncated_text": truncated,
    }


KEYWORD = Extractor(
    name=NAME,
    version=VERSION,
    func=extract_keyword,
    extensions=frozenset({"txt", "text", "md", "markdown", "rst", "html", "htm", "xhtml", "tex", "ltx", "log", "pdf",
                          "rest"}),
    mimes=frozenset({"text/plain", "text/markdown", "text/x-rst", "text/html", "application/pdf", "text/x-tex"}),
    kind="text",
    accepts=frozenset({"application/pdf", "application/xml"}),
    preload=("pypdf",),
)
