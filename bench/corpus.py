"""A real-data corpus: the data files shipped inside installed public scientific packages.

Synthetic files only test what their author thought of; the files that packages ship
for their own tests and examples (scipy's MATLAB and IDL files, astropy's FITS and
VOTables, pydicom's DICOM, obspy's seismograms, matplotlib's fonts, ...) are the
long tail a real repository holds. The packages are installed into a venv of their
own (``--install``), never into the project's ``.venv``, so the benchmark cannot
change what the tests see.

    python bench/corpus.py --install                     # venv + packages (once, a few minutes)
    python bench/corpus.py --out corpus.txt              # the list of paths, one a line
    python bench/corpus.py --copy-to DIR [--repeat 5]    # a repository: DIR/r0/<package>/..., r1/...

Selection: every file under each package that is not code or build residue (.py,
.so, .pyc, ...), capped at ``--per-package`` files chosen by a hash of the path, so
the corpus is deterministic and no one package dominates. Last line of stdout: JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter

#: Packages whose wheels ship real data files (test data, sample data, fonts, images).
PACKAGES = (
    "scipy", "astropy", "xarray", "statsmodels", "scikit-image", "matplotlib", "nibabel", "pydicom",
    "h5py", "netCDF4", "pandas", "obspy", "sunpy",
)
#: Import names where they differ from the distribution name.
IMPORT_NAMES = {"scikit-image": "skimage", "scikit-learn": "sklearn", "vega_datasets": "vega_datasets"}
CODE_EXTENSIONS = frozenset({
    "py", "pyc", "pyo", "pyi", "pyx", "pxd", "pxi", "so", "pyd", "dll", "dylib", "a", "o", "typed", "exe",
})
SKIP_DIRS = frozenset({"__pycache__", ".git"})
DEFAULT_VENV = os.path.join(tempfile.gettempdir(), "xtract-bench", "corpus-venv")


def venv_site_packages(venv: str) -> str:
    """The site-packages directory of a venv (any Python 3 version)."""
    lib = os.path.join(venv, "lib")
    for name in sorted(os.listdir(lib)):
        cand = os.path.join(lib, name, "site-packages")
        if name.startswith("python") and os.path.isdir(cand):
            return cand
    raise SystemExit(f"no site-packages under {lib}")


def install(venv: str, packages: tuple[str, ...] = PACKAGES) -> None:
    """Create ``venv`` and install the corpus packages (binary wheels only) into it."""
    if not os.path.exists(os.path.join(venv, "bin", "python")):
        subprocess.check_call([sys.executable, "-m", "venv", venv])
    subprocess.check_call([os.path.join(venv, "bin", "pip"), "install", "-q", "--only-binary=:all:", *packages])


def is_data_file(name: str) -> bool:
    """Not code, not bytecode, not a compiled library."""
    ext = name.rsplit(".", 1)[-1].lower() if "." in name.lstrip(".") else ""
    return ext not in CODE_EXTENSIONS


def package_files(site: str, package: str) -> list[str]:
    """Data files of one installed package, relative to site-packages, sorted."""
    top = os.path.join(site, IMPORT_NAMES.get(package, package))
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in filenames:
            full = os.path.join(dirpath, name)
            if is_data_file(name) and os.path.isfile(full) and not os.path.islink(full):
                out.append(os.path.relpath(full, site))
    return sorted(out)


def select(files: list[str], cap: int) -> list[str]:
    """At most ``cap`` files, chosen by a hash of the path (stable across machines and runs)."""
    if len(files) <= cap:
        return files
    return sorted(sorted(files, key=lambda p: hashlib.sha1(p.encode()).hexdigest())[:cap])


def build_list(site: str, packages: tuple[str, ...] = PACKAGES, per_package: int = 150) -> list[str]:
    """Absolute paths of the corpus files."""
    paths: list[str] = []
    for pkg in packages:
        if os.path.isdir(os.path.join(site, IMPORT_NAMES.get(pkg, pkg))):
            paths += [os.path.join(site, p) for p in select(package_files(site, pkg), per_package)]
    return paths


def copy_corpus(paths: list[str], site: str, dest: str, repeat: int = 1) -> int:
    """Copy the files into ``dest/r<k>/<relative path>`` ``repeat`` times; reuses a complete copy."""
    stamp = os.path.join(dest, ".corpus.json")
    want = {"n": len(paths), "repeat": repeat, "digest": hashlib.sha1("\n".join(paths).encode()).hexdigest()}
    try:
        with open(stamp) as fh:
            if json.load(fh) == want:
                return len(paths) * repeat
    except (OSError, ValueError):
        pass
    shutil.rmtree(dest, ignore_errors=True)
    for k in range(repeat):
        for src in paths:
            dst = os.path.join(dest, f"r{k}", os.path.relpath(src, site))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(src, dst)
    with open(stamp, "w") as fh:
        json.dump(want, fh)
    return len(paths) * repeat


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--venv", default=os.environ.get("XTRACT_CORPUS_VENV", DEFAULT_VENV))
    ap.add_argument("--install", action="store_true", help="create the venv and install the packages")
    ap.add_argument("--packages", default=",".join(PACKAGES))
    ap.add_argument("--per-package", type=int, default=150)
    ap.add_argument("--out", help="write the paths here, one a line")
    ap.add_argument("--copy-to", help="copy the files into this directory")
    ap.add_argument("--repeat", type=int, default=1, help="copies of the corpus under --copy-to")
    args = ap.parse_args(argv)
    packages = tuple(p for p in args.packages.split(",") if p)
    if args.install:
        install(args.venv, packages)
    site = venv_site_packages(args.venv)
    paths = build_list(site, packages, args.per_package)
    if args.out:
        with open(args.out, "w", encoding="utf-8", errors="surrogateescape") as fh:
            fh.writelines(p + "\n" for p in paths)
    copied = copy_corpus(paths, site, args.copy_to, args.repeat) if args.copy_to else 0
    by_pkg = Counter(os.path.relpath(p, site).split(os.sep, 1)[0] for p in paths)
    by_ext = Counter((os.path.basename(p).rsplit(".", 1)[-1].lower() if "." in os.path.basename(p) else "")
                     for p in paths)
    print(json.dumps({"files": len(paths), "bytes": sum(os.path.getsize(p) for p in paths), "copied": copied,
                      "site_packages": site, "by_package": dict(by_pkg), "top_extensions": by_ext.most_common(25)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
