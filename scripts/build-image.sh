#!/usr/bin/env bash
# scripts/build-image.sh - pycni's OCI image, built offline FROM scratch.
#
#   ./build.sh && scripts/build-image.sh         dist/pycni-image-vX.Y.Z.oci.tar
#   scripts/build-image.sh --output FILE --tag NAME
#   PYCNI_BUNDLE=DIR        the bundle to ship (default dist/cni-bin)
#   PYCNI_IMAGE_STORAGE=DIR keep the image in podman storage DIR (DIR/root,
#                           DIR/runroot) instead of a temporary one
#
# Nothing is pulled: the image's root filesystem is laid out here and
# `podman build` copies it into an image FROM scratch
# (deploy/image/Containerfile, whose ENTRYPOINT this script fills in). It
# holds
#   /opt/pycni/cni-bin/     the standalone bundle, as ./build.sh left it
#   /opt/pycni/10-pycni.conflist.template
# and the installer, `pycni install-cni` (entry point; commands
# install-cni, pause, version: pycni.installcni.image_main), which is
#   * the bundle's own interpreter when the bundle has one
#     (.pycni/python, static: ./build.sh's portable build):
#     `.pycni/python -I -S -B -m pycni.installcni`. Nothing else is added:
#     the image is the bundle and the template;
#   * otherwise (a PyInstaller bundle, which has no interpreter to run)
#     the installer frozen with PyInstaller into /opt/pycni/installer
#     (deploy/image/entry.py; PYCNI_BUILD_VENV: a virtualenv with
#     pyinstaller, default build/venv), plus the C libraries and loader the
#     executables need, found with ldd on the build host.
# Either way: no shell, no package manager.
#
# podman's storage is a temporary directory (never the machine's default
# storage), removed at the end unless PYCNI_IMAGE_STORAGE names one; the
# result is an OCI archive, which
#   podman load -i FILE | skopeo copy oci-archive:FILE docker://REGISTRY/pycni:vX.Y.Z
#   | ctr -n k8s.io images import FILE
# bring to a registry or a node.
set -euo pipefail
umask 022

cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}
VENV=${PYCNI_BUILD_VENV:-$ROOT/build/venv}
BUNDLE=${PYCNI_BUNDLE:-$ROOT/dist/cni-bin}
WORK=$ROOT/build/image
OUTPUT=
TAG=
while (($#)); do
    case $1 in
        --output) OUTPUT=$2; shift 2 ;;
        --tag) TAG=$2; shift 2 ;;
        *) echo "build-image.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

for tool in podman ldd ldconfig; do
    command -v "$tool" >/dev/null || { echo "build-image.sh: needs $tool" >&2; exit 1; }
done
if [ ! -x "$BUNDLE/loopback" ]; then
    echo "build-image.sh: no bundle in $BUNDLE (run ./build.sh first)" >&2
    exit 1
fi

CONTEXT=$WORK/context
ROOTFS=$CONTEXT/rootfs
rm -rf "$WORK"
mkdir -p "$ROOTFS/opt/pycni" "$ROOTFS/tmp"
chmod 1777 "$ROOTFS/tmp"
cp -a --no-preserve=ownership "$BUNDLE" "$ROOTFS/opt/pycni/cni-bin"
install -m 0644 deploy/image/10-pycni.conflist.template "$ROOTFS/opt/pycni/"

# 1. the installer
BUNDLE_PY=/opt/pycni/cni-bin/.pycni/python
# (the entry point's own answer decides: a bundle built before the
# installer could run this way does not print its version)
answer=
if [ -x "$ROOTFS$BUNDLE_PY" ]; then
    answer=$(env -i "$ROOTFS$BUNDLE_PY" -I -S -B -m pycni.installcni version </dev/null \
             2>/dev/null) || answer=
fi
if [ "${answer#pycni }" != "$answer" ]; then
    ENTRYPOINT="[\"$BUNDLE_PY\", \"-I\", \"-S\", \"-B\", \"-m\", \"pycni.installcni\"]"
    VERSION=${answer#pycni }
    echo "build-image.sh: the installer runs on the bundle's interpreter" >&2
else
    if [ ! -x "$VENV/bin/python" ]; then
        echo "build-image.sh: creating build virtualenv $VENV" >&2
        "$PYTHON" -m venv "$VENV"
    fi
    if [ ! -x "$VENV/bin/pyinstaller" ]; then
        "$VENV/bin/pip" install -q --disable-pip-version-check "$ROOT[build]" pyinstaller
    fi
    # The tree as it is now (PYCNI_IMAGE_REINSTALL=0: the venv's pycni as it is).
    if [ "${PYCNI_IMAGE_REINSTALL:-1}" != 0 ]; then
        "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps --force-reinstall \
            "$ROOT" 2> >(grep -v "is ignored: it is neither" >&2)
    fi
    VERSION=$("$VENV/bin/python" -c 'from pycni.installcni import pycni_version; print(pycni_version())')
    # frozen as one directory: no unpacking on every start
    export PYINSTALLER_CONFIG_DIR=$WORK/config
    "$VENV/bin/pyinstaller" --noconfirm --log-level WARN --onedir --name install-cni \
        --contents-directory _internal --copy-metadata pycni \
        --exclude-module pytest --exclude-module pyroute2 --exclude-module tkinter \
        --distpath "$WORK/dist" --workpath "$WORK/work" --specpath "$WORK" \
        deploy/image/entry.py
    cp -a --no-preserve=ownership "$WORK/dist/install-cni" "$ROOTFS/opt/pycni/installer"
    ENTRYPOINT='["/opt/pycni/installer/install-cni"]'
    echo "build-image.sh: the installer is frozen with PyInstaller" >&2
fi
TAG=${TAG:-localhost/pycni:v$VERSION}
OUTPUT=${OUTPUT:-$ROOT/dist/pycni-image-v$VERSION.oci.tar}

# 2. The libraries the executables load from the system (glibc, libz, the
#    loader): every ELF file's ldd answer, minus what lies inside the image
#    (none for a static bundle).
libs=$(find "$ROOTFS/opt" -type f \( -perm -u+x -o -name '*.so*' \) -print0 |
       xargs -0 -r ldd 2>/dev/null |
       awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' |
       grep -v "^$ROOTFS/" | sort -u || true)
if [ -n "$libs" ]; then
    mkdir -p "$ROOTFS/etc"
    for lib in $libs; do
        mkdir -p "$ROOTFS$(dirname "$lib")"
        cp -L --no-preserve=ownership "$lib" "$ROOTFS$lib"
    done
    dirname -- $libs | sort -u > "$ROOTFS/etc/ld.so.conf"
    ldconfig -r "$ROOTFS"
fi
chmod -R go-w "$ROOTFS"
sed "s|^ENTRYPOINT .*|ENTRYPOINT $ENTRYPOINT|" deploy/image/Containerfile > "$CONTEXT/Containerfile"

# 3. the image, with podman storage of its own. podman also creates a few
# paths outside it (its lock file, its blob-info cache); those it created
# in this run are removed at the end.
HOST_PATHS=(/var/lib/containers/cache/blob-info-cache-v1.boltdb /dev/shm/libpod_lock
            /var/lib/containers/cache /var/lib/containers)
created=()
for path in "${HOST_PATHS[@]}"; do
    [ -e "$path" ] || created+=("$path")
done
STORAGE=${PYCNI_IMAGE_STORAGE:-}
KEEP_STORAGE=${STORAGE:+1}
if [ -z "$STORAGE" ]; then
    # under /tmp whatever TMPDIR says: podman refuses a runroot path longer
    # than 50 characters
    STORAGE=$(mktemp -d /tmp/pycni-image.XXXXXX)
fi
cleanup() {
    if [ -z "$KEEP_STORAGE" ]; then
        podman_ system reset --force >/dev/null 2>&1 || true
        rm -rf "$STORAGE"
    fi
    for path in "${created[@]}"; do
        if [ -f "$path" ]; then rm -f "$path"; elif [ -d "$path" ]; then rmdir "$path" 2>/dev/null || true; fi
    done
}
trap cleanup EXIT
mkdir -p "$STORAGE/tmp"
printf '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' > "$STORAGE/containers.conf"
podman_() {
    TMPDIR=$STORAGE/tmp CONTAINERS_CONF=$STORAGE/containers.conf \
        podman --root "$STORAGE/root" --runroot "$STORAGE/runroot" --storage-driver vfs "$@"
}
podman_ build --quiet --network none --pull=never --build-arg "VERSION=$VERSION" \
    -t "$TAG" -f "$CONTEXT/Containerfile" "$CONTEXT" >/dev/null
mkdir -p "$(dirname "$OUTPUT")"
rm -f "$OUTPUT"
podman_ save --quiet --format oci-archive -o "$OUTPUT" "$TAG"
echo "build-image.sh: $TAG in $OUTPUT ($(du -sh "$OUTPUT" | cut -f1))" >&2
