#!/usr/bin/env bash
# Install what pycni's demo and test suite need on a Debian machine (as root),
# then create .venv with pycni installed into it. Safe to run repeatedly:
# apt is only called for packages that are missing.
#
#   scripts/install-deps.sh            runtime + test + build dependencies
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3 python3-venv python3-pip   # the interpreter our plugins run on
  python3-wheel                      # offline wheel builds (tests/integration/test_example_plugin.py)
  python3-dev                        # shared libpython, needed by pyinstaller (build.sh)
  gcc libc6-dev                      # with python3-dev: pip install . builds pycni._pycni_linux (setns)
  iproute2 iptables nftables         # namespaces, links, firewall backends
  containernetworking-plugins        # the reference Go plugins (/usr/lib/cni), compared against
  golang-go golang-github-appc-cni-dev  # a Go libcni client that checks our results
  binutils                           # objdump, used by pyinstaller; readelf/objdump checks of the bundle
  musl-tools linux-libc-dev make patch  # build.sh: the static CPython of the portable bundle
  debootstrap strace                 # tests/integration/test_portable.py, test_binaries.py
  podman runc conmon catatonit       # a real runtime for the end-to-end tests (tests/e2e)
  busybox-static                     # the e2e tests' container image, built locally
  dnsmasq-base                       # a DHCP server for the dhcp tests (udhcpd is busybox's)
  containerd                         # two nodes driven over the CRI (tests/e2e/test_two_nodes.py)
  firewalld dbus-daemon              # the firewall's firewalld backend, on a private bus (tests/integration/test_firewalld.py)
)
# firewalld's package enables and starts its service: on a machine where
# apt starts services it would take over the machine's firewall. It is
# masked before it is installed (the tests run their own inside a test
# namespace); `systemctl unmask firewalld` undoes that.
KEEP_STOPPED=(firewalld)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  if [[ -d /run/systemd/system ]]; then
    for unit in "${KEEP_STOPPED[@]}"; do
      if [[ " ${missing[*]} " == *" $unit "* ]]; then systemctl mask "$unit.service" >/dev/null; fi
    done
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The distribution's own interpreter (what a node has), not whichever
# python3 comes first on PATH: Debian builds _socket, _struct, _sha512,
# fcntl and zlib into it and links libpython statically, ~2-4 ms less per
# plugin process than a shared-libpython build (issue #12).
PYTHON=${PYTHON:-/usr/bin/python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# (drop pip's warnings about local index mirrors that some machines configure)
# The test extra: pytest, and the oracles the tests check our codec and
# host-local against (pyroute2, netaddr, hypothesis); plugins never load them.
# lint: ruff and mypy for scripts/lint.py, which test.sh runs first
.venv/bin/python -m pip install -q '.[test,build,lint]' 2> >(grep -v "is ignored: it is neither" >&2)
# The two-node test's CRI client: gRPC, and protoc for its cri_api.proto
.venv/bin/python -m pip install -q grpcio grpcio-tools protobuf 2> >(grep -v "is ignored: it is neither" >&2)
# The DaemonSet manifest's offline validation (tests/unit/test_manifest.py):
# kubernetes-validate ships Kubernetes' JSON schemas. (scripts/build-image.sh
# and tests/integration/test_image.py need podman, runc and conmon, above.)
.venv/bin/python -m pip install -q kubernetes-validate 2> >(grep -v "is ignored: it is neither" >&2)
