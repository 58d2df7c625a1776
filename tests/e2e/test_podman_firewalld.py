"""podman end to end with firewalld: podman's generated chain (bridge ->
portmap -> firewall -> tuning), whose firewall has no `backend`, on a
node where firewalld runs, as on Fedora/RHEL. Our firewall then detects
firewalld and puts each container's address into the `trusted` zone
instead of writing iptables rules, as the reference does.

podman, its plugins and firewalld (on a private system bus, see
tests/integration/test_firewalld.py) all run in the test world's host
namespace; podman hands its DBUS_SYSTEM_BUS_ADDRESS to the plugins. The
`podman container cleanup` that conmon starts when a container exits runs
without it: in podman's private mount namespace (podman_harness.py) the
test's bus is also bind-mounted at the default system bus path, so that a
DEL from there reaches the same firewalld.
"""

import os
import sys
import time

import pytest

import podman_harness as ph

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
from test_firewalld import Daemons, _prerequisites  # noqa: E402

pytestmark = [pytest.mark.podman, pytest.mark.netns]

IMAGE = ph.IMAGE


@pytest.fixture(scope="module")
def fwd_podman(podman, tmp_path_factory):
    """The module's podman, with a bus and firewalld in its host namespace."""
    _prerequisites()
    d = Daemons(podman.host, str(tmp_path_factory.mktemp("fwd-e2e")))
    saved = podman.env.get("DBUS_SYSTEM_BUS_ADDRESS")
    try:
        d.start_bus()
        d.start_firewalld()
        podman.env["DBUS_SYSTEM_BUS_ADDRESS"] = d.address
        podman.expose_system_bus(d.socket)
        podman.fwd = d
        yield podman
    finally:
        podman.expose_system_bus(None)
        if saved is None:
            podman.env.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
        else:
            podman.env["DBUS_SYSTEM_BUS_ADDRESS"] = saved
        d.stop()


def cni_forward_rules(podman) -> list[str]:
    out = podman.host.run("iptables-save", "-t", "filter", check=False).stdout.decode()
    return [line for line in out.splitlines() if line.startswith("-A CNI-FORWARD")]


def test_default_firewall_config_uses_firewalld(fwd_podman, network):
    podman, d = fwd_podman, fwd_podman.fwd
    net = network()
    if net.missing:
        pytest.skip(f"podman's chain needs {', '.join(net.missing)}")
    firewall = [p for p in net.generated["plugins"] if p["type"] == "firewall"][0]
    assert "backend" not in firewall or not firewall["backend"]

    cid = podman.run("run", "-d", "--network", net.name, IMAGE, "sleep", "600").stdout.strip()
    info = podman.json("inspect", cid)[0]["NetworkSettings"]["Networks"][net.name]
    ip = info["IPAddress"]
    assert f"{ip}/32" in d.sources("trusted")
    assert not any(ip in r for r in cni_forward_rules(podman)), "iptables used, not firewalld"
    assert podman.host.pings(ip)
    # a second container: both sources, removing one leaves the other
    cid2 = podman.run("run", "-d", "--network", net.name, IMAGE, "sleep", "600").stdout.strip()
    ip2 = podman.json("inspect", cid2)[0]["NetworkSettings"]["Networks"][net.name]["IPAddress"]
    assert {f"{ip}/32", f"{ip2}/32"} <= set(d.sources("trusted"))

    podman.run("rm", "--force", "--time", "0", cid)
    sources = _after_teardown(d, f"{ip}/32")
    assert f"{ip}/32" not in sources and f"{ip2}/32" in sources
    podman.run("rm", "--force", "--time", "0", cid2)
    assert f"{ip2}/32" not in _after_teardown(d, f"{ip2}/32")
    assert ph.allocations(net.name) == {}


def _after_teardown(d, source: str) -> list[str]:
    """The zone's sources once `source` is gone (a few seconds at most).
    podman tears the network down either in `podman rm` itself (with the
    test's environment) or in the `podman container cleanup` that conmon
    starts when the container exits (conmon's environment, no
    DBUS_SYSTEM_BUS_ADDRESS: its firewall DEL asks the default system bus,
    where podman's mount namespace has the test's bus too); which of the
    two comes first is a race inside podman, and either must remove the
    source."""
    sources: list[str] = []
    for _ in range(50):
        sources = d.sources("trusted")
        if source not in sources:
            return sources
        time.sleep(0.1)
    return sources


def test_container_exiting_on_its_own_is_torn_down_by_conmons_cleanup(fwd_podman, network,
                                                                     tmp_path):
    """A container whose command ends: nobody calls podman, conmon starts
    `podman container cleanup`, which tears the network down with conmon's
    environment (no DBUS_SYSTEM_BUS_ADDRESS): its firewall DEL finds the
    test's firewalld on the default bus path of podman's mount namespace."""
    podman, d = fwd_podman, fwd_podman.fwd
    net = network()
    if net.missing:
        pytest.skip(f"podman's chain needs {', '.join(net.missing)}")
    gate = tmp_path / "gate"
    gate.mkdir()
    cid = podman.run("run", "-d", "--network", net.name, "-v", f"{gate}:/gate", IMAGE,
                     "sh", "-c", "until [ -e /gate/go ]; do sleep 0.1; done").stdout.strip()
    ip = podman.json("inspect", cid)[0]["NetworkSettings"]["Networks"][net.name]["IPAddress"]
    assert f"{ip}/32" in d.sources("trusted")
    (gate / "go").touch()
    assert f"{ip}/32" not in _after_teardown(d, f"{ip}/32")
    assert ph.wait_for(lambda: ph.allocations(net.name) == {}), "address not released"
    assert not any(ip in r for r in cni_forward_rules(podman)), "iptables used, not firewalld"
    podman.run("rm", cid)
    assert ph.cached_results(net.name) == []


def test_run_rm_with_firewalld_stopped_meanwhile(fwd_podman, network):
    """firewalld stops while a container runs (its runtime zone sources go
    with it): `podman rm` still succeeds and leaves nothing; firewalld
    comes back for the next tests."""
    podman, d = fwd_podman, fwd_podman.fwd
    net = network()
    if net.missing:
        pytest.skip(f"podman's chain needs {', '.join(net.missing)}")
    cid = podman.run("run", "-d", "--network", net.name, IMAGE, "sleep", "600").stdout.strip()
    ip = podman.json("inspect", cid)[0]["NetworkSettings"]["Networks"][net.name]["IPAddress"]
    assert f"{ip}/32" in d.sources("trusted")
    d.stop_firewalld()
    try:
        # detection now finds no firewalld: DEL goes to iptables, which has
        # nothing of this container, and succeeds
        podman.run("rm", "--force", "--time", "0", cid)
        assert ph.allocations(net.name) == {}
        assert ph.cached_results(net.name) == []
    finally:
        d.start_firewalld()
    assert f"{ip}/32" not in d.sources("trusted")
