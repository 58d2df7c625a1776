"""ptp: a veth pair from the host to the container, routed, no bridge.

ADD: IPAM ADD -> forwarding -> veth pair (container end in the
container, host end here) -> the container's addresses and routes
(everything via the gateway) -> the gateway's /32 (/128) on the host end
with a host route to each container address -> masquerading. Any failure
after IPAM undoes all of it (one undo.Stack: veth, masquerading, IPAM
allocation), so a failed ADD leaves nothing. See config.plan for the
layout and README.md for the keys and the differences from the reference
plugin.
"""

import errno

from pycni import invoke, netlink, netns, skel, undo
from pycni.netlink import link as rtlink, addr as rtaddr, route as rtroute
from pycni.errors import CNIError, Failures, INTERNAL, PLUGIN_NOT_AVAILABLE
from pycni.lazy import lazy
from pycni.result import Interface, Result

from . import config

# Loaded on first use: CHECK, DEL and STATUS need only some of them.
ipmasq = lazy("pycni.ipmasq")
veth = lazy("pycni.veth")
checks = lazy("pycni.plugins.ptp.check")


def _load(req: skel.Request, masq_setup: bool = False) -> config.Settings:
    """The validated config; what it accepts only for compatibility is
    reported (stderr and the operation's log line)."""
    settings = config.load(req.config, masq_setup)
    if settings.warnings:
        from pycni import log
        for text in settings.warnings:
            log.warning(f"ptp: {text}")
    return settings


# --- ADD: the two ends ---------------------------------------------------------------

def configure_container(ifname: str, result: Result, layout: config.Plan) -> None:
    """Inside the container netns: IPAM's addresses and routes, then the
    prefix routes replaced by routes through the gateway. configure_iface
    returns once IPv6 DAD has settled (a DAD failure fails ADD), which the
    routes need: the kernel refuses a `src` that is still tentative."""
    from pycni import ipconfig
    ipconfig.configure_iface(ifname, result)
    with netlink.RtNetlink() as nl:
        link = rtlink.get_link(nl, ifname)
        if link is None:
            raise CNIError(INTERNAL, f'failed to look up "{ifname}": no such interface')
        for prefix in layout.connected:
            try:
                rtroute.delete_prefix_route(nl, link.index, prefix)
            except netlink.NetlinkError as exc:
                if exc.errno != errno.ESRCH:
                    raise CNIError(INTERNAL, f"failed to delete route {prefix} dev {ifname}",
                                   exc.strerror) from None
        for r in layout.container_routes:
            try:
                rtroute.add_route(nl, r.dst, gw=r.gw, oif=link.index, scope=r.scope,
                                  src=r.src)
            except netlink.NetlinkError as exc:
                via = f"via {r.gw} " if r.gw else ""
                raise CNIError(INTERNAL, f"failed to add route {r.dst} {via}dev {ifname} "
                               f"src {r.src}", exc.strerror) from None


def configure_host(nl: netlink.RtNetlink, host: "veth.VethEnd", layout: config.Plan) -> None:
    """The gateway addresses on the host end and a host route to each
    container address through it."""
    from pycni import ipconfig
    ipconfig.add_addresses(nl, host.index, layout.host_addresses, f"veth {host.name}")
    for r in layout.host_routes:
        try:
            rtroute.add_route(nl, r.dst, oif=host.index, scope=r.scope)
        except netlink.NetlinkError as exc:
            if exc.errno != errno.EEXIST:
                raise CNIError(INTERNAL, f"failed to add route on host: {r.dst} dev "
                               f"{host.name}", exc.strerror) from None


def enable_forwarding(families: list[int]) -> None:
    from pycni import ipconfig
    for family in families:
        ipconfig.enable_forwarding(family, "Could not enable IP forwarding")


# --- the plugin ------------------------------------------------------------------------

class PtpPlugin(skel.Plugin):
    name = "ptp"
    about = "CNI ptp plugin (pycni)"

    def add(self, req: skel.Request) -> Result:
        settings = _load(req, masq_setup=True)
        netns.probe(req.netns)      # fail before IPAM allocates anything
        with netlink.RtNetlink() as nl, undo.Stack("ptp") as stack:
            ipam_result = invoke.ipam_add(req, settings.ipam_type, stack)
            if not ipam_result.ips:
                raise CNIError(INTERNAL, "IPAM plugin returned missing IP config")
            layout = config.plan(ipam_result.ips)    # refuses before any link exists
            # before the veth exists, as the reference: the host end then
            # comes up as an IPv6 router (its subnet-router anycast address)
            enable_forwarding(layout.families)
            pair = veth.setup_veth(req.netns, req.ifname, settings.mtu)
            # its peer and routes go with it
            stack.push(rtlink.delete_link, nl, pair.host.index,
                       what=f"deleting {pair.host.name}")
            result = config.build_result(
                req.cni_version, ipam_result,
                Interface(name=pair.host.name, mac=pair.host.mac),
                Interface(name=pair.container.name, mac=pair.container.mac, sandbox=req.netns),
                settings.dns)
            with netns.entered(req.netns):
                configure_container(req.ifname, result, layout)
            configure_host(nl, pair.host, layout)
            host = rtlink.get_link_by_index(nl, pair.host.index)
            if host is not None:
                result.interfaces[0].mac = host.mac
            masq_ips = [ip.address for ip in result.ips] if settings.conf.ip_masq else []
            if masq_ips:
                ipmasq.setup(settings.conf.ip_masq_backend, masq_ips, req.network_name,
                             req.ifname, req.container_id)
                stack.push(ipmasq.teardown, masq_ips, req.network_name, req.ifname,
                           req.container_id, what="removing IP masquerading")
            prev = req.prev_result
            if prev is not None:
                # Not first in a chain: keep what earlier plugins reported
                # (the reference drops it).
                from pycni.result import merge
                result = merge(prev, result)
            # fail now, while everything can be undone, not when printing
            result.to_dict(req.cni_version)
            stack.commit()
        return result

    def delete(self, req: skel.Request) -> None:
        """The container link (its host end goes with it), IPAM, then the
        masquerading rules, also when the netns is gone or CNI_NETNS is
        empty (the rules are found by name; plugins#810)."""
        settings = config.load_for_delete(req.config)
        removed = None
        if req.netns:
            try:
                removed = veth.delete_in_netns(req.netns, req.ifname)
            except netns.GONE:
                pass   # the container is gone, and its veth pair with it
        ipam_error = None
        if settings.ipam_type:
            try:
                invoke.delegate_del(req, settings.ipam_type)
            except CNIError as err:
                ipam_error = err
        if settings.ip_masq:
            ips = [a.cidr for a in removed] if removed else req.prev_addresses()
            ipmasq.teardown(ips, req.network_name, req.ifname, req.container_id)
        if ipam_error is not None:
            raise ipam_error

    def check(self, req: skel.Request) -> None:
        settings = _load(req)
        netns.probe(req.netns)
        invoke.delegate_check(req, settings.ipam_type)
        prev = checks.require_prev_result(req.prev_result, checks.PREV_MISSING)
        intf = checks.container_interface(prev, req.ifname, req.netns, name_other=False)
        ips = checks.own_ips(prev, intf)
        layout = config.plan(ips)
        from pycni import containerlink
        with containerlink.socket_in(req.netns) as cnl:
            link = rtlink.get_link(cnl, intf.name) if intf.name else None
            checks.check_container_link(intf, link)
            from pycni import checks as common
            addresses = [a.cidr for a in rtaddr.list_addresses(cnl, link.index)]
            routes = rtroute.list_routes_ecmp(cnl)    # multipath next hops expanded
            common.check_addresses(req.ifname, ips, addresses, [r.dst for r in routes])
            common.check_routes(prev.routes, lambda table: routes if table is None else
                                rtroute.list_routes_ecmp(cnl, table=table))
            checks.check_container_routes(req.ifname, layout, routes, link.index)
        with netlink.RtNetlink() as hnl:
            host = rtlink.get_link_by_index(hnl, link.link) if link.link else None
            checks.check_host_peer(checks.host_interface(prev, intf), link, host)
            checks.check_host_state(host.name, layout,
                                    [a.cidr for a in rtaddr.list_addresses(hnl, host.index)],
                                    rtroute.list_routes(hnl), host.index)

    def gc(self, req: skel.Request) -> None:
        """IPAM GC, then the masquerading rules of this network's
        attachments that are not listed (any backend, also when ipMasq was
        switched off since). Both run even if the other fails."""
        settings = config.load_for_delete(req.config)
        valid = [(a.container_id, a.ifname) for a in req.valid_attachments]
        failures = Failures()
        if settings.ipam_type:
            with failures:
                invoke.delegate_gc(req, settings.ipam_type)
        with failures:
            ipmasq.gc(req.network_name, valid)
        failures.raise_any()

    def status(self, req: skel.Request) -> None:
        """Code 50 when an ADD could not work: ipMasq's firewall tools are
        missing or the IPAM plugin is not on CNI_PATH; then IPAM's STATUS."""
        settings = _load(req, masq_setup=True)
        conf = settings.conf
        if conf.ip_masq and not ipmasq.available(conf.ip_masq_backend):
            raise CNIError(PLUGIN_NOT_AVAILABLE,
                           f"ipMasq needs the {conf.ip_masq_backend or 'iptables'} "
                           "tools, which are not installed")
        try:
            invoke.find_in_path(settings.ipam_type, req.path)
        except CNIError as err:
            raise CNIError(PLUGIN_NOT_AVAILABLE, err.msg, err.details) from None
        invoke.delegate_status(req, settings.ipam_type)


def main() -> None:
    skel.main(PtpPlugin())


if __name__ == "__main__":
    main()
