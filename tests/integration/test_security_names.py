"""Issue #11, a sibling of finding 11: a NUL byte in a link name from a
config. Netlink names are C strings, so "mst0\\0x" would have been cut to
"mst0" by the kernel and a macvlan made on a master the config did not
name; now no link has such a name."""

import pytest

from pycni import netlink
from pycni.netlink import link as rtlink

pytestmark = pytest.mark.netns


def test_attr_str_refuses_nul():
    with pytest.raises(netlink.NetlinkError):
        netlink.attr_str(rtlink.IFLA_IFNAME, "eth0\0x")
    assert netlink.attr_str(rtlink.IFLA_IFNAME, "eth0").endswith(b"eth0\0" + b"\0" * 3)


@pytest.mark.parametrize("master", ["mst0\u0000x", "mst0\u0000"])
def test_macvlan_master_with_a_nul_byte_is_not_found(world, plugin_dir, master):
    host = world.host
    host.run("ip", "link", "add", "mst0", "type", "veth", "peer", "name", "mst0p")
    host.run("ip", "link", "set", "mst0", "up")
    ctr = world.container()
    conf = {"cniVersion": "1.0.0", "name": "nulnet", "type": "macvlan", "master": master}
    run = world.run_plugin([plugin_dir], "macvlan", "ADD", conf, ctr)
    assert run.error_code() == 7, run.stdout
    assert "Link not found" in run.stdout
    assert ctr.link("eth0") is None
    assert world.run_plugin([plugin_dir], "macvlan", "DEL", conf, ctr).ok
