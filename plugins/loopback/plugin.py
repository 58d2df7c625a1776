"""loopback: bring `lo` up in the container (ADD) and down again (DEL).

Every runtime runs it for every pod (containerd runs it concurrently with
the pod's eth0 chain). CNI_IFNAME is validated but ignored: the interface
is always `lo`, as in the reference plugin.
"""

from pycni import netlink, netns, skel
from pycni.netlink import link as rtlink, addr as rtaddr
from pycni.errors import CNIError, INTERNAL
from pycni.result import Interface, IPConfig, Result

LOOPBACK_MAC = "00:00:00:00:00:00"


def build_result(addresses: list[str], sandbox: str, cni_version: str) -> Result:
    """The reference's result: lo plus its first IPv4 and first IPv6 address."""
    result = Result(cni_version=cni_version,
                    interfaces=[Interface(name="lo", mac=LOOPBACK_MAC, sandbox=sandbox)])
    for family in (4, 6):
        first = next((a for a in addresses if (":" in a) == (family == 6)), None)
        if first:
            result.ips.append(IPConfig(address=first, interface=0))
    return result


def non_loopback(addresses: list[str]) -> list[str]:
    from pycni import ipaddr
    return [a for a in addresses
            if not ipaddr.ip_interface(a).ip.is_loopback]


def _lo_socket(path: str) -> netlink.RtNetlink:
    with netns.entered(path):
        return netlink.RtNetlink()


def _lo(nl: netlink.RtNetlink) -> rtlink.Link:
    link = rtlink.get_link(nl, "lo")
    if link is None:
        raise CNIError(INTERNAL, "no loopback interface in the container")
    return link


class LoopbackPlugin(skel.Plugin):
    name = "loopback"

    def add(self, req: skel.Request) -> Result:
        with _lo_socket(req.netns) as nl:
            lo = _lo(nl)
            addresses = [a.cidr for a in rtaddr.list_addresses(nl, lo.index)]
            foreign = non_loopback(addresses)
            if foreign:   # checked before touching lo: a failed ADD changes nothing
                raise CNIError(INTERNAL, "loopback interface found with non-loopback address",
                               foreign[0])
            rtlink.set_link_up(nl, lo.index)
            # the kernel (re)adds 127.0.0.1 and ::1 when lo comes up
            addresses = [a.cidr for a in rtaddr.list_addresses(nl, lo.index)]
        prev = req.prev_result
        if prev is not None:
            return prev  # chained after another plugin: pass its result through
        return build_result(addresses, req.netns, req.cni_version)

    def delete(self, req: skel.Request) -> None:
        if not req.netns:
            return
        try:
            nl = _lo_socket(req.netns)
        except netns.GONE:
            return  # the container is gone: nothing left to undo
        with nl:
            lo = rtlink.get_link(nl, "lo")
            if lo is not None:
                rtlink.set_link_up(nl, lo.index, up=False)

    def check(self, req: skel.Request) -> None:
        with _lo_socket(req.netns) as nl:
            if not _lo(nl).is_up:
                raise CNIError(INTERNAL, "loopback interface is down")


def main() -> None:
    skel.main(LoopbackPlugin())


if __name__ == "__main__":
    main()
