#!/usr/bin/env bash
# pycni's main job, end to end (as root on Debian):
#   installs pycni, wires a real container network namespace to an example
#   network with cnitool, shows it, checks it, tears it down.
# Everything happens inside namespaces this script creates ("pycni-demo-*"),
# so the machine's own network is never touched. Removed again on exit.
set -euo pipefail
cd "$(dirname "$0")"

scripts/install-deps.sh
WORK=$(mktemp -d /tmp/pycni-demo.XXXXXX)
HOST=pycni-demo-host-$$
CTR=pycni-demo-ctr-$$
cleanup() {
  ip netns del "$CTR" 2>/dev/null || true
  ip netns del "$HOST" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

.venv/bin/pycni install --dir "$WORK/bin" >/dev/null
mkdir -p "$WORK/net.d"
cat > "$WORK/net.d/10-demo.conflist" <<JSON
{
  "cniVersion": "1.1.0",
  "name": "demo",
  "plugins": [
    {"type": "loopback"}
  ]
}
JSON

ip netns add "$HOST"          # stands in for the node
ip netns add "$CTR"           # the container, as a runtime creates it

in_host() { ip netns exec "$HOST" env NETCONFPATH="$WORK/net.d" CNI_PATH="$WORK/bin" \
              CNI_CACHE_DIR="$WORK/cache" CNI_CONTAINERID=demo1 "$@"; }
show() { echo; echo "\$ $*"; "$@"; }

echo "== network config ($WORK/net.d/10-demo.conflist)"
cat "$WORK/net.d/10-demo.conflist"
show ip netns exec "$CTR" ip -brief addr
echo; echo "== cnitool add demo /run/netns/$CTR"
in_host .venv/bin/cnitool add demo "/run/netns/$CTR"
echo
show ip netns exec "$CTR" ip -brief addr
echo; echo "== cnitool check demo (exit 0 = healthy)"
in_host .venv/bin/cnitool check demo "/run/netns/$CTR" && echo "check: ok"
echo; echo "== cnitool del demo"
in_host .venv/bin/cnitool del demo "/run/netns/$CTR" && echo "del: ok"
show ip netns exec "$CTR" ip -brief addr
echo; echo "demo finished; namespaces and files are removed on exit"
