"""veth pairs between a container and the host (bridge, ptp).

The pair is created from inside the container with the peer placed
directly in the host namespace, so the container end never appears on the
host under its (possibly clashing) container name. The host end is named
`veth` + 8 random hex digits, like the reference (NetworkManager ignores
`veth*`); a name collision with a parallel ADD is retried up to 10 times.
Every host end gets accept_ra=0 (CVE-2020-10749: a container must not be
able to steer the host with rogue IPv6 Router Advertisements).
"""

import errno
from . import posixos as os
from .model import dataclass

from . import netlink, netns, sysctl
from .netlink import link as rtlink, addr as rtaddr
from .errors import CNIError, INTERNAL

NAME_TRIES = 10


@dataclass
class VethEnd:
    name: str
    index: int
    mac: str


@dataclass
class VethPair:
    host: VethEnd          # in the namespace this process runs in
    container: VethEnd     # in the container namespace


def random_veth_name() -> str:
    return "veth" + os.urandom(4).hex()


def _end(link: rtlink.Link) -> VethEnd:
    return VethEnd(name=link.name, index=link.index, mac=link.mac)


def setup_veth(container_netns: str, ifname: str, mtu: int = 0,
               container_mac: str = "", host_name: str = "") -> VethPair:
    """Create `ifname` in `container_netns` and its peer here; bring the
    host end up. The container end is left down (the caller configures it).

    `host_name` fixes the host end's name (no retry on a collision).
    """
    host_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with netns.entered(container_netns):
            cnl = netlink.RtNetlink()
    except BaseException:
        os.close(host_fd)
        raise
    try:
        with cnl, netlink.RtNetlink() as hnl:
            peer, container = _make_pair(cnl, hnl, host_fd, ifname, host_name, mtu,
                                         container_mac)
            try:
                host = rtlink.get_link(hnl, peer)
                if host is None:
                    raise CNIError(INTERNAL, f'failed to lookup "{peer}": no such interface')
                rtlink.set_link_up(hnl, host.index)
                # we own the routes of this interface, not the container
                try:
                    sysctl.write("0", "net", "ipv6", "conf", peer, "accept_ra")
                except OSError:
                    pass   # IPv6 disabled on the host: nothing to protect
            except BaseException:
                _quiet_delete(cnl, container.index)
                raise
            return VethPair(host=_end(host), container=_end(container))
    finally:
        os.close(host_fd)


def _make_pair(cnl, hnl, host_fd: int, ifname: str, host_name: str, mtu: int,
               mac: str) -> tuple[str, rtlink.Link]:
    peer = host_name
    for _ in range(NAME_TRIES):
        peer = host_name or random_veth_name()
        try:
            rtlink.create_veth(cnl, ifname, peer, peer_netns_fd=host_fd, mtu=mtu, mac=mac)
        except netlink.NetlinkError as exc:
            if exc.errno == errno.EEXIST:
                if not host_name and rtlink.get_link(hnl, peer) is not None:
                    continue   # our random host name is taken: draw another
                raise CNIError(INTERNAL, f'container veth name ("{ifname}") peer provided '
                               f'("{peer}") already exists') from None
            raise CNIError(INTERNAL, f"failed to make veth pair: {exc.strerror}") from None
        link = rtlink.get_link(cnl, ifname)
        if link is None:
            raise CNIError(INTERNAL, f'failed to lookup "{ifname}" after creating it')
        return peer, link
    raise CNIError(INTERNAL, "failed to find a unique veth name")


def _quiet_delete(nl, index: int) -> None:
    try:
        rtlink.delete_link(nl, index)
    except OSError:
        pass


def delete_in_netns(container_netns: str, ifname: str,
                    found=None) -> list[rtaddr.Address] | None:
    """Delete `ifname` in the container (its peer goes with it) and return
    its global unicast addresses; None if the link is not there.
    `found(addresses)`, if given, is called just before the delete (which
    blocks ~20 ms in the kernel): work started there overlaps it."""
    with netns.entered(container_netns):
        nl = netlink.RtNetlink()
    with nl:
        link = rtlink.get_link(nl, ifname)
        if link is None:
            return None
        addresses = [a for a in rtaddr.list_addresses(nl, link.index)
                     if _global_unicast(a)]
        if found is not None:
            found(addresses)
        try:
            rtlink.delete_link(nl, link.index)
        except netlink.NetlinkError as exc:
            if exc.errno in (errno.ENODEV, errno.ENOENT):
                return None    # a parallel DEL won
            raise CNIError(INTERNAL, f'failed to delete "{ifname}"', exc.strerror) from None
        return addresses


def _global_unicast(addr: rtaddr.Address) -> bool:
    """Go's net.IP.IsGlobalUnicast, without importing ipaddress (start-up
    time): not unspecified, loopback, multicast, link-local or broadcast."""
    import _socket as socket  # the C module: `socket` costs ~8 ms more
    raw = socket.inet_pton(addr.family, addr.address)
    if addr.family == socket.AF_INET:
        return not (raw == b"\0" * 4 or raw == b"\xff" * 4 or raw[0] == 127
                    or raw[0] >> 4 == 14 or raw[:2] == b"\xa9\xfe")
    return not (raw == b"\0" * 16 or raw == b"\0" * 15 + b"\1" or raw[0] == 0xFF
                or (raw[0] == 0xFE and raw[1] & 0xC0 == 0x80))
