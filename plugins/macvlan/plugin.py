"""macvlan: a macvlan link on a host interface (the master), in the container.

ADD creates the link under a temporary name directly in the container
namespace and renames it there to CNI_IFNAME, so a host interface of the
same name never gets in the way. With IPAM it turns on gratuitous ARP /
unsolicited neighbour advertisements (arp_notify, ndisc_notify) before
the addresses go on and the link comes up, so the LAN learns the new MAC
at once. Without IPAM the link is just brought up (layer 2 only).

DEL releases IPAM first, then removes the link; a missing netns or link
is success. See README.md for the differences from the reference plugin.
"""

import errno

from pycni import posixos as os

from pycni import containerlink, invoke, netlink, netns, skel, undo
from pycni.netlink import link as rtlink
from pycni.decode import decode
from pycni.errors import (CNIError, INTERNAL, INVALID_NETWORK_CONFIG,
                          PLUGIN_NOT_AVAILABLE)
from pycni.result import Result

from . import config

TEMP_NAME_TRIES = 3


def temp_name() -> str:
    """The reference's temporary name: veth + 8 random hex digits."""
    return "veth" + os.urandom(4).hex()


def default_route_master(nl: netlink.RtNetlink) -> str:
    """The interface of the first default route of the main table."""
    from pycni.netlink import route as rtroute   # only where `master` is not set
    for route in rtroute.list_routes(nl):
        if route.dst in ("0.0.0.0/0", "::/0") and route.oif:
            link = rtlink.get_link_by_index(nl, route.oif)
            if link is not None:
                return link.name
    raise CNIError(INVALID_NETWORK_CONFIG, "no default route interface found",
                   'set "master" in the network config')


def find_master(nl: netlink.RtNetlink, settings: config.Settings) -> rtlink.Link:
    name = settings.master or default_route_master(nl)
    link = rtlink.get_link(nl, name)
    if link is None:
        where = "the container" if settings.link_in_container else "the host"
        raise CNIError(INVALID_NETWORK_CONFIG,
                       f"failed to lookup master {config.go_quote(name)}: Link not found",
                       f"no interface {name} in {where} network namespace")
    return link


def create_link(settings: config.Settings, master: rtlink.Link, ifname: str,
                container: netlink.RtNetlink, host: netlink.RtNetlink | None,
                container_fd: int, stack: undo.Stack) -> rtlink.Link:
    """Create the macvlan in the container under a temporary name and
    rename it to `ifname`; returns the renamed link, whose deletion is on
    `stack` from the moment it exists. `host` is the socket of the
    master's namespace, None when the master is in the container."""
    for attempt in range(TEMP_NAME_TRIES):
        tmp = temp_name()
        try:
            if host is None:
                rtlink.create_macvlan_ext(container, tmp, master.index, settings.mode,
                                           None, settings.mtu, settings.mac,
                                           settings.bc_queue_len)
            else:
                rtlink.create_macvlan_ext(host, tmp, master.index, settings.mode,
                                           container_fd, settings.mtu, settings.mac,
                                           settings.bc_queue_len)
            break
        except netlink.NetlinkError as exc:
            if exc.errno == errno.EEXIST and attempt + 1 < TEMP_NAME_TRIES:
                continue    # temporary name taken in the container: draw again
            raise CNIError(INTERNAL, "failed to create macvlan", exc.strerror) from None
    link = rtlink.get_link(container, tmp)
    if link is None:
        raise CNIError(INTERNAL, f"failed to refetch macvlan {config.go_quote(tmp)}")
    stack.push(rtlink.delete_link, container, link.index, what=f"deleting {tmp}")
    try:
        rtlink.rename_link(container, link.index, ifname)
    except netlink.NetlinkError as exc:
        details = exc.strerror
        if exc.errno == errno.EEXIST:
            details = f"an interface named {ifname} already exists in the container"
        raise CNIError(INTERNAL, f"failed to rename macvlan to {config.go_quote(ifname)}",
                       details) from None
    renamed = rtlink.get_link_by_index(container, link.index)
    if renamed is None:
        raise CNIError(INTERNAL, f"failed to refetch macvlan {config.go_quote(ifname)}")
    return renamed


def check_master_available(name: str) -> None:
    """STATUS: code 50 unless the master exists and is up."""
    with netlink.RtNetlink() as nl:
        if not name:
            try:
                name = default_route_master(nl)
            except CNIError as err:
                raise CNIError(PLUGIN_NOT_AVAILABLE, err.msg, err.details) from None
        link = rtlink.get_link(nl, name)
    if link is None:
        raise CNIError(PLUGIN_NOT_AVAILABLE, f"master interface {name} not found")
    if not link.is_up:
        raise CNIError(PLUGIN_NOT_AVAILABLE, f"master interface {name} is down")


class MacvlanPlugin(containerlink.Plugin):
    name = "macvlan"
    about = "CNI macvlan plugin (pycni)"

    def add(self, req: skel.Request) -> Result:
        settings = config.load(req.config, req.cni_args)
        container_fd = netns.open_netns(req.netns)
        host = None
        try:
            with containerlink.socket_in(req.netns) as container, undo.Stack("macvlan") as stack:
                if not settings.link_in_container:
                    host = netlink.RtNetlink()
                master = find_master(host or container, settings)
                config.check_mtu(settings.mtu, master.mtu)
                link = create_link(settings, master, req.ifname, container, host,
                                   container_fd, stack)
                if not settings.ipam_type:
                    rtlink.set_link_up(container, link.index)
                    result = config.build_result(req.ifname, link.mac, req.netns, None,
                                                 settings.dns, req.cni_version)
                else:
                    ipam_result = invoke.ipam_add(req, settings.ipam_type, stack)
                    result = config.build_result(req.ifname, link.mac, req.netns,
                                                 ipam_result, settings.dns, req.cni_version)
                    from pycni import ipconfig
                    ipconfig.configure_in(req.netns, req.ifname, result,
                                          announce=("ipv4", "ipv6"))
                stack.commit()
                return result
        finally:
            os.close(container_fd)
            if host is not None:
                host.close()

    def ipam_type_for_delete(self, conf: dict) -> str:
        return config.load_for_delete(conf)

    @staticmethod
    def is_ours(link: rtlink.Link, info_data: dict) -> bool:
        return link.kind == "macvlan"

    def check(self, req: skel.Request) -> None:
        from . import check as checks
        settings = config.load(req.config, req.cni_args)
        with containerlink.socket_in(req.netns) as container:
            if settings.ipam_type:
                invoke.delegate_check(req, settings.ipam_type)
            prev = checks.require_prev_result(req.prev_result, checks.PREV_MISSING)
            intf = checks.container_interface(prev, req.ifname, req.netns,
                                              checks.SANDBOX_MISMATCH)
            if settings.link_in_container:
                master = find_master(container, settings)
            else:
                with netlink.RtNetlink() as host:
                    master = find_master(host, settings)
            config.check_mtu(settings.mtu, master.mtu)
            found = rtlink.get_link_info_data(container, intf.name)
            link, data = found if found else (None, {})
            checks.check_link(intf, link, rtlink.macvlan_mode(data), settings.mode,
                              master.index)
            containerlink.check_addressing(container, req.ifname, link.index, prev, intf)

    def ready(self, conf: dict) -> str:
        settings = decode(config.MacvlanConf, conf)
        if not settings.link_in_container:      # no container to look into
            check_master_available(settings.master)
        return settings.ipam.type


def main() -> None:
    skel.main(MacvlanPlugin())


if __name__ == "__main__":
    main()
