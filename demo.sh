#!/usr/bin/env bash
# pycni's main job, end to end (as root on Debian):
#   installs pycni, wires a real container network namespace to a bridge
#   network (bridge + host-local + portmap) and to loopback with cnitool,
#   shows addresses, routes, the IPAM allocation on disk and a hostPort
#   answering, checks it, tears it down.
# Everything happens inside namespaces this script creates ("pycni-demo-*"),
# so the machine's own network is never touched. Removed again on exit.
set -euo pipefail
cd "$(dirname "$0")"

scripts/install-deps.sh
WORK=$(mktemp -d /tmp/pycni-demo.XXXXXX)
HOST=pycni-demo-host-$$
CTR=pycni-demo-ctr-$$
SERVER_PID=
cleanup() {
  [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null || true
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
    {
      "type": "bridge", "bridge": "demo0", "isGateway": true, "ipMasq": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "10.77.0.0/24"}], [{"subnet": "fd77::/64"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$WORK/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
cat > "$WORK/net.d/99-loopback.conf" <<JSON
{"cniVersion": "1.1.0", "name": "lo", "type": "loopback"}
JSON

ip netns add "$HOST"          # stands in for the node
ip netns exec "$HOST" ip link set lo up
ip netns add "$CTR"           # the container, as a runtime creates it

# PYCNI_STATE_DIRS: the node's root allows host-local's dataDir in $WORK
# (by default a config may only place stores below /var/lib/cni or /run/cni).
in_host() { ip netns exec "$HOST" env NETCONFPATH="$WORK/net.d" CNI_PATH="$WORK/bin" \
              CNI_CACHE_DIR="$WORK/cache" CNI_CONTAINERID=demo1 PYCNI_STATE_DIRS="$WORK" "$@"; }
show() { echo; echo "\$ $*"; "$@"; }
CAP_ARGS='{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}'

echo "== network config: $WORK/net.d/10-demo.conflist"
cat "$WORK/net.d/10-demo.conflist"

echo; echo "== cnitool add lo, cnitool add demo (hostPort 8080 -> container port 80)"
in_host .venv/bin/cnitool add lo "/run/netns/$CTR" >/dev/null
in_host env CAP_ARGS="$CAP_ARGS" .venv/bin/cnitool add demo "/run/netns/$CTR"
echo
echo; echo "== in the container"
show ip netns exec "$CTR" ip -brief addr
show ip netns exec "$CTR" ip route
echo; echo "== on the node"
show ip netns exec "$HOST" ip -brief link
echo; echo "\$ ls $WORK/ipam/demo   (host-local's allocations, one file per address)"
ls "$WORK/ipam/demo"
echo; echo "== a server in the container, reached through hostPort 8080 on the node"
ip netns exec "$CTR" .venv/bin/python -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80)); s.listen(1)
c, peer = s.accept(); c.sendall(b"hello from the container, you are %s\n" % peer[0].encode())
' &
SERVER_PID=$!
ip netns exec "$HOST" .venv/bin/python -c '
import socket, time
for _ in range(50):
    try:
        print(socket.create_connection(("10.77.0.1", 8080), timeout=1).recv(100).decode(), end=""); break
    except OSError: time.sleep(0.1)
'
echo; echo "== cnitool check demo"
in_host .venv/bin/cnitool check demo "/run/netns/$CTR" && echo "check: ok"
echo; echo "== cnitool del demo, cnitool del lo"
in_host env CAP_ARGS="$CAP_ARGS" .venv/bin/cnitool del demo "/run/netns/$CTR"
in_host .venv/bin/cnitool del lo "/run/netns/$CTR"
show ip netns exec "$CTR" ip -brief addr
echo; echo "\$ ls $WORK/ipam/demo   (allocations released)"
ls "$WORK/ipam/demo"
echo; echo "demo finished; namespaces and files are removed on exit"
