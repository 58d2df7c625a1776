#!/usr/bin/env python3
"""pycni's lint step: ruff over the tree, then mypy over the modules that
`[tool.mypy] modules` in pyproject.toml lists. Exit status non-zero when
either finds something (test.sh runs this before the tests, so CI fails).

    scripts/lint.py            both
    scripts/lint.py --ruff     ruff only
    scripts/lint.py --types    mypy only

Run it with the Python of a venv that has ruff and mypy (`.venv`, which
scripts/install-deps.sh fills from the `lint` extra; `make lint` does).

Why a copy for mypy: the repository keeps the import package `pycni` in
lib/, plugins/, ipam/ and netns-fixtures/ (pyproject's package-dir
mapping), which no type checker can follow. The sources are copied into
build/typecheck/ laid out as installed (lib/ -> pycni/, plugins/ ->
pycni/plugins/, ...: the mapping is read from pyproject, not repeated
here), mypy runs on that copy, and the paths it reports are mapped back to
the files in the tree. An installed copy would be checked as it was when
it was installed; this one is always the tree's.
"""

import fcntl
import os
import shutil
import subprocess
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHADOW = os.path.join("build", "typecheck")


def package_dirs() -> list[tuple[str, str]]:
    """(import package, source directory) from [tool.setuptools] package-dir,
    outermost package first."""
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        mapping = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    return sorted(mapping.items(), key=lambda item: item[0].count("."))


def build_shadow(mapping: list[tuple[str, str]]) -> None:
    """build/typecheck/<package path>/ = each source directory's .py files."""
    top = os.path.join(ROOT, SHADOW)
    shutil.rmtree(os.path.join(top, "pycni"), ignore_errors=True)
    for package, source in mapping:
        target = os.path.join(top, *package.split("."))
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, source)):
            dirnames[:] = sorted(d for d in dirnames
                                 if d != "__pycache__" and not d.startswith("."))
            rel = os.path.relpath(dirpath, os.path.join(ROOT, source))
            if rel != "." and any(rel == s or rel.startswith(s + os.sep)
                                  for s in _nested(mapping, source)):
                continue          # another mapping entry places it
            out = os.path.normpath(os.path.join(target, rel))
            os.makedirs(out, exist_ok=True)
            for name in filenames:
                if name.endswith((".py", ".pyi")) or name == "py.typed":
                    shutil.copy2(os.path.join(dirpath, name), os.path.join(out, name))


def _nested(mapping, source: str) -> list[str]:
    """Directories below `source` that are sources of their own entry."""
    return [os.path.relpath(s, source) for _p, s in mapping
            if s != source and os.path.commonpath([s, source]) == source]


def to_tree_path(line: str, mapping: list[tuple[str, str]]) -> str:
    """A mypy report line with its build/typecheck/ path replaced by the
    tree's file (the innermost package that matches)."""
    for package, source in reversed(mapping):
        prefix = os.path.join(SHADOW, *package.split(".")) + os.sep
        if line.startswith(prefix):
            return os.path.join(source, line[len(prefix):])
    return line


def run_ruff() -> int:
    print("ruff check .", flush=True)
    return subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT).returncode


def run_mypy() -> int:
    mapping = package_dirs()
    os.makedirs(os.path.join(ROOT, SHADOW), exist_ok=True)
    # One copy per tree; concurrent runs (pre-commit and make) take turns.
    with open(os.path.join(ROOT, SHADOW + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        build_shadow(mapping)
        env = dict(os.environ, MYPYPATH=SHADOW)
        print("mypy ([tool.mypy] modules)", flush=True)
        proc = subprocess.run([sys.executable, "-m", "mypy", "--config-file", "pyproject.toml"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    for line in proc.stdout.splitlines():
        print(to_tree_path(line, mapping))
    return proc.returncode


def main(argv: list[str]) -> int:
    which = set(argv) or {"--ruff", "--types"}
    unknown = which - {"--ruff", "--types"}
    if unknown:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    status = 0
    if "--ruff" in which:
        status |= run_ruff()
    if "--types" in which:
        status |= run_mypy()
    return 1 if status else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
