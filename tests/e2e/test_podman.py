"""podman end to end: Debian's podman 4.3 with its CNI backend pointed at a
directory holding only our plugins runs busybox containers.

podman runs inside the host namespace of a test world (conftest.py,
podman_harness.py); its networks get bridges, veths and rules there, its
containers network namespaces of their own. podman generates the chain
bridge (+ host-local) -> portmap -> firewall -> tuning, cniVersion 0.4.0,
and probes every plugin with VERSION before each ADD and DEL.
"""

import ipaddress
import json
import os
import re
import sys
import textwrap

import pytest

import podman_harness as ph
from netns_world import sh
from podman_harness import EXT_HOST4, EXT_HOST_LINK, skip_without

pytestmark = [pytest.mark.podman, pytest.mark.netns]

IMAGE = ph.IMAGE
PROBE = ("ip -o addr show dev eth0; echo mac $(cat /sys/class/net/eth0/address); "
         "ip route; ip -6 route")
STATIC_MAC = "02:42:0a:59:00:2a"

HTTP_GET = textwrap.dedent("""
    import socket, sys, time
    addr, port, tries = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    for attempt in range(tries):
        try:
            s = socket.create_connection((addr, port), timeout=2)
            s.sendall(b"GET /index.html HTTP/1.0\\r\\nHost: e2e\\r\\n\\r\\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            s.close()
            head, _, body = data.partition(b"\\r\\n\\r\\n")
            if head.startswith(b"HTTP/1") and b" 200 " in head.split(b"\\r\\n")[0]:
                sys.stdout.write(body.decode(errors="replace"))
                sys.exit(0)
            error = head[:80]
        except OSError as e:
            error = e
        time.sleep(0.2)
    sys.stderr.write(f"no answer from {addr}:{port}: {error}\\n")
    sys.exit(1)
""")


# ------------------------------------------------------------------ helpers

def probe_output(text: str) -> dict:
    """Addresses, MAC and routes from the PROBE command's output."""
    found = {"v4": [], "v6": [], "mac": None, "routes": []}
    for line in text.splitlines():
        m = re.search(r"\binet (\S+)", line)
        if m:
            found["v4"].append(m.group(1))
            continue
        m = re.search(r"\binet6 (\S+) .*scope global", line)
        if m:
            found["v6"].append(m.group(1))
            continue
        if line.startswith("mac "):
            found["mac"] = line.split()[1]
        elif "inet6 " not in line:
            found["routes"].append(line.strip())
    return found


def run_probe(podman, *args) -> dict:
    return probe_output(podman.run(*args, "sh", "-c", PROBE).stdout)


def inspect_network(podman, container: str, network: str) -> dict:
    info = podman.json("inspect", container)[0]["NetworkSettings"]
    return dict(info["Networks"][network], SandboxKey=info["SandboxKey"])


def ports_on_bridge(podman, net) -> list[str]:
    return [l["ifname"] for l in podman.host.ip_json("link", "show", "master", net.bridge)]


def host_links(podman) -> list[str]:
    """Links of the host namespace the test did not make itself."""
    return [l["ifname"] for l in podman.host.ip_json("link", "show")
            if l["ifname"] not in ("lo", EXT_HOST_LINK)]


def http_get(ns, addr: str, port: int, tries: int = 25):
    """The body answered at addr:port, from namespace `ns` (None: no answer)."""
    proc = ns.run(sys.executable, "-c", HTTP_GET, addr, str(port), str(tries), check=False)
    return proc.stdout.decode() if proc.returncode == 0 else None


def rule_leftovers(podman, needles: list[str]) -> list[str]:
    needles = [n for n in needles if n]
    found = ph.iptables_leftovers(podman.host.run("iptables-save").stdout.decode(), needles)
    nft = podman.host.run("nft", "list", "ruleset", check=False).stdout.decode()
    found += [f"nft: {line.strip()}" for line in nft.splitlines()
              if any(n in line for n in needles)]
    return found


def assert_container_gone(podman, net, cid: str, ip: str, sandbox: str | None = None):
    """What one removed container must not leave behind."""
    assert ip not in ph.allocations(net.name), "host-local allocation left behind"
    assert ph.cached_results(net.name) == [], "libcni cached result left behind"
    assert ports_on_bridge(podman, net) == [], "host veth left on the bridge"
    assert rule_leftovers(podman, [cid, ip + "/", ip + ":", ip + " "]) == []
    if sandbox:
        assert not os.path.exists(sandbox), "container netns left behind"
    assert ph.processes_of(podman.workdir) == [], "conmon or container process left"


# -------------------------------------------------------------------- tests

def test_podman_sees_only_our_plugins(podman):
    with open(podman.env["CONTAINERS_CONF"]) as f:
        conf = f.read()
    assert f"cni_plugin_dirs = [{ph.quote(podman.plugin_dir)}]" in conf
    for name in os.listdir(podman.plugin_dir):
        if name in (".pycni-bundle", ".pycni-manifest"):   # compiled modules, what install wrote
            continue
        with open(os.path.join(podman.plugin_dir, name)) as f:
            assert "written by `pycni install`" in f.read(), f"{name} is not a pycni launcher"


def test_network_create_writes_podmans_chain(podman, network):
    net = network()
    assert net.generated["cniVersion"] == "0.4.0"
    assert net.chain == ["bridge", "portmap", "firewall", "tuning"]
    bridge = net.generated["plugins"][0]
    assert bridge["ipam"]["type"] == "host-local"
    assert bridge["ipam"]["ranges"] == [[{"subnet": net.subnet, "gateway": net.gateway}]]
    assert bridge["capabilities"] == {"ips": True}
    info = podman.json("network", "inspect", net.name)[0]
    assert info["driver"] == "bridge"
    assert info["network_interface"] == net.bridge
    assert [s["subnet"] for s in info["subnets"]] == [net.subnet]


def test_podman_accepts_the_chain_as_generated(podman, network):
    net = network()
    if net.missing:
        pytest.skip(f"podman's chain {net.chain} needs {', '.join(net.missing)}, not "
                    "provided by pycni yet: the other tests run it without them")
    listing = podman.run("network", "ls", "--format", "{{.Name}}")
    assert net.name in listing.stdout.split()
    assert "Error validating CNI config" not in listing.stderr
    podman.run("run", "--rm", "--network", net.name, IMAGE, "true")


def test_run_gets_an_address_from_bridge_and_host_local(podman, network):
    net = network()
    probe = run_probe(podman, "run", "--rm", "--network", net.name, IMAGE)
    assert len(probe["v4"]) == 1, probe
    address = ipaddress.ip_interface(probe["v4"][0])
    assert address.network == ipaddress.ip_network(net.subnet)
    assert str(address.ip) != net.gateway
    assert f"default via {net.gateway} dev eth0" in probe["routes"], probe["routes"]
    assert ph.MAC_RE.match(probe["mac"])
    # The gateway lives on the bridge, in the host namespace the test made.
    assert f"{net.gateway}/24" in podman.host.addresses(net.bridge)
    assert_container_gone(podman, net, "", str(address.ip))


def test_detached_container_is_seen_by_podman_and_the_host(podman, network):
    net = network()
    cid = podman.run("run", "-d", "--network", net.name, IMAGE, "sleep", "600").stdout.strip()
    info = inspect_network(podman, cid, net.name)
    # podman finds IP and MAC only through ips[].interface -> interfaces[]
    ip, mac = info["IPAddress"], info["MacAddress"]
    assert ip and ph.MAC_RE.match(mac), info
    assert info["Gateway"] == net.gateway and info["IPPrefixLen"] == 24
    probe = run_probe(podman, "exec", cid)
    assert probe["v4"] == [f"{ip}/24"] and probe["mac"] == mac
    assert ph.allocations(net.name) == {ip: f"{cid}\r\neth0"}
    ports = ports_on_bridge(podman, net)
    assert len(ports) == 1 and ports[0].startswith("veth"), ports
    podman.run("rm", "--force", "--time", "0", cid)
    assert_container_gone(podman, net, cid, ip, info["SandboxKey"])


def test_static_ip_and_mac_address_are_honoured(podman, network):
    net = network()
    ip = net.address(42)
    cid = podman.run("run", "-d", "--network", net.name, "--ip", ip,
                     "--mac-address", STATIC_MAC, IMAGE, "sleep", "600").stdout.strip()
    probe = run_probe(podman, "exec", cid)
    assert probe["v4"] == [f"{ip}/24"]
    assert probe["mac"] == STATIC_MAC
    info = inspect_network(podman, cid, net.name)
    assert (info["IPAddress"], info["MacAddress"]) == (ip, STATIC_MAC)
    assert list(ph.allocations(net.name)) == [ip]
    # A second container asking for the same address is refused and leaves
    # nothing of its own behind.
    second = podman.run("run", "--rm", "--network", net.name, "--ip", ip, IMAGE, "true",
                        check=False)
    assert second.returncode != 0
    assert ph.allocations(net.name) == {ip: f"{cid}\r\neth0"}
    assert len(ports_on_bridge(podman, net)) == 1
    podman.run("rm", "--force", "--time", "0", cid)
    assert_container_gone(podman, net, cid, ip, info["SandboxKey"])


def test_published_port_answers_through_portmap(podman, network, external):
    net = network()
    skip_without(net, "portmap")
    host_port = 18000 + net.number
    cid = podman.run("run", "-d", "--network", net.name, "-p", f"{host_port}:80", IMAGE,
                     "httpd", "-f", "-p", "80", "-h", "/www").stdout.strip()
    info = inspect_network(podman, cid, net.name)
    expected = podman.token + "\n"
    # conmon holds the host port open to reserve it: only DNAT to the
    # container gives this body.
    assert http_get(podman.host, "127.0.0.1", host_port) == expected
    assert http_get(podman.host, net.gateway, host_port) == expected
    assert http_get(external, EXT_HOST4, host_port) == expected
    podman.run("rm", "--force", "--time", "0", cid)
    assert http_get(podman.host, "127.0.0.1", host_port, tries=1) is None
    assert http_get(external, EXT_HOST4, host_port, tries=1) is None
    assert_container_gone(podman, net, cid, info["IPAddress"], info["SandboxKey"])


def test_dual_stack_network_gives_both_addresses(podman, network):
    net = network(ipv6=True)
    ranges = net.generated["plugins"][0]["ipam"]["ranges"]
    assert [r[0]["subnet"] for r in ranges] == [net.subnet, net.subnet6]
    probe = run_probe(podman, "run", "--rm", "--network", net.name, IMAGE)
    assert [ipaddress.ip_interface(a).network for a in probe["v4"]] == \
        [ipaddress.ip_network(net.subnet)]
    assert [ipaddress.ip_interface(a).network for a in probe["v6"]] == \
        [ipaddress.ip_network(net.subnet6)]
    assert ph.allocations(net.name) == {}


def test_removing_containers_and_network_leaves_nothing(podman, network, external):
    net = network()
    ip = net.address(77)
    publish = [] if "portmap" in net.missing else ["-p", f"{18000 + net.number}:80"]
    cid = podman.run("run", "-d", "--network", net.name, "--ip", ip, "--mac-address",
                     STATIC_MAC, *publish, IMAGE, "httpd", "-f", "-p", "80",
                     "-h", "/www").stdout.strip()
    sandbox = inspect_network(podman, cid, net.name)["SandboxKey"]
    podman.run("run", "--rm", "--network", net.name, IMAGE, "true")
    if publish:
        assert http_get(external, EXT_HOST4, 18000 + net.number) == podman.token + "\n"
    assert ph.allocations(net.name) == {ip: f"{cid}\r\neth0"}

    podman.run("rm", "--force", "--time", "0", cid)
    podman.run("network", "rm", net.name)

    assert host_links(podman) == [], "links left in the host namespace"
    assert rule_leftovers(podman, [cid, net.name, net.subnet, ip + "/", ip + ":"]) == []
    assert ph.allocations(net.name) == {}, "host-local allocations left behind"
    assert ph.cached_results(net.name) == []
    assert not os.path.exists(sandbox)
    assert ph.new_podman_netns(podman.before) == [], "container netns left behind"
    assert ph.processes_of(podman.workdir) == []
    assert sh("ip", "netns", "pids", podman.host.name).stdout.split() == []
    assert not os.path.exists(podman.conflist_path(net.name))
    assert json.loads(podman.run("ps", "--all", "--format", "json").stdout or "[]") == []
