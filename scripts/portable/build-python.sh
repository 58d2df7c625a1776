#!/usr/bin/env bash
# scripts/portable/build-python.sh - a fully static CPython for the portable
# plugin bundle (build.sh): linked against musl with every C module the
# plugins may use built in, so the result needs no libc, no loader and no
# shared library on the node at all (any x86_64 Linux kernel runs it).
#
#   scripts/portable/build-python.sh OUT_DIR
#
# OUT_DIR gets `python` (the static interpreter, stripped) and
# `lib/python3.X/` (the standard library as sources, compiled by build.sh).
# Nothing is downloaded but from the distribution's package archive: the
# CPython source is Debian's python3.X source package (its upstream
# tarball; apt-get source with a private deb-src list, so the machine's own
# apt configuration is neither needed nor changed), the compiler is
# Debian's musl-gcc (musl-tools) and the Linux UAPI headers are
# linux-libc-dev's. Intermediate files stay in build/portable/.
set -euo pipefail
umask 022

cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=${1:?usage: build-python.sh OUT_DIR}
WORK=$ROOT/build/portable
# The Python the plugins are written for; the source package of the build
# machine's distribution (Debian 12: python3.11).
PYVER=${PYCNI_PORTABLE_PYTHON:-3.11}
SUITE=${PYCNI_PORTABLE_SUITE:-$(. /etc/os-release && echo "$VERSION_CODENAME")}
MIRROR=${PYCNI_DEBIAN_MIRROR:-http://deb.debian.org/debian}
JOBS=${JOBS:-$(nproc)}

for tool in musl-gcc make apt-get; do
    command -v "$tool" >/dev/null || { echo "build-python.sh: needs $tool (scripts/install-deps.sh)" >&2; exit 1; }
done
[ -d /usr/include/linux ] || { echo "build-python.sh: needs linux-libc-dev" >&2; exit 1; }

mkdir -p "$WORK/apt/lists/partial" "$WORK/apt/cache/archives/partial" "$WORK/src"

# 1. The source: Debian's python3.X source package, through a private apt
#    configuration that only knows one deb-src line.
if ! ls "$WORK"/src/python"$PYVER"_*.orig.tar.* >/dev/null 2>&1; then
    echo "deb-src $MIRROR $SUITE main" > "$WORK/apt/sources.list"
    APT=(-o Dir::Etc::SourceList="$WORK/apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
         -o Dir::State::Lists="$WORK/apt/lists" -o Dir::Cache="$WORK/apt/cache"
         -o APT::Sandbox::User=root -qq)
    apt-get "${APT[@]}" update
    (cd "$WORK/src" && apt-get "${APT[@]}" source --download-only "python$PYVER" zlib)
fi
orig=$(ls "$WORK"/src/python"$PYVER"_*.orig.tar.* | head -1)
src=$WORK/src/Python
rm -rf "$src" "$WORK/src/debian" && mkdir -p "$src"
tar -xf "$orig" -C "$src" --strip-components=1
# Debian's security and crash fixes on top of the upstream release (its
# series also holds packaging patches: Debian's file layout, multiarch,
# distutils, which a static build must not get).
tar -xf "$(ls "$WORK"/src/python"$PYVER"_*.debian.tar.* | head -1)" -C "$WORK/src"
fixes=0
while read -r patch; do
    case $patch in
        *CVE-*|*-gh-[0-9]*|*deadlock*|*crash*|*nullptr*) ;;
        *) continue ;;
    esac
    patch -d "$src" -p1 -N -s --no-backup-if-mismatch < "$WORK/src/debian/patches/$patch"
    fixes=$((fixes + 1))
done < <(grep -v '^#' "$WORK/src/debian/patches/series")
echo "build-python.sh: $(basename "$orig") with $fixes of Debian's fixes" >&2

# 2. musl-gcc sees only musl's headers: give it the kernel's UAPI headers
#    (linux/netlink.h etc., without which _socket has no AF_NETLINK).
kh=$WORK/kernel-headers
rm -rf "$kh" && mkdir -p "$kh"
ln -s /usr/include/linux "$kh/linux"
ln -s /usr/include/asm-generic "$kh/asm-generic"
ln -s "/usr/include/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)/asm" "$kh/asm"
# musl-gcc wraps the system gcc, whose --print-multiarch says
# x86_64-linux-gnu: configure would refuse the musl triplet it finds.
cat > "$WORK/musl-cc" <<'CC'
#!/bin/sh
[ "$1" = --print-multiarch ] && { echo x86_64-linux-musl; exit 0; }
exec musl-gcc "$@"
CC
chmod 755 "$WORK/musl-cc"

# 3. zlib (host-local's store buckets use zlib.crc32), from Debian's zlib
#    source package, as a static musl library.
zsrc=$WORK/src/zlib
rm -rf "$zsrc" "$WORK/zlib-root" && mkdir -p "$zsrc"
tar -xf "$(ls "$WORK"/src/zlib_*.orig.tar.* | head -1)" -C "$zsrc" --strip-components=1
(cd "$zsrc" && CC="$WORK/musl-cc" CFLAGS="-O2 -fPIC" ./configure --static --prefix="$WORK/zlib-root" \
    >"$WORK/zlib.log" 2>&1 && make -s -j"$JOBS" libz.a >>"$WORK/zlib.log" 2>&1 \
    && make -s install >>"$WORK/zlib.log" 2>&1) || { tail -20 "$WORK/zlib.log" >&2; exit 1; }

# 4. Configure: no shared libpython, every detected module static
#    (MODULE_BUILDTYPE), a static link, and none of the modules that need
#    a third-party library we would have to build for musl too (ssl,
#    hashlib's OpenSSL, ctypes, sqlite, bz2/lzma, curses, readline,
#    dbm, uuid, tkinter): no plugin imports them (tests/unit/test_import_sets.py).
cd "$src"
no=(_ssl _hashlib _ctypes _sqlite3 _bz2 _lzma _curses _curses_panel readline
    _dbm _gdbm _uuid _tkinter nis _crypt spwd ossaudiodev audioop
    _xxsubinterpreters _testcapi _testinternalcapi _testbuffer _testclinic
    _testimportmultiple _testmultiphase _ctypes_test xxlimited xxlimited_35 _xxtestfuzz)
cache=()
for m in "${no[@]}"; do cache+=("py_cv_module_$m=n/a"); done
echo "build-python.sh: configuring CPython $(basename "$orig") for musl (static)" >&2
# No pkg-config: it would find the build machine's glibc libraries (zlib).
PKG_CONFIG_LIBDIR=/nonexistent PKG_CONFIG_PATH= ./configure -q --prefix=/ --disable-shared --disable-test-modules --without-ensurepip \
    --with-builtin-hashlib-hashes=md5,sha1,sha256,sha512,sha3,blake2 \
    CC="$WORK/musl-cc" CFLAGS="-O2 -isystem $kh" LDFLAGS="-static -s" LINKFORSHARED=" " \
    ZLIB_CFLAGS="-I$WORK/zlib-root/include" ZLIB_LIBS="$WORK/zlib-root/lib/libz.a" \
    MODULE_BUILDTYPE=static "${cache[@]}" >"$WORK/configure.log" 2>&1 \
    || { tail -40 "$WORK/configure.log" >&2; exit 1; }
# On Linux configure leaves Modules/Setup.stdlib (the detected modules, here
# all *static*) to setup.py, which builds shared extensions: name them in
# Setup.local instead, so that makesetup links them into the interpreter.
# _pycni_linux (setns: lib/_pycni_linux.c, also pip's optional extension) is built in too.
cp Modules/Setup.stdlib Modules/Setup.local
cp "$ROOT/lib/_pycni_linux.c" Modules/
printf '\n*static*\n_pycni_linux _pycni_linux.c\n' >> Modules/Setup.local
# Only the frozen modules a plugin process starts with (trim-frozen.py
# says why), Python/frozen.c and the Makefile regenerated to match.
python3 "$ROOT/scripts/portable/trim-frozen.py" Tools/scripts/freeze_modules.py
python3 Tools/scripts/freeze_modules.py >>"$WORK/make.log" 2>&1   # = make regen-frozen
make -s Makefile >>"$WORK/make.log" 2>&1
# Profile-guided and link-time optimised (as distributions build their
# Python): an instrumented interpreter runs what a node runs (pgo-task.py:
# plugin processes starting, importing pycni, decoding configs,
# host-local's store; nothing touches a network), then the interpreter is
# compiled again with that profile and LTO: ~9 % fewer instructions per
# plugin process than the plain -O3 build (bench/README.md), for ~10 min
# more build time on 2 cores. Only `python` is built each time, not
# CPython's whole build_all (its test programs and shared modules), and
# LTO runs in $JOBS partitions (configure's --with-lto runs one).
LTO="-flto=$JOBS -ffat-lto-objects"
echo "build-python.sh: compiling with profiling (make -j$JOBS)" >&2
make -s -j"$JOBS" python CFLAGS_NODIST="-fprofile-generate" LDFLAGS_NODIST="-fprofile-generate" \
    >"$WORK/make.log" 2>&1 || { tail -40 "$WORK/make.log" >&2; exit 1; }
echo "build-python.sh: training (scripts/portable/pgo-task.py)" >&2
./python "$ROOT/scripts/portable/pgo-task.py" "$ROOT" >>"$WORK/make.log" 2>&1 \
    || { tail -40 "$WORK/make.log" >&2; exit 1; }
ls Python/ceval.gcda >/dev/null 2>&1 || { echo "build-python.sh: the training left no profile" >&2; exit 1; }
make -s clean-retain-profile >>"$WORK/make.log" 2>&1
echo "build-python.sh: compiling with the profile (make -j$JOBS)" >&2
make -s -j"$JOBS" python CFLAGS_NODIST="-fprofile-use -fprofile-correction $LTO" \
    LDFLAGS_NODIST="$LTO -fuse-linker-plugin" >>"$WORK/make.log" 2>&1 || { tail -40 "$WORK/make.log" >&2; exit 1; }

# 5. The result: a static ELF without an interpreter or NEEDED entries.
./python -I -S -c 'import zlib, _socket, _pycni_linux, _json, _sha512, fcntl, select' \
    || { echo "build-python.sh: a needed module is not built in" >&2; exit 1; }
if readelf -lW python | grep -q INTERP || readelf -dW python | grep -q NEEDED; then
    echo "build-python.sh: $src/python is not a static executable" >&2
    exit 1
fi
rm -rf "$OUT" && mkdir -p "$OUT/lib"
cp python "$OUT/python"
cp -r Lib "$OUT/lib/python$PYVER"
echo "build-python.sh: static CPython $(./python -I -S -c 'import sys; print(sys.version.split()[0])') in $OUT" >&2
