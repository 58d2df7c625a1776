"""bridge: connect the container to a Linux bridge on the host with a veth
pair, addresses from IPAM, the bridge optionally acting as gateway.

ADD: ensure bridge -> veth (container end in the container, host end on
the bridge) -> MAC spoof check -> IPAM ADD -> container sysctls and
addresses -> gateway address on the bridge, forwarding -> masquerading ->
wait for the port to come up. Any failure after the veth exists undoes
all of it (one undo.Stack: veth, spoof check, IPAM allocation,
masquerading), so a failed ADD leaves nothing behind. See README.md for the keys and the differences
from the reference plugin.
"""

import errno
from pycni import posixos as os
import time

from pycni import invoke, netlink, netns, skel, undo
from pycni.netlink import link as rtlink, addr as rtaddr
from pycni.errors import CNIError, INTERNAL, PLUGIN_NOT_AVAILABLE
from pycni.lazy import lazy
from pycni.result import DNS, Interface, Result

from . import config

# Loaded on first use: CHECK needs none of them.
ipmasq = lazy("pycni.ipmasq")
sysctl = lazy("pycni.sysctl")
veth = lazy("pycni.veth")
gateway = lazy("pycni.plugins.bridge.gateway")
spoofcheck = lazy("pycni.plugins.bridge.spoofcheck")
bridge_check = lazy("pycni.plugins.bridge.check")     # CHECK only

IF_OPER_UP = 6
OPER_STATES = {0: "unknown", 1: "notpresent", 2: "down", 3: "lowerlayerdown",
               4: "testing", 5: "dormant", 6: "up"}
PORT_UP_WAITS_MS = (0, 50, 500, 1000, 1000)


def _settings(req: skel.Request) -> config.Settings:
    return config.load(req.config, req.cni_args)


# --- the bridge ----------------------------------------------------------------

def ensure_bridge(nl: netlink.RtNetlink, conf: config.BridgeConf) -> rtlink.Link:
    """Create the bridge or reuse it; parallel ADDs may race to create it."""
    name = conf.bridge
    try:
        # A MAC of our own from the start: left alone, the bridge takes the
        # lowest port MAC and changes whenever containers come and go (the
        # result and CHECK would disagree; the reference pins it only with
        # isGateway). Set at creation, the kernel also derives the bridge ID
        # from it and reports the bridge's operstate normally.
        rtlink.create_bridge(nl, name, mtu=conf.mtu, mac=rtlink.random_mac())
    except netlink.NetlinkError as exc:
        if exc.errno != errno.EEXIST:   # it is there already (maybe just made)
            raise CNIError(INTERNAL, f'failed to create bridge "{name}": could not add '
                           f'"{name}": {exc.strerror}') from None
    br = bridge_by_name(nl, name)
    if conf.promisc_mode:
        rtlink.set_promisc(nl, br.index, True)
    try:
        sysctl.write("0", "net", "ipv6", "conf", name, "accept_ra")
    except OSError:
        pass
    rtlink.set_link_up(nl, br.index)
    return bridge_by_name(nl, name)


def bridge_by_name(nl: netlink.RtNetlink, name: str) -> rtlink.Link:
    link = rtlink.get_link(nl, name)
    if link is None:
        raise CNIError(INTERNAL, f'could not lookup "{name}": Link not found')
    if link.kind != "bridge":
        raise CNIError(INTERNAL, f'failed to create bridge "{name}": '
                       f'"{name}" already exists but is not a bridge')
    return link


def ensure_addr(nl: netlink.RtNetlink, br: rtlink.Link, cidr: str, force: bool) -> None:
    """Put gateway `cidr` on the bridge (reference ensureAddr semantics)."""
    import _socket as socket  # the C module: `socket` costs ~8 ms more
    family = socket.AF_INET6 if ":" in cidr else socket.AF_INET
    wanted = gateway.normalize_cidr(cidr)
    for addr in rtaddr.list_addresses(nl, br.index, family):
        if gateway.normalize_cidr(addr.cidr) == wanted:
            return
        if gateway.conflicts(addr.cidr, wanted):
            if not force:
                raise CNIError(INTERNAL, f'failed to set bridge addr: "{br.name}" already '
                               f"has an IP address different from {wanted}")
            try:
                rtaddr.del_address(nl, br.index, addr.cidr)
            except netlink.NetlinkError as exc:
                raise CNIError(INTERNAL, f'could not remove IP address from "{br.name}"',
                               exc.strerror) from None
    try:
        rtaddr.add_address(nl, br.index, wanted)
    except netlink.NetlinkError as exc:
        if exc.errno != errno.EEXIST:
            raise CNIError(INTERNAL, f'failed to set bridge addr: could not add IP address '
                           f'{wanted} to "{br.name}": {exc.strerror}') from None
    # Pin the bridge MAC: otherwise it follows the lowest port MAC and
    # changes as containers come and go.
    current = rtlink.get_link_by_index(nl, br.index)
    if current is not None and current.mac:
        rtlink.set_mac(nl, br.index, current.mac)


def enable_forwarding(family: int) -> None:
    from pycni import ipconfig
    ipconfig.enable_forwarding(family, "failed to enable forwarding")


# --- the container side ----------------------------------------------------------

def container_sysctls(ifname: str, enable_dad: bool) -> None:
    """Inside the container netns; failures are ignored (as the reference
    does): a key can be missing when IPv6 is disabled."""
    wanted = [("1", "net", "ipv6", "conf", ifname, "enhanced_dad"),
              ("1", "net", "ipv6", "conf", ifname, "accept_dad")] if enable_dad else \
        [("0", "net", "ipv6", "conf", ifname, "accept_dad")]
    wanted.append(("1", "net", "ipv4", "conf", ifname, "arp_notify"))
    for value, *parts in wanted:
        try:
            sysctl.write(value, *parts)
        except OSError:
            pass


def set_container_up(netns_path: str, ifname: str) -> None:
    with netns.entered(netns_path):
        nl = netlink.RtNetlink()
    with nl:
        link = rtlink.get_link(nl, ifname)
        if link is None:
            raise CNIError(INTERNAL, f"failed to retrieve link: {ifname} not found")
        rtlink.set_link_up(nl, link.index)


def wait_port_up(nl: netlink.RtNetlink, index: int) -> rtlink.Link:
    link = None
    for delay in PORT_UP_WAITS_MS:
        if delay:
            time.sleep(delay / 1000)
        link = rtlink.get_link_by_index(nl, index)
        if link is None:
            raise CNIError(INTERNAL, "host veth vanished while waiting for it to come up")
        if link.operstate == IF_OPER_UP:
            return link
    raise CNIError(INTERNAL, "bridge port in error state: "
                   f"{OPER_STATES.get(link.operstate, link.operstate)}")


def dns_override(conf: config.BridgeConf) -> DNS | None:
    d = conf.dns
    if d.nameservers or d.domain or d.search or d.options:
        return DNS(nameservers=list(d.nameservers), domain=d.domain,
                   search=list(d.search), options=list(d.options))
    return None


def _teardown_spoofcheck_quietly(ref: str) -> None:
    try:
        spoofcheck.teardown(ref)
    except (CNIError, OSError, ValueError) as err:
        import sys
        sys.stderr.write(f"bridge: removing the MAC spoof check failed: {err}\n")


def attach_port(nl: netlink.RtNetlink, br: rtlink.Link, port,
                conf: config.BridgeConf) -> None:
    """Make host veth `port` a port of `br`, with hairpin mode and port
    isolation as configured."""
    try:
        rtlink.set_master(nl, port.index, br.index)
    except netlink.NetlinkError as exc:
        raise CNIError(INTERNAL, f'failed to connect "{port.name}" to bridge '
                       f"{br.name}: {exc.strerror}") from None
    try:
        rtlink.set_bridge_port(nl, port.index, hairpin=conf.hairpin_mode,
                                isolated=conf.port_isolation or None)
    except netlink.NetlinkError as exc:
        raise CNIError(INTERNAL, f"failed to setup hairpin mode / isolation for "
                       f"{port.name}: {exc.strerror}") from None


def configure_l3(req: skel.Request, settings: config.Settings, nl: netlink.RtNetlink,
                 br: rtlink.Link, result: Result) -> None:
    """`result` carries IPAM's addresses: fill in the gateways and default
    routes, configure the container end, and make the bridge the gateway
    (its addresses, forwarding) if it is one."""
    conf = settings.conf
    gws = gateway.calc_gateways(result, conf.is_gateway, conf.is_default_gateway)
    from pycni.ipconfig import configure_iface
    with netns.entered(req.netns):
        container_sysctls(req.ifname, conf.enabledad)
        configure_iface(req.ifname, result)
    if settings.is_gateway:
        for family in (4, 6):
            cidrs = gws.of(family)
            for cidr in cidrs:
                ensure_addr(nl, br, cidr, conf.force_address)
            if cidrs:
                enable_forwarding(family)


# --- the plugin ---------------------------------------------------------------------

class BridgePlugin(skel.Plugin):
    name = "bridge"

    def add(self, req: skel.Request) -> Result:
        settings = _settings(req)
        config.validate_add(settings)
        conf = settings.conf
        os.close(netns.open_netns(req.netns))   # fail before touching the host
        with netlink.RtNetlink() as nl, undo.Stack("bridge") as stack:
            # The bridge stays on failure: other attachments may share it.
            br = ensure_bridge(nl, conf)
            pair = veth.setup_veth(req.netns, req.ifname, conf.mtu, settings.mac)
            # deleting the host end takes the container end with it
            stack.push(rtlink.delete_link, nl, pair.host.index,
                       what=f"deleting {pair.host.name}")
            attach_port(nl, br, pair.host, conf)
            if conf.macspoofchk:
                spoof_ref = spoofcheck.ref_id(req.container_id, req.ifname)
                spoofcheck.setup(pair.host.name, pair.container.mac, spoof_ref)
                stack.push(spoofcheck.teardown, spoof_ref, what="removing the MAC spoof check")
            result = Result(cni_version=req.cni_version, interfaces=[
                Interface(name=br.name, mac=br.mac),
                Interface(name=pair.host.name, mac=pair.host.mac),
                Interface(name=pair.container.name, mac=pair.container.mac, sandbox=req.netns),
            ])
            if settings.layer3:
                ipam_result = invoke.ipam_add(req, conf.ipam.type, stack)
                if not ipam_result.ips:
                    raise CNIError(INTERNAL, "IPAM plugin returned missing IP config")
                result.ips = ipam_result.ips
                result.routes = ipam_result.routes
                result.dns = ipam_result.dns
                masq_ips = [ip.address for ip in result.ips] if conf.ip_masq else []
                masq = None
                if masq_ips:
                    # The firewall exec runs while the container is configured
                    # (its kernel waits overlap ours); the undo waits for it and
                    # removes whatever of it applied.
                    masq_args = (masq_ips, req.network_name, req.ifname, req.container_id)
                    masq = ipmasq.start_setup(conf.ip_masq_backend, *masq_args)
                    stack.push(ipmasq.undo_setup, masq, *masq_args,
                               what="removing IP masquerading")
                configure_l3(req, settings, nl, br, result)
                if masq is not None:
                    masq.finish()
            elif not conf.disable_container_interface:
                set_container_up(req.netns, req.ifname)
            # Wait for the port, then report the MACs as they are now: the
            # host end's and the bridge's may have changed meanwhile.
            host: rtlink.Link | None
            if not conf.disable_container_interface:
                host = wait_port_up(nl, pair.host.index)
            else:
                host = rtlink.get_link_by_index(nl, pair.host.index)
            if host is not None:
                result.interfaces[1].mac = host.mac
            result.interfaces[0].mac = bridge_by_name(nl, conf.bridge).mac
            # A layer-2 result has no IP for a 0.1.0/0.2.0 result: fail now,
            # while everything can still be undone, not when printing.
            result.to_dict(req.cni_version)
            override = dns_override(conf)
            if override is not None:
                result.dns = override
            prev = req.prev_result
            if prev is not None:
                # Not first in a chain: keep what earlier plugins reported
                # (the reference drops it).
                from pycni.result import merge
                result = merge(prev, result)
            stack.commit()
        return result

    def delete(self, req: skel.Request) -> None:
        settings = _settings(req)
        conf = settings.conf
        masq = None

        def start_masq_teardown(removed) -> None:
            # The chain is found by name, so this also works when the
            # interface (and its addresses) vanished with the netns; the
            # addresses only say which families to look at. Its exec runs
            # while the veth is deleted (both are kernel waits) and IPAM
            # releases the addresses.
            nonlocal masq
            if masq is None and settings.layer3 and conf.ip_masq:
                ips = [a.cidr for a in removed] if removed else req.prev_addresses()
                masq = ipmasq.start_teardown(ips, req.network_name, req.ifname,
                                             req.container_id)
        try:
            if req.netns:
                try:
                    veth.delete_in_netns(req.netns, req.ifname, start_masq_teardown)
                except netns.GONE:
                    # The container is gone, and its veth with it: the path no
                    # longer exists, or the runtime unmounted the namespace and
                    # left the mount-point file behind. Release the rest.
                    pass
            start_masq_teardown(None)
            if settings.layer3:
                invoke.delegate_del(req, conf.ipam.type)
            if conf.macspoofchk:
                _teardown_spoofcheck_quietly(spoofcheck.ref_id(req.container_id, req.ifname))
            if masq is not None:
                masq.finish()
        finally:
            if masq is not None:
                masq.reap()     # an exception above: wait for the exec all the same

    def check(self, req: skel.Request) -> None:
        settings = _settings(req)
        netns.probe(req.netns)
        if settings.layer3:
            invoke.delegate_check(req, settings.conf.ipam.type)
        from pycni import checks
        prev = checks.require_prev_result(req.prev_result)
        bridge_check.check_attachment(settings, req.netns, req.ifname, prev)

    def status(self, req: skel.Request) -> None:
        """Code 50 when an ADD could not work: the bridge name is taken by a
        link of another kind, ipMasq's firewall tools are missing, or the
        IPAM plugin is not on CNI_PATH; then IPAM's own STATUS."""
        settings = _settings(req)
        conf = settings.conf
        with netlink.RtNetlink() as nl:
            link = rtlink.get_link(nl, conf.bridge)
        if link is not None and link.kind != "bridge":
            raise CNIError(PLUGIN_NOT_AVAILABLE,
                           f'"{conf.bridge}" already exists but is not a bridge')
        if conf.ip_masq and settings.layer3 and not ipmasq.available(conf.ip_masq_backend):
            raise CNIError(PLUGIN_NOT_AVAILABLE,
                           f"ipMasq needs the {conf.ip_masq_backend or 'iptables'} "
                           "tools, which are not installed")
        if settings.layer3:
            try:
                invoke.find_in_path(conf.ipam.type, req.path)
            except CNIError as err:
                raise CNIError(PLUGIN_NOT_AVAILABLE, err.msg, err.details) from None
            invoke.delegate_status(req, conf.ipam.type)

    def gc(self, req: skel.Request) -> None:
        """IPAM GC, then masquerading rules of attachments not listed (any
        backend; also when ipMasq was switched off since). Both run even
        if the other fails; errors are reported together."""
        settings = _settings(req)
        if not settings.layer3:
            return
        from pycni.errors import Failures
        failures = Failures()
        with failures:
            invoke.delegate_gc(req, settings.conf.ipam.type)
        valid = [(a.container_id, a.ifname) for a in req.valid_attachments]
        with failures:
            ipmasq.gc(req.network_name, valid)
        failures.raise_any()


def main() -> None:
    skel.main(BridgePlugin())


if __name__ == "__main__":
    main()
