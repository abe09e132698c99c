"""Text extractors: keyword (RAKE, language, pdf), python (ast) and c_code (no double counting)."""

from __future__ import annotations

import math
import pathlib

import pytest

from extractors.batch import extract_group
from extractors.c_code import extract_c_code
from extractors.keyword import extract_keyword
from extractors.python_code import extract_python

ABSTRACT = (
    "Compatibility of systems of linear constraints over the set of natural numbers. Criteria of compatibility "
    "of a system of linear Diophantine equations, strict inequations, and nonstrict inequations are considered. "
    "Upper bounds for components of a minimal set of solutions and algorithms of construction of minimal "
    "generating sets of solutions for all types of systems are given. These criteria and the corresponding "
    "algorithms for constructing a minimal supporting set of solutions can be used in solving all the "
    "considered types of systems and systems of mixed types.\n"
)


def one(path: pathlib.Path) -> dict:
    st = path.stat()
    ext = path.suffix.lstrip(".")
    return extract_group({"group_id": "g", "files": [{"path": str(path), "size": st.st_size, "mtime": st.st_mtime,
                                                       "extension": ext, "mime": None}]})


def test_rake_keywords_match_the_published_example(tmp_path):
    path = tmp_path / "abstract.txt"
    path.write_text(ABSTRACT)
    r = extract_keyword(str(path))
    assert (r["n_lines"], r["n_words"], r["language"]) == (1, 86, "en")
    top = [k["keyword"] for k in r["keywords"][:3]]
    # Rose et al. (2010), table 1.1: the three best-scored candidates of this abstract
    assert top == ["minimal generating sets", "linear diophantine equations", "minimal supporting set"]
    assert r["keywords"][0]["score"] == pytest.approx(8 + 2 / 3, abs=1e-3)
    assert not any(k["keyword"] in ("of", "the", "and", "for") for k in r["keywords"])


@pytest.mark.parametrize("text,lang", [
    ("Die Messung der Temperatur wurde mit einem neuen Sensor durchgeführt, und die Daten sind in der "
     "Tabelle zu sehen. Wir haben die Werte für jede Probe mit dem Mittelwert verglichen, aber nicht alle "
     "Proben waren gültig, weil der Sensor zu warm war.", "de"),
    ("La mesure de la température a été faite avec un nouveau capteur et les données sont dans le tableau. "
     "Nous avons comparé les valeurs de chaque échantillon avec la moyenne, mais pas tous les échantillons "
     "sont valides pour cette étude, qui est très longue.", "fr"),
    ("La medición de la temperatura se hizo con un nuevo sensor y los datos están en la tabla. Hemos "
     "comparado los valores de cada muestra con la media, pero no todas las muestras son válidas para "
     "este estudio, que es muy largo y tiene muchos datos.", "es"),
    ("too short to tell", None),
])
def test_language_by_stopword_ratio(tmp_path, text, lang):
    path = tmp_path / "t.md"
    path.write_text(text)
    assert extract_keyword(str(path))["language"] == lang


def test_counts_stream_over_a_multi_block_file(tmp_path, monkeypatch):
    from extractors import keyword

    monkeypatch.setattr(keyword, "BLOCK", 1000)  # many blocks, lines cut across block boundaries
    path = tmp_path / "long.log"
    lines = [f"sensor {i} reported pressure drop near valve" for i in range(700)]
    path.write_text("\n".join(lines) + "\n")
    r = extract_keyword(str(path))
    assert (r["n_lines"], r["n_words"]) == (700, 700 * 7)
    assert r["keywords"][0] == {"keyword": "reported pressure drop near valve", "count": 700,
                                "score": pytest.approx(25 * (1 + math.log(700)), abs=1e-3)}


def test_pdf_text(tmp_path):
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    page = writer.add_blank_page(width=300, height=300)
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica")})
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})})
    content = DecodedStreamObject()
    content.set_data(b"BT /F1 12 Tf 20 200 Td (Neutron scattering of layered oxide samples) Tj ET")
    page[NameObject("/Contents")] = writer._add_object(content)
    writer.add_metadata({"/Title": "Beam report"})
    path = tmp_path / "report.pdf"
    with open(path, "wb") as fh:
        writer.write(fh)
    res = one(path)
    assert res["files"][0]["extractor"] == "keyword" and res["files"][0]["mime"] == "application/pdf"
    r = res["doc"]["metadata"]["keyword"]
    assert (r["format"], r["pages"], r["document_info"]["Title"]) == ("pdf", 1, "Beam report")
    assert [k["keyword"] for k in r["keywords"]] == ["layered oxide samples", "neutron scattering"]


def test_html_tags_are_not_keywords(tmp_path):
    path = tmp_path / "page.html"
    path.write_text("<html><head><style>div {color: red}</style></head><body><div class='x'>"
                    "Cryogenic electron microscopy</div></body></html>")
    r = extract_keyword(str(path))
    assert r["format"] == "html" and [k["keyword"] for k in r["keywords"]] == ["cryogenic electron microscopy"]


PY_SOURCE = '''"""Module doc."""
import os, sys as system
from collections import abc
from . import sibling


def plain(a, b=1, *args, c, **kw):
    """Add things."""
    return a


async def fetch(url, /):
    if (n := len(url)) > 3:
        return n


class Reader(abc.Mapping):
    """Reads."""

    def get(self, key):
        match key:
            case 1:
                return 1

if __name__ == "__main__":
    plain(1, c=2)
'''


def test_python_ast(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(PY_SOURCE)
    r = extract_python(str(path))
    assert r["syntax_valid"] is True and r["docstring"] == "Module doc."
    assert r["imports"] == [".", "collections", "os", "sys"]
    assert [(f["name"], f["params"], f["docstring"], f["async"]) for f in r["functions"]] == [
        ("plain", ["a", "b", "*args", "c", "**kw"], "Add things.", False), ("fetch", ["url"], None, True)]
    assert r["classes"][0]["name"] == "Reader" and r["classes"][0]["bases"] == ["abc.Mapping"]
    assert [m["name"] for m in r["classes"][0]["methods"]] == ["get"]
    assert r["min_python"] == "3.10" and r["has_main_guard"] is True
    assert r["n_lines"] == PY_SOURCE.count("\n")


def test_python2_file_is_described_with_its_syntax_error(tmp_path):
    path = tmp_path / "old.py"
    path.write_text('import os\nprint "hello"\n')
    res = one(path)
    assert res["files"][0]["status"] == "ok"
    r = res["doc"]["metadata"]["python"]
    assert r["syntax_valid"] is False and r["syntax_error"]["line"] == 2 and r["n_lines"] == 2


C_SOURCE = """#include <stdio.h>
#include "mylib.h"
#define MAX 10
#define SQR(x) ((x) * (x))

/* prototypes, then definitions: each function is counted once */
static int add(int a, int b);
double scale(const double *v, size_t n, void (*cb)(int));
int add(int a, int b);

typedef struct {
    int x;
    int y;
} point_t;

struct node {
    struct node *next;
    char name[32];
};

#ifdef __cplusplus
extern "C" {
#endif
int wrapped(void);
#ifdef __cplusplus
}
#endif

int add(int a, int b)
{
    if (a > 0) { return a + b; }
    printf("not { a function(int x);");  // int fake(void) {
    return b;
}

int main(int argc, char **argv) {
    int arr[] = {1, 2, 3};
    return add(arr[0], 2);
}
"""


def test_c_functions_without_double_counting(tmp_path):
    path = tmp_path / "m.c"
    path.write_text(C_SOURCE)
    r = extract_c_code(str(path))
    assert r["includes"] == [{"name": "stdio.h", "system": True}, {"name": "mylib.h", "system": False}]
    assert r["macros"] == ["MAX", "SQR"]
    fns = {f["name"]: f for f in r["functions"]}
    assert sorted(fns) == ["add", "main", "scale", "wrapped"] and r["n_functions"] == 4
    assert fns["add"]["defined"] and fns["add"]["declared"] and fns["add"]["specifiers"] == ["static"]
    assert (fns["add"]["return_type"], fns["add"]["params"]) == ("int", ["int a", "int b"])
    assert fns["scale"]["params"] == ["const double *v", "size_t n", "void (*cb)(int)"]
    assert not fns["scale"]["defined"] and fns["main"]["defined"] and not fns["main"]["declared"]
    assert (r["n_defined"], r["n_declared_only"]) == (2, 2)
    assert [(s["name"], s.get("typedef")) for s in r["structs"]] == [("point_t", "point_t"), ("node", None)]


def test_cpp_classes_namespaces_and_methods(tmp_path):
    path = tmp_path / "m.cpp"
    path.write_text("""#include <vector>
namespace geo {
class Shape { public: virtual double area() const = 0; };
template <typename T> T twice(T v) { return v + v; }
double Shape::scaled(double k) const { return k; }
}
""")
    r = extract_c_code(str(path))
    assert r["language"] == "c++" and [c["name"] for c in r["classes"]] == ["Shape"]
    assert sorted(f["name"] for f in r["functions"]) == ["Shape::scaled", "twice"]


@pytest.mark.parametrize("name,content,status", [
    ("bin.py", bytes(range(256)) * 4, "error"),
    ("bin.c", b"\x00\x01garbage" * 100, "error"),
    ("empty.txt", b"", "unknown"),  # .txt is decided by content: nothing there
    ("empty.md", b"", "error"),
    ("empty.py", b"", "ok"),  # an empty module is valid Python
])
def test_malformed_text_files(tmp_path, name, content, status):
    path = tmp_path / name
    path.write_bytes(content)
    res = one(path)
    assert res["files"][0]["status"] == status, res["doc"]["errors"]
    if status == "error":
        assert res["doc"]["errors"][0]["type"] == "ExtractorError"
