"""bandwidth: limit a container's traffic with token buckets (chained plugin).

ADD finds the host end of the container's veth (CNI_IFNAME's peer, which
prevResult must list as an interface without sandbox), then:
  - ingress (traffic to the container): a TBF qdisc 1: at the root of the
    host veth, which is where that traffic leaves the host;
  - egress (traffic from the container): an IFB device `bwp<hash>` with the
    host veth's MTU, an ingress qdisc on the host veth whose u32 filter
    redirects every packet to the IFB, and a TBF qdisc 1: on the IFB.
The result is prevResult plus the IFB interface. Without limits ADD
passes prevResult through. If a step fails, what ADD made is removed.

DEL deletes the IFB and, on the host interfaces prevResult lists, the
ingress qdisc whose filter redirects to it (the TBF goes with the veth,
which the interface plugin deletes next); it needs neither the netns nor
prevResult. CHECK verifies the qdiscs, their parameters and the redirect.
"""

import errno

from pycni import netlink, netns, skel, undo
from pycni.netlink import link as rtlink
from pycni.errors import CNIError, INTERNAL, INVALID_NETWORK_CONFIG
from pycni.result import Interface, Result
from pycni.version import ALL, at_least

from . import tc
from .config import (BandwidthConf, BandwidthEntry, Clock, accepted_readbacks, ifb_name,
                     parse_config, tbf_params)

SUPPORTED = tuple(v for v in ALL if at_least(v, "0.3.0"))


def find_host_interface(interfaces: list[Interface], ifname: str,
                        netns_path: str, nl: netlink.RtNetlink) -> rtlink.Link:
    """The host link that is the veth peer of `ifname` in the container and
    is listed in `interfaces` without a sandbox."""
    if not interfaces:
        raise CNIError(INTERNAL, "no interfaces provided")
    with netns.entered(netns_path):
        ctr_nl = netlink.RtNetlink()
    with ctr_nl:
        link = rtlink.get_link(ctr_nl, ifname)
    if link is None or link.kind != "veth" or link.link <= 0:
        raise CNIError(INTERNAL, f"container interface {ifname} has no veth peer",
                       "not found" if link is None else f"{link.name} is a {link.kind or 'device'}"
                       " without a veth peer")
    peer = rtlink.get_link_by_index(nl, link.link)
    if peer is None:
        raise CNIError(INTERNAL, f"veth peer with index {link.link} is not in host ns")
    if not any(i.name == peer.name and not i.sandbox for i in interfaces):
        raise CNIError(INTERNAL, "no veth peer of container interface found in host ns",
                       f"{peer.name} is not among prevResult's host interfaces")
    return peer


def _failed(what: str, exc: OSError) -> CNIError:
    return CNIError(INTERNAL, what, exc.strerror or str(exc))


class Shaper:
    """Applies one attachment's limits in the current (host) namespace;
    what it makes is undone by `stack` if a later step fails."""

    def __init__(self, nl: netlink.RtNetlink, host: rtlink.Link, clock: Clock,
                 stack: undo.Stack):
        self.nl, self.host, self.clock, self.stack = nl, host, clock, stack

    def ingress(self, rate: int, burst: int) -> None:
        try:
            tc.add_tbf(self.nl, self.host.index, tbf_params(rate, burst, self.clock))
        except OSError as exc:
            raise _failed(f"create qdisc on {self.host.name}", exc) from None
        self.stack.push(tc.delete_qdisc, self.nl, self.host.index, tc.TC_H_ROOT,
                        tc.TBF_HANDLE, what=f"deleting the qdisc on {self.host.name}")

    def egress(self, rate: int, burst: int, ifb: str) -> rtlink.Link:
        try:
            # queue length 0, as the reference's netlink library leaves it
            rtlink.create_link(self.nl, ifb, "ifb", mtu=self.host.mtu, up=True, txqlen=0)
        except OSError as exc:
            raise _failed(f"adding link {ifb}", exc) from None
        device = rtlink.get_link(self.nl, ifb)
        if device is None:
            raise CNIError(INTERNAL, f"ifb device {ifb} vanished")
        self.stack.push(rtlink.delete_link, self.nl, device.index, what=f"deleting {ifb}")
        try:
            tc.add_ingress(self.nl, self.host.index)
        except OSError as exc:
            raise _failed(f"create ingress qdisc on {self.host.name}", exc) from None
        self.stack.push(tc.delete_qdisc, self.nl, self.host.index, tc.TC_H_INGRESS,
                        tc.INGRESS_HANDLE,
                        what=f"deleting the ingress qdisc on {self.host.name}")
        try:
            tc.add_redirect(self.nl, self.host.index, device.index)
        except OSError as exc:
            raise _failed(f"add filter on {self.host.name}", exc) from None
        try:
            tc.add_tbf(self.nl, device.index, tbf_params(rate, burst, self.clock))
        except OSError as exc:
            raise _failed(f"create ifb qdisc on {ifb}", exc) from None
        return device


def apply(conf: BandwidthConf, bw: BandwidthEntry, prev: Result, req: skel.Request) -> Result:
    with netlink.RtNetlink() as nl, undo.Stack("bandwidth") as stack:
        host = find_host_interface(prev.interfaces, req.ifname, req.netns, nl)
        shaper = Shaper(nl, host, Clock.read(), stack)
        if bw.shapes_ingress:
            shaper.ingress(bw.ingress_rate, bw.ingress_burst)
        if bw.shapes_egress:
            device = shaper.egress(bw.egress_rate, bw.egress_burst,
                                   ifb_name(conf.name, req.container_id))
            prev.interfaces.append(Interface(name=device.name, mac=device.mac))
        stack.commit()
    return prev


# --- CHECK ------------------------------------------------------------------------

def check_tbf(nl: netlink.RtNetlink, link: rtlink.Link, rate: int, burst: int,
              clock: Clock) -> None:
    """The root qdisc of `link` is our TBF with the configured parameters."""
    root = next((q for q in tc.list_qdiscs(nl, link.index) if q.parent == tc.TC_H_ROOT), None)
    if root is None or root.tbf is None:
        raise CNIError(INTERNAL, "Failed to find qdisc",
                       f"no tbf qdisc at the root of {link.name}"
                       + (f" (found {root.kind})" if root else ""))
    want = tbf_params(rate, burst, clock)
    limits, buffers = accepted_readbacks(rate, burst, clock)
    for name, ok, expected, actual in (
            ("Rate", root.tbf.rate == want.rate, want.rate, root.tbf.rate),
            ("Limit", root.tbf.limit in limits, want.limit, root.tbf.limit),
            ("Buffer", root.tbf.buffer in buffers, want.buffer, root.tbf.buffer)):
        if not ok:
            raise CNIError(INTERNAL, f"{name} doesn't match",
                           f"{link.name}: expected {expected}, found {actual}")


def check_redirect(nl: netlink.RtNetlink, host: rtlink.Link, device: rtlink.Link) -> None:
    qdiscs = tc.list_qdiscs(nl, host.index)
    if not any(q.kind == "ingress" and q.handle == tc.INGRESS_HANDLE for q in qdiscs):
        raise CNIError(INTERNAL, f"no ingress qdisc on {host.name}")
    filters = tc.list_filters(nl, host.index, tc.INGRESS_HANDLE)
    if not any(r.ifindex == device.index and r.eaction == tc.TCA_EGRESS_REDIR
               for f in filters for r in f.redirects):
        raise CNIError(INTERNAL, f"no filter on {host.name} redirects to {device.name}")


def host_candidates(req: skel.Request) -> list[str]:
    """Host-side interfaces of prevResult (DEL may have none)."""
    try:
        prev = req.prev_result
    except CNIError:
        return []
    return [i.name for i in prev.interfaces if not i.sandbox] if prev else []


def remove_redirects(nl: netlink.RtNetlink, names: list[str], device: rtlink.Link) -> None:
    """Delete the ingress qdisc (and so its filters) of each link in `names`
    whose filter redirects to `device`: such a qdisc is this attachment's."""
    for name in names:
        link = rtlink.get_link(nl, name)
        if link is None:
            continue
        try:
            filters = tc.list_filters(nl, link.index, tc.INGRESS_HANDLE)
            if any(r.ifindex == device.index for f in filters for r in f.redirects):
                tc.delete_qdisc(nl, link.index, tc.TC_H_INGRESS, tc.INGRESS_HANDLE)
        except OSError:
            pass   # best effort: the veth is about to go anyway


class BandwidthPlugin(skel.Plugin):
    name = "bandwidth"
    supported_versions = SUPPORTED

    def add(self, req: skel.Request) -> Result:
        conf = parse_config(req.config)
        prev = req.prev_result
        if prev is None:
            raise CNIError(INVALID_NETWORK_CONFIG, "must be called as chained plugin")
        bw = conf.bandwidth
        if bw is None or bw.is_zero():
            return prev
        return apply(conf, bw, prev, req)

    def delete(self, req: skel.Request) -> None:
        """Delete the IFB, and first the redirect to it: once the IFB is gone
        that filter drops everything the container sends, which matters if
        the veth outlives this DEL. DEL does not read the limits, so a config
        that ADD refused still cleans up."""
        name = ifb_name(req.network_name, req.container_id)
        with netlink.RtNetlink() as nl:
            link = rtlink.get_link(nl, name)
            if link is None or link.kind != "ifb":
                return
            remove_redirects(nl, host_candidates(req), link)
            try:
                rtlink.delete_link(nl, link.index)
            except netlink.NetlinkError as exc:
                if exc.errno != errno.ENODEV:   # deleted meanwhile
                    raise _failed(f"failed to delete {name}", exc) from None

    def check(self, req: skel.Request) -> None:
        conf = parse_config(req.config)
        prev = req.prev_result
        if prev is None:
            raise CNIError(INVALID_NETWORK_CONFIG, "must be called as a chained plugin")
        bw = conf.bandwidth or BandwidthEntry()
        clock = Clock.read()
        with netlink.RtNetlink() as nl:
            host = find_host_interface(prev.interfaces, req.ifname, req.netns, nl)
            if bw.shapes_ingress:
                check_tbf(nl, host, bw.ingress_rate, bw.ingress_burst, clock)
            if bw.shapes_egress:
                name = ifb_name(conf.name, req.container_id)
                device = rtlink.get_link(nl, name)
                if device is None:
                    raise CNIError(INTERNAL, f"get ifb device: {name} not found")
                check_tbf(nl, device, bw.egress_rate, bw.egress_burst, clock)
                check_redirect(nl, host, device)


def main() -> None:
    skel.main(BandwidthPlugin())


if __name__ == "__main__":
    main()
