"""Freeze only the modules a plugin process starts with (build-python.sh).

CPython 3.11 builds some standard-library modules into the interpreter as
"deep-frozen" code objects: the import system, the modules a `python -S`
start imports (abc, codecs, io), and the modules a start with `site`
imports (os, posixpath, site, stat, _collections_abc, ...), runpy's, and
a few test modules. At every start the interpreter walks all of them and
interns their strings (_Py_Deepfreeze_Init), which writes to each one's
pages: ~0.7 MiB of every plugin process's resident memory and ~1.1 M
instructions go to modules a plugin never imports (it starts with -S,
pycni.posixos replaces os, no -m). This removes all but the first two
groups from Tools/scripts/freeze_modules.py's list; `make regen-frozen`
then regenerates Python/frozen.c and the Makefile's rules from it. The
removed modules stay in the bundle's lib/ as compiled files, so a tool
that imports os still gets it, from there.

    python3 trim-frozen.py SRC/Tools/scripts/freeze_modules.py
"""

import sys

KEEP_UNTIL = "    ('stdlib - startup, with site', ["
LIST_END = "]\nBOOTSTRAP = {"


def trim(text: str) -> str:
    start = text.index(KEEP_UNTIL)
    end = text.index(LIST_END, start)
    text = text[:start] + text[end:]
    # regen_frozen drops a leading empty line of each section and fails on
    # a section that is empty (the test modules' now is)
    old = "        if not lines[0]:\n"
    if old not in text:
        raise SystemExit("trim-frozen.py: freeze_modules.py is not the one expected")
    return text.replace(old, "        if lines and not lines[0]:\n")


def main() -> None:
    path = sys.argv[1]
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(trim(text))


if __name__ == "__main__":
    main()
