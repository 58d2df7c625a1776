"""host-device's sysfs lookups on a fake sysfs tree (no root needed):
what each key finds, and that no key makes the lookup follow a path out
of sysfs or onto a link the config did not name."""

import os

import pytest

from pycni.errors import CNIError
from pycni.plugins.host_device import config, sysfs

PCI = "0000:00:03.0"
VIRTIO_PCI = "0000:00:04.0"
DPDK_PCI = "0000:00:05.0"
AUX = "mlx5_core.sf.4"


@pytest.fixture
def tree(tmp_path):
    """A small sysfs: a PCI NIC with netdev ens3, a virtio NIC (netdev
    below virtio1/), a PCI function bound to vfio-pci (no netdev), an
    auxiliary SF with netdev en3f0s4, and the bus links the kernel makes."""
    root = tmp_path / "sys"
    dev = root / "devices" / "pci0000:00"
    (dev / PCI / "net" / "ens3").mkdir(parents=True)
    (dev / VIRTIO_PCI / "virtio1" / "net" / "eth7").mkdir(parents=True)
    (dev / DPDK_PCI).mkdir(parents=True)
    (dev / PCI / AUX / "net" / "en3f0s4").mkdir(parents=True)
    (root / "devices" / "virtual" / "net" / "lo").mkdir(parents=True)
    drivers = root / "bus" / "pci" / "drivers"
    for name in ("virtio-pci", "vfio-pci", "e1000"):
        (drivers / name).mkdir(parents=True)
    pci = root / "bus" / "pci" / "devices"
    pci.mkdir(parents=True)
    for addr in (PCI, VIRTIO_PCI, DPDK_PCI):
        os.symlink(f"../../../devices/pci0000:00/{addr}", pci / addr)
    os.symlink("../../../bus/pci/drivers/e1000", dev / PCI / "driver")
    os.symlink("../../../bus/pci/drivers/virtio-pci", dev / VIRTIO_PCI / "driver")
    os.symlink("../../../bus/pci/drivers/vfio-pci", dev / DPDK_PCI / "driver")
    aux = root / "bus" / "auxiliary" / "devices"
    aux.mkdir(parents=True)
    os.symlink(f"../../../devices/pci0000:00/{PCI}/{AUX}", aux / AUX)
    with sysfs.Tree(str(root)) as t:
        yield t


def test_kernelpath(tree):
    assert tree.by_kernelpath(f"/sys/devices/pci0000:00/{PCI}") == "ens3"
    assert tree.by_kernelpath(f"/sys/devices/pci0000:00/{PCI}/") == "ens3"
    assert tree.by_kernelpath("/sys/devices/virtual") == "lo"


def test_pci_address_plain_and_virtio(tree):
    assert tree.by_pci_address(PCI) == "ens3"
    assert tree.by_pci_address(VIRTIO_PCI) == "eth7"


def test_pci_without_netdev(tree):
    with pytest.raises(sysfs.LookupError_, match=f"no net directory under pci device {DPDK_PCI}"):
        tree.by_pci_address(DPDK_PCI)
    with pytest.raises(sysfs.LookupError_, match="no PCI device 0000:00:09.0"):
        tree.by_pci_address("0000:00:09.0")


def test_aux_device(tree):
    assert tree.by_aux_device(AUX) == "en3f0s4"


def test_drivers(tree):
    assert tree.pci_driver(PCI) == "e1000"
    assert not tree.has_dpdk_driver(PCI)
    assert tree.has_dpdk_driver(DPDK_PCI)


def test_device_id_kind(tree):
    assert tree.device_id_kind(PCI) == "pci"
    assert tree.device_id_kind(AUX) == "aux"
    assert tree.device_id_kind("0000:00:09.0") == ""
    for bad in ("../../../etc", ".", "..", "", "a/b", "x\0y"):
        assert tree.device_id_kind(bad) == ""


@pytest.mark.parametrize("path, why", [
    ("/sys/devices/../../tmp", "must not contain"),
    ("/sys/devices/pci0000:00/./0000:00:03.0", "must not contain"),
    ("/sys/class/net/eth0", "must be absolute and begin with /sys/devices/"),
    ("sys/devices/x", "must be absolute and begin with /sys/devices/"),
    ("/sys/devices/", "names no device"),
    ("/sys/devices/x\0", "NUL"),
])
def test_kernelpath_refusals(path, why):
    with pytest.raises(ValueError, match=why):
        sysfs.kernelpath_components(path)


def test_kernelpath_does_not_follow_symlinks(tree, tmp_path):
    """A symlink planted (or kernel-made) below devices/ is not followed:
    a kernelpath names a device directory."""
    evil = tmp_path / "evil" / "net" / "eth0"
    evil.mkdir(parents=True)
    os.symlink(str(tmp_path / "evil"), f"{tree.root}/devices/virtual/planted")
    with pytest.raises(sysfs.LookupError_, match="symbolic links are not followed"):
        tree.by_kernelpath("/sys/devices/virtual/planted")
    with pytest.raises(sysfs.LookupError_, match="symbolic links are not followed"):
        tree.by_kernelpath(f"/sys/devices/pci0000:00/{PCI}/driver")


def test_bus_link_must_stay_in_sysfs(tree, tmp_path):
    pci = f"{tree.root}/bus/pci/devices"
    (tmp_path / "outside" / "net" / "eth0").mkdir(parents=True)
    os.symlink(str(tmp_path / "outside"), f"{pci}/0000:00:0a.0")        # absolute
    os.symlink("../../../../outside", f"{pci}/0000:00:0b.0")            # escapes the root
    os.symlink("../../../bus", f"{pci}/0000:00:0c.0")                   # not a device
    for addr, why in (("0000:00:0a.0", "links outside sysfs"),
                      ("0000:00:0b.0", "links outside sysfs"),
                      ("0000:00:0c.0", "does not link to a device")):
        with pytest.raises(sysfs.LookupError_, match=why):
            tree.by_pci_address(addr)


def test_other_filesystem_is_refused(tree, tmp_path):
    """A mount below the root (another st_dev) is not walked into."""
    real = tree.dev

    class Other(sysfs.Tree):
        pass
    other = Other(tree.root)
    other.fd, other.dev = tree.fd, real + 1
    with pytest.raises(sysfs.LookupError_, match="another filesystem"):
        other.by_kernelpath(f"/sys/devices/pci0000:00/{PCI}")


def test_empty_net_dir(tree):
    os.mkdir(f"{tree.root}/devices/pci0000:00/{DPDK_PCI}/net")
    with pytest.raises(sysfs.LookupError_, match="failed to find network device"):
        tree.by_pci_address(DPDK_PCI)


@pytest.mark.parametrize("text, ok", [
    ("0000:04:00.5", True), ("0000:af:1f.7", True), ("10000:00:00.0", True),
    ("0000:04:00.8", False), ("04:00.5", False), ("0000:04:00", False),
    ("../../../../tmp", False), ("0000:04:00.5/..", False), ("0000:0g:00.0", False),
])
def test_pci_address_syntax(text, ok):
    assert sysfs.is_pci_address(text) is ok


# --- config.load with the tree ---------------------------------------------------

def conf(**extra) -> dict:
    base = {"cniVersion": "1.0.0", "name": "hd", "type": "host-device"}
    base.update(extra)
    return base


ENV = {"PYCNI_STATE_DIRS": "/tmp"}


def test_device_id_pci_replaces_pci_bus_id(tree):
    s = config.load(conf(pciBusID="0000:00:09.0", runtimeConfig={"deviceID": PCI}), tree, ENV)
    assert (s.selector.kind, s.selector.value, s.pci_address, s.dpdk) == ("pci", PCI, PCI,
                                                                           False)


def test_device_id_aux(tree):
    s = config.load(conf(runtimeConfig={"deviceID": AUX}), tree, ENV)
    assert (s.selector.kind, s.selector.value, s.pci_address) == ("aux", AUX, "")


def test_device_still_beats_device_id(tree):
    s = config.load(conf(device="eth3", runtimeConfig={"deviceID": PCI}), tree, ENV)
    assert (s.selector.kind, s.selector.value) == ("device", "eth3")


def test_device_id_not_found(tree):
    with pytest.raises(CNIError) as err:
        config.load(conf(runtimeConfig={"deviceID": "../../etc"}), tree, ENV)
    assert err.value.code == 7
    assert err.value.msg == "runtime config DeviceID ../../etc not found or unsupported"


def test_dpdk_from_the_bound_driver(tree):
    s = config.load(conf(pciBusID=DPDK_PCI), tree, ENV)
    assert s.dpdk
    s = config.load(conf(pciBusID=PCI, dpdkmode=True), tree, ENV)
    assert not s.dpdk              # the driver decides when pciBusID is set
    s = config.load(conf(device="eth3", DPDKMode=True), tree, ENV)
    assert s.dpdk                  # the reference's untagged field, as Go decodes it


def test_pci_without_driver_link(tree):
    os.unlink(f"{tree.root}/devices/pci0000:00/{PCI}/driver")
    with pytest.raises(CNIError) as err:
        config.load(conf(pciBusID=PCI), tree, ENV)
    assert err.value.msg.startswith("error with host device: lstat ")


def test_identity(tree):
    net = tree.find_pci_address(PCI)
    assert net == ([*"devices/pci0000:00".split("/"), PCI, "net"], "ens3")
    assert tree.identity(net[0], "ens3") == (0, "")          # no attributes in the fake
    ens3 = f"{tree.root}/devices/pci0000:00/{PCI}/net/ens3"
    with open(f"{ens3}/ifindex", "w") as f:
        f.write("7\n")
    with open(f"{ens3}/address", "w") as f:
        f.write("02:00:00:00:00:0a\n")
    assert tree.identity(net[0], "ens3") == (7, "02:00:00:00:00:0a")
    os.unlink(f"{ens3}/address")
    os.symlink("/etc/hostname", f"{ens3}/address")            # never followed
    assert tree.identity(net[0], "ens3") == (0, "")
