"""DAD and ECMP through the runtimes' clients (issue #13): a conflist of
bridge (with `enabledad` and IPAM routes to one destination via two
gateways, both families) and tuning, run by cnitool and by the Go libcni
client (tests/golibcni). ADD returns with settled addresses and every
route installed, the runtime's CHECK of the whole chain passes (it used to
fail on the routes our ADD skipped), DEL twice is clean; a second network
handing out the same IPv6 address on the same bridge fails ADD through
the runtime and leaves nothing.
"""

import json
import os
import sys

import pytest

from test_golibcni import golibcni  # noqa: F401  (the session fixture: the built client)

pytestmark = pytest.mark.netns

CNITOOL = os.path.join(os.path.dirname(sys.executable), "cnitool")
ROUTES = [{"dst": "10.88.0.0/16", "gw": "10.77.0.253"},
          {"dst": "10.88.0.0/16", "gw": "10.77.0.254"},
          {"dst": "fd88::/64", "gw": "fd77::fd"},
          {"dst": "fd88::/64", "gw": "fd77::fe"}]


def conflist(name: str, data_dir) -> dict:
    return {"cniVersion": "1.0.0", "name": name, "plugins": [
        {"type": "bridge", "bridge": "dadbr0", "enabledad": True,
         "ipam": {"type": "host-local", "dataDir": str(data_dir), "routes": ROUTES,
                  "ranges": [[{"subnet": "10.77.0.0/24", "gateway": "10.77.0.1"}],
                             [{"subnet": "fd77::/64", "gateway": "fd77::1"}]]}},
        {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.arp_filter": "1"}}]}


@pytest.fixture
def netconf(tmp_path):
    d = tmp_path / "net.d"
    d.mkdir()
    for i, name in enumerate(("dadnet1", "dadnet2")):
        (d / f"{i}-{name}.conflist").write_text(json.dumps(conflist(name, tmp_path / "ipam")))
    return d


def cnitool(world, plugin_dir, netconf, tmp_path, *args):
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "PYCNI_STATE_DIRS": os.environ["PYCNI_STATE_DIRS"],
           "NETCONFPATH": str(netconf), "CNI_PATH": plugin_dir,
           "CNI_CACHE_DIR": str(tmp_path / "cache")}
    return world.host.run(CNITOOL, *args, check=False, env=env)


def golib(world, binary, plugin_dir, tmp_path, name, ctr, *ops):
    conf = tmp_path / f"{name}.conflist"
    conf.write_text(json.dumps(conflist(name, tmp_path / "ipam")))
    proc = world.host.run(binary, "-conflist", str(conf), "-netns", ctr.path,
                          "-cni-path", plugin_dir, "-cache-dir", str(tmp_path / "gocache"),
                          "-container-id", name, "-ifname", "eth0", *ops, check=False)
    reports = [json.loads(line) for line in proc.stdout.decode().splitlines() if line.strip()]
    assert [r["op"] for r in reports] == list(ops), proc.stdout + proc.stderr
    return reports


def ok(proc):
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    return proc


def settled_state(ctr) -> dict:
    """What ADD must have left: no tentative address, both IPv4 routes,
    one IPv6 multipath route with both gateways."""
    addrs = [a for link in ctr.ip_json("-6", "addr", "show", "dev", "eth0")
             for a in link["addr_info"]]
    v4 = [r["gateway"] for r in ctr.ip_json("route", "show", "10.88.0.0/16")]
    (v6,) = ctr.ip_json("-6", "route", "show", "fd88::/64")
    return {"tentative": [a["local"] for a in addrs if a.get("tentative")],
            "v4": sorted(v4), "v6": sorted(h["gateway"] for h in v6["nexthops"])}


SETTLED = {"tentative": [], "v4": ["10.77.0.253", "10.77.0.254"],
           "v6": ["fd77::fd", "fd77::fe"]}


def allocations(tmp_path, net: str) -> list[str]:
    d = tmp_path / "ipam" / net
    return sorted(p.name for p in d.iterdir() if p.name[0].isdigit() or ":" in p.name) \
        if d.is_dir() else []


def link_names(ns) -> list[str]:
    return sorted(l["ifname"] for l in ns.ip_json("link", "show"))


def test_cnitool_chain(world, plugin_dir, netconf, tmp_path):
    c1, c2 = world.container("dadc1"), world.container("dadc2")
    add = ok(cnitool(world, plugin_dir, netconf, tmp_path, "add", "dadnet1", c1.path))
    result = json.loads(add.stdout)
    assert result["routes"] == ROUTES
    assert settled_state(c1) == SETTLED
    ok(cnitool(world, plugin_dir, netconf, tmp_path, "check", "dadnet1", c1.path))

    # the same addresses from the second network, on the same bridge
    dup = cnitool(world, plugin_dir, netconf, tmp_path, "add", "dadnet2", c2.path)
    assert dup.returncode != 0
    assert "DADFAILED" in (dup.stdout + dup.stderr).decode()
    assert link_names(c2) == ["lo"] and allocations(tmp_path, "dadnet2") == []
    ok(cnitool(world, plugin_dir, netconf, tmp_path, "del", "dadnet2", c2.path))

    for _ in range(2):
        ok(cnitool(world, plugin_dir, netconf, tmp_path, "del", "dadnet1", c1.path))
    assert link_names(c1) == ["lo"] and allocations(tmp_path, "dadnet1") == []


def test_golibcni_chain(world, golibcni, plugin_dir, tmp_path):  # noqa: F811
    c1, c2 = world.container("dadc1"), world.container("dadc2")
    add, check = golib(world, golibcni, plugin_dir, tmp_path, "dadnet1", c1, "add", "check")
    assert add["ok"], add
    assert check["ok"], check
    assert [ip["address"] for ip in add["result"]["ips"]] == ["10.77.0.2/24", "fd77::2/64"]
    assert settled_state(c1) == SETTLED

    (dup,) = golib(world, golibcni, plugin_dir, tmp_path, "dadnet2", c2, "add")
    assert not dup["ok"] and dup["code"] == 999 and "DADFAILED" in dup["error"], dup
    assert link_names(c2) == ["lo"] and allocations(tmp_path, "dadnet2") == []

    dels = golib(world, golibcni, plugin_dir, tmp_path, "dadnet1", c1, "del", "del")
    assert all(d["ok"] for d in dels), dels
    assert link_names(c1) == ["lo"] and allocations(tmp_path, "dadnet1") == []
