"""Fixtures for end-to-end tests: Debian's podman runs real containers on
our plugins, inside a test world (see podman_harness.py).

  podman     podman with its own storage and configs, running in the host
             namespace of a World, with a local busybox image; one per module
  network    factory: `network(ipv6=False)` creates a podman network
  external   a namespace routed to the host over a veth (a client "outside"
             the node), one per module

Without podman (or root) the tests are skipped, and fail under CI=true.
A plugin of podman's generated chain that pycni does not provide yet is not
a missing prerequisite: the tests that need it are skipped, the others run
the chain without it (see `Network.missing`).
"""

import itertools
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field

import pytest

import podman_harness as ph
from netns_world import Namespace, World
from pytest_netns import missing_prerequisite

from podman_harness import EXT_HOST4, EXT_HOST_LINK, EXT_PEER4, EXT_PEER_LINK

_numbers = itertools.count(1)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "podman: end-to-end: Debian's podman (CNI backend) runs containers "
                   "on our plugins (needs root and the podman packages)")


@dataclass
class Network:
    """A podman network, as podman generated it and as the test runs it."""
    name: str
    number: int
    subnet: str
    gateway: str
    subnet6: str | None
    generated: dict                 # the conflist podman wrote
    missing: list[str] = field(default_factory=list)   # chain plugins pycni lacks

    @property
    def bridge(self) -> str:
        return self.generated["plugins"][0]["bridge"]

    @property
    def chain(self) -> list[str]:
        return [p["type"] for p in self.generated["plugins"]]

    def address(self, host: int) -> str:
        return self.subnet.rsplit(".", 1)[0] + f".{host}"


@pytest.fixture(scope="module")
def podman(plugin_dir, tmp_path_factory):
    if os.geteuid() != 0 or not shutil.which("ip"):
        missing_prerequisite("podman end-to-end tests need root and iproute2")
    missing = ph.missing_tools()
    if missing:
        missing_prerequisite("podman end-to-end tests need " + ", ".join(missing) +
                             " (apt-get install podman runc conmon busybox-static catatonit)")
    world = World("podman")
    client = None
    try:
        host = world.host
        workdir = str(tmp_path_factory.mktemp("podman"))
        client = ph.Podman(host.path, workdir, plugin_dir)
        client.world, client.host = world, host
        client.token = f"hello from pycni {uuid.uuid4().hex[:12]}"
        tarball = ph.build_rootfs_tar(os.path.join(workdir, "busybox.tar"), client.token + "\n")
        client.import_image(tarball)
        yield client
    finally:
        problems = client.close() if client else []
        world.close()
        # Cleanup problems are reported, not raised: a failing teardown of a
        # module fixture would hide the test results that matter.
        for problem in problems:
            print(f"podman cleanup: {problem}")


@pytest.fixture
def network(podman):
    """Factory: `network(ipv6=False)` runs `podman network create` with a
    subnet of its own; each network is removed (with its containers) when
    the test ends, also on failure."""
    created = []

    def create(ipv6: bool = False) -> Network:
        n = next(_numbers)
        name = f"pycni{os.getpid()}-{n}"
        subnet, gateway = f"10.89.{100 + n}.0/24", f"10.89.{100 + n}.1"
        subnet6 = f"fd89:{100 + n:x}::/64" if ipv6 else None
        args = ["network", "create", "--subnet", subnet]
        if ipv6:
            args += ["--ipv6", "--subnet", subnet6]
        podman.networks.append(name)
        created.append(name)
        podman.run(*args, name)
        with open(podman.conflist_path(name)) as f:
            generated = json.load(f)
        net = Network(name, n, subnet, gateway, subnet6, generated)
        net.missing = trim_to_our_plugins(podman, net)
        return net

    yield create
    for name in created:
        podman.run("network", "rm", "--force", name, check=False, timeout=60)
        ph.remove_network_state(name)


def trim_to_our_plugins(podman, net: Network) -> list[str]:
    """Drop from the network's conflist the plugins pycni does not provide
    (podman refuses a network whose chain names a missing plugin); return
    their names. The conflist is left as generated when nothing is missing."""
    have = set(os.listdir(podman.plugin_dir))
    missing = [t for t in net.chain if t not in have]
    ipam = net.generated["plugins"][0].get("ipam", {}).get("type")
    if net.chain[0] not in have or (ipam and ipam not in have):
        pytest.fail(f"pycni lacks {net.chain[0]} or {ipam}, the core of podman's chain")
    if missing:
        trimmed = dict(net.generated,
                       plugins=[p for p in net.generated["plugins"] if p["type"] in have])
        with open(podman.conflist_path(net.name), "w") as f:
            json.dump(trimmed, f, indent=3)
    return missing


@pytest.fixture(scope="module")
def external(podman) -> Namespace:
    """A client outside the node: `EXT_PEER4`, routed to the host's
    `EXT_HOST4` over a veth pair."""
    ext = podman.world.external("ext")
    ext.run("ip", "link", "add", EXT_PEER_LINK, "type", "veth", "peer", "name", EXT_HOST_LINK)
    ext.run("ip", "link", "set", EXT_HOST_LINK, "netns", podman.host.name)
    ext.run("ip", "addr", "add", f"{EXT_PEER4}/24", "dev", EXT_PEER_LINK)
    ext.run("ip", "link", "set", EXT_PEER_LINK, "up")
    podman.host.run("ip", "addr", "add", f"{EXT_HOST4}/24", "dev", EXT_HOST_LINK)
    podman.host.run("ip", "link", "set", EXT_HOST_LINK, "up")
    return ext
