#!/usr/bin/env bash
# build.sh - standalone pycni plugin executables that run on any x86_64
# Linux: no Python, no libc, no dynamic loader needed on the node.
#
#   ./build.sh                  build dist/cni-bin/ and the release tarball
#   ./build.sh --rebuild-python also rebuild the static interpreter
#   PYCNI_PYTHON_ROOT=DIR ./build.sh
#                               use the interpreter build-python.sh made in DIR
#                               (DIR/python, DIR/lib/python3.X) as it is
#   cp -a --no-preserve=ownership dist/cni-bin/. /opt/cni/bin/
#                               install on a node (as root: the files become
#                               root's, not the builder's)
#   tar -C /opt/cni/bin -xzf dist/cni-plugins-pycni-linux-amd64-vX.Y.Z.tgz
#                               or from the release tarball, as the
#                               reference's cni-plugins-linux-amd64-*.tgz
#
# Result:
#   dist/cni-bin/             one executable per plugin in
#                             pycni.registry.PLUGINS, named as runtimes look
#                             it up on CNI_PATH, plus one hidden support
#                             directory, .pycni/: a static CPython
#                             (`python`) and lib/python3.X/ (the standard
#                             library and pycni, compiled .pyc files only)
#   dist/cni-plugins-pycni-linux-amd64-vX.Y.Z.tgz (+ .sha256, .sha512)
#                             the same files flat at the top level, with
#                             README.md and LICENSE, owned by root, as the
#                             reference's release tarball; the checksum
#                             files are `sha256sum`/`sha512sum` output
#
# How it runs everywhere (issue #15): the interpreter is CPython built by
# scripts/portable/build-python.sh against musl and linked statically, with
# every C module a plugin may use built in; each plugin executable is a
# ~30 KB static launcher (scripts/portable/launcher.c) that execs
# .pycni/python -I -S -B with the plugin's name compiled in. No ELF file in
# the bundle has a program interpreter, a NEEDED library or a versioned
# libc symbol (checked below with scripts/portable/elfcheck.py), so the
# node's glibc version (or its having none) does not matter.
# Start-up: no self-unpacking (a one-file bundle costs ~110 ms per exec),
# no dynamic loading or relocation of libpython, no re-exec with
# LD_LIBRARY_PATH as PyInstaller's bootloader does; bench/README.md has the
# figures against the PyInstaller build this replaced.
#
# Needs (scripts/install-deps.sh): musl-tools, linux-libc-dev, make,
# binutils, and Debian's package archive for the python3.X source package;
# nothing is downloaded from anywhere else. The interpreter is built once
# into build/portable/ (~14 min on 2 cores: profile-guided, LTO) and reused while its build
# script is unchanged; everything intermediate stays in build/.
#
# Root runs these files: the bundle is made writable by its owner only
# (umask 022 for everything this script creates, and group/other write bits
# cleared), whatever the caller's umask.
set -euo pipefail
umask 022

cd "$(dirname "$0")"
ROOT=$PWD
WORK=$ROOT/build/portable
PYROOT=${PYCNI_PYTHON_ROOT:-$WORK/python-root}
STAGE=$WORK/stage/cni-bin
OUT=$ROOT/dist/cni-bin
DIST=$ROOT/dist
CONTENTS_DIR=.pycni

start=$(date +%s)
rebuild=0
for arg in "$@"; do
    case $arg in
        --rebuild-python) rebuild=1 ;;
        *) echo "build.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done

# 1. The static interpreter, rebuilt when its sources here changed.
stamp=$(cat scripts/portable/build-python.sh scripts/portable/trim-frozen.py \
    scripts/portable/pgo-task.py lib/_pycni_linux.c \
    | sha256sum | cut -d' ' -f1)
if [ -n "${PYCNI_PYTHON_ROOT:-}" ]; then
    [ -x "$PYROOT/python" ] || { echo "build.sh: no interpreter in $PYROOT" >&2; exit 1; }
elif [ "$rebuild" = 1 ] || [ "$(cat "$PYROOT/.stamp" 2>/dev/null)" != "$stamp" ] \
        || [ ! -x "$PYROOT/python" ]; then
    scripts/portable/build-python.sh "$PYROOT"
    echo "$stamp" > "$PYROOT/.stamp"
fi
PY=$PYROOT/python
PYVER=$("$PY" -I -S -c 'import sys; print("%d.%d" % sys.version_info[:2])')

# 2. Stage the bundle: interpreter, standard library (without what no
#    plugin can use: tests, GUI, packaging tools, modules whose C part is
#    not built in), pycni as pyproject.toml maps it (lib/ -> pycni,
#    plugins/ -> pycni.plugins, ipam/ -> pycni.ipam) without the CLI and
#    cnitool front ends.
rm -rf "$WORK/stage"
mkdir -p "$STAGE/$CONTENTS_DIR/lib"
cp "$PY" "$STAGE/$CONTENTS_DIR/python"
LIB=$STAGE/$CONTENTS_DIR/lib/python$PYVER
cp -r "$PYROOT/lib/python$PYVER" "$LIB"
(cd "$LIB" && rm -rf test idlelib tkinter turtledemo turtle.py ensurepip lib2to3 \
    pydoc_data venv distutils unittest sqlite3 curses dbm ctypes site-packages \
    __phello__ config-* ./*/test ./*/tests)
# python._pth beside the interpreter fixes sys.path to exactly the bundle's
# lib/python3.X (and implies -I -S): without it Python would search every
# parent directory of the bundle for lib/python3X.zip and lib/python3.X.
printf 'lib/python%s\n' "$PYVER" > "$STAGE/$CONTENTS_DIR/python._pth"
mkdir -p "$LIB/pycni"
(cd lib && find . -name '*.py' -not -path '*/__pycache__/*' -not -path './cnitool/*' \
    -not -path ./cli.py -print0 | xargs -0 cp --parents -t "$LIB/pycni")
for pkg in plugins ipam; do
    mkdir -p "$LIB/pycni/$pkg"
    (cd "$pkg" && find . -name '*.py' -not -path '*/__pycache__/*' \
        -print0 | xargs -0 cp --parents -t "$LIB/pycni/$pkg")
done
# pycni's modules once more in one file, .pycni/pycni.bundle, which the
# launchers pass to pycni.entry (lib/bundle.py, sealed: paths within the
# bundle, no source to compare): a pread per module instead of a path
# search and a .pyc open; without docstrings and column tables, as the
# venv launchers' bundle.
"$PY" -I -S -B -X no_debug_ranges -c 'import sys; sys.path.insert(0, sys.argv[1])
from pycni.bundle import build
sys.stdout.buffer.write(build(sys.argv[1] + "/pycni", sealed_in=sys.argv[2]))' \
    "$LIB" "$STAGE/$CONTENTS_DIR" > "$STAGE/$CONTENTS_DIR/pycni.bundle"
# Compiled in place of the sources (sourceless .pyc: no source stat or
# timestamp check per import, nothing to recompile when mtimes change in
# a copy), by the bundle's own interpreter.
"$PY" -I -S -m compileall -q -b -j 0 "$LIB" >/dev/null
find "$LIB" -name '*.py' -delete
find "$LIB" -name __pycache__ -prune -exec rm -rf {} +

# 3. One static launcher per plugin.
names=$("$PY" -I -S -c 'import sys; sys.path.insert(0, sys.argv[1])
from pycni.registry import PLUGINS; print(*sorted(PLUGINS))' "$LIB")
for name in $names; do
    musl-gcc -static -Os -s -Wall -Werror -DPLUGIN_NAME="\"$name\"" \
        -o "$STAGE/$name" scripts/portable/launcher.c
done
chmod -R go-w "$STAGE"

# 4. Checks. Nothing in the bundle may need a libc, a loader or a shared
#    library; every plugin must answer VERSION with an empty environment
#    and load its own module (VERSION is answered before it:
#    pycni.entry): without CNI_COMMAND it prints its name and versions.
"$PY" -I -S scripts/portable/elfcheck.py --static "$STAGE"
for name in $names; do
    answer=$(env -i CNI_COMMAND=VERSION "$STAGE/$name" </dev/null) || true
    case $answer in
        *'"supportedVersions"'*) ;;
        *) echo "build.sh: $name does not answer VERSION: $answer" >&2; exit 1 ;;
    esac
    about=$(env -i "$STAGE/$name" </dev/null 2>&1) || true
    case $about in
        *'CNI protocol versions supported'*) ;;
        *) echo "build.sh: $name does not load its plugin: $about" >&2; exit 1 ;;
    esac
done

rm -rf "$OUT"
mkdir -p "$DIST"
mv "$STAGE" "$OUT"

# 5. The release tarball, laid out as the reference's: the plugins flat at
#    the top level (with .pycni/ beside them), README.md and LICENSE,
#    owned by root, entries sorted, times from the last commit (the same
#    tree gives the same bytes).
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' lib/__init__.py)
version=${version:-$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)}
version=${version:-0.1.0}
tarball=cni-plugins-pycni-linux-amd64-v$version.tgz
epoch=$(git log -1 --format=%ct 2>/dev/null || date +%s)
rel=$WORK/release
rm -rf "$rel" && cp -a "$OUT" "$rel"
for doc in README.md LICENSE; do
    [ -f "$doc" ] && install -m 0644 "$doc" "$rel/$doc"
done
rm -f "$DIST"/cni-plugins-pycni-linux-amd64-v*.tgz*
(cd "$rel" && tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
    -cf - . | gzip -9n > "$DIST/$tarball")
(cd "$DIST" && sha256sum "$tarball" > "$tarball.sha256" && sha512sum "$tarball" > "$tarball.sha512")
rm -rf "$rel"

echo "build.sh: $(echo $names | wc -w) plugin(s) in $OUT ($(du -sh "$OUT" | cut -f1)," \
     "$(( $(date +%s) - start )) s): $names" >&2
echo "build.sh: $DIST/$tarball ($(du -h "$DIST/$tarball" | cut -f1))" >&2
