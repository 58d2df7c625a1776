"""tap: a TAP device in the container namespace, for VM runtimes (KubeVirt,
Kata) that hand it to a virtual machine.

ADD opens /dev/net/tun inside the container namespace (so the device is
born there, never on the host) and creates the tap under CNI_IFNAME with
IFF_TUN_EXCL, so an existing device is never reused. Owner, group, MTU,
MAC, the bridge port (a bridge in the container namespace) and, with
IPAM, the addresses are set while the creating file descriptor is still
open; the tap is made persistent last. Until then closing the descriptor
removes the device with everything on it, so a failed (or killed) ADD
leaves no device behind, and a failed ADD also releases its IPAM
allocation.

DEL releases IPAM first, then removes the tap; a missing netns or link is
success, and a link of that name that is not a tap is left alone. See
README.md for the differences from the reference plugin.
"""

import errno
import posix

from pycni import containerlink, invoke, netlink, netns, skel, undo
from pycni.netlink import link as rtlink
from pycni.decode import decode
from pycni.errors import (CNIError, INTERNAL, INVALID_NETWORK_CONFIG,
                          PLUGIN_NOT_AVAILABLE)
from pycni.result import Result

from . import config


def _fail(msg: str, exc: OSError | None = None, code: int = INTERNAL) -> CNIError:
    return CNIError(code, msg, (exc.strerror or str(exc)) if exc is not None else "")


def open_in(path: str) -> tuple[netlink.RtNetlink, int]:
    """A netlink socket and the clone device, both opened inside the
    container namespace (and so bound to it)."""
    from pycni import tuntap
    with netns.entered(path):
        nl = netlink.RtNetlink()
        try:
            return nl, tuntap.open_clone_device()
        except OSError as exc:
            nl.close()
            raise _fail("failed to create tap: cannot open /dev/net/tun", exc,
                        PLUGIN_NOT_AVAILABLE) from None


def find_bridge(nl: netlink.RtNetlink, name: str) -> rtlink.Link:
    link = rtlink.get_link(nl, name)
    if link is None:
        raise CNIError(INVALID_NETWORK_CONFIG,
                       f"failed to get bridge {name}: Link not found",
                       f"no interface {name} in the container network namespace")
    return link


def create_tap(fd: int, nl: netlink.RtNetlink, ifname: str,
               settings: config.Settings) -> rtlink.Link:
    """Name the device of `fd` `ifname` and configure it; returns the link."""
    from pycni import tuntap
    try:
        name = tuntap.set_iff(fd, ifname, config.tun_flags(settings) | tuntap.IFF_TUN_EXCL)
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            raise CNIError(INTERNAL, f"failed to create tap {config.go_quote(ifname)}",
                           f"an interface named {ifname} already exists in the "
                           "container") from None
        raise _fail(f"failed to create tap {config.go_quote(ifname)}", exc) from None
    if name != ifname:      # a name template ("tap%d") was expanded
        raise CNIError(INTERNAL, f"failed to create tap {config.go_quote(ifname)}",
                       f"the kernel named it {name}")
    try:
        if settings.owner is not None:
            tuntap.set_owner(fd, settings.owner)
        if settings.group is not None:
            tuntap.set_group(fd, settings.group)
    except OSError as exc:
        raise _fail("failed to set the tap's owner or group", exc) from None
    link = rtlink.get_link(nl, ifname)
    if link is None:
        raise CNIError(INTERNAL, f"failed to refetch tap {config.go_quote(ifname)}")
    try:
        if settings.mtu:
            rtlink.set_mtu(nl, link.index, settings.mtu)
        if settings.mac:
            rtlink.set_mac(nl, link.index, settings.mac)
    except OSError as exc:
        raise _fail(f"failed to set MTU {settings.mtu} / MAC {settings.mac or '-'} "
                    f"on tap {ifname}", exc) from None
    if settings.bridge:
        bridge = find_bridge(nl, settings.bridge)
        try:
            rtlink.set_master(nl, link.index, bridge.index)
        except OSError as exc:
            raise _fail(f"failed to set tap {ifname} as a port of bridge "
                        f"{settings.bridge}", exc) from None
    rtlink.set_link_up(nl, link.index)
    renewed = rtlink.get_link_by_index(nl, link.index)
    if renewed is None:
        raise CNIError(INTERNAL, f"failed to refetch tap {config.go_quote(ifname)}")
    return renewed


class TapPlugin(containerlink.Plugin):
    name = "tap"
    about = "CNI tap plugin (pycni)"

    def add(self, req: skel.Request) -> Result:
        settings = config.load(req.config, req.cni_args)
        nl, fd = open_in(req.netns)
        try:
            with undo.Stack("tap") as stack:
                if settings.bridge:     # refuse before anything exists
                    find_bridge(nl, settings.bridge)
                link = create_tap(fd, nl, req.ifname, settings)
                ipam_result = None
                if settings.ipam_type:
                    ipam_result = invoke.ipam_add(req, settings.ipam_type, stack)
                result = config.build_result(req.ifname, link.mac, req.netns, ipam_result,
                                             settings.dns, req.cni_version)
                if ipam_result is not None:
                    from pycni import ipconfig     # gratuitous ARP only, as the reference
                    ipconfig.configure_in(req.netns, req.ifname, result, announce=("ipv4",))
                self._persist(fd, req.ifname, result, req.cni_version)
                stack.commit()
            return result
        finally:
            # Not yet persistent (any failure above): this removes the tap,
            # after the stack released the IPAM allocation.
            posix.close(fd)
            nl.close()

    @staticmethod
    def _persist(fd: int, ifname: str, result: Result, cni_version: str) -> None:
        """Keep the tap: the last step, once nothing else can fail (the
        result converts to the config's version: a 0.1.0/0.2.0 result
        needs an address, and the reference leaves the tap behind there)."""
        result.to_dict(cni_version)
        from pycni import tuntap
        try:
            tuntap.set_persist(fd)
        except OSError as exc:
            raise _fail(f"failed to make tap {ifname} persistent", exc) from None

    def ipam_type_for_delete(self, conf: dict) -> str:
        return config.load_for_delete(conf)

    @staticmethod
    def is_ours(link: rtlink.Link, info_data: dict) -> bool:
        from pycni import tuntap    # DEL needs it only where a link of that name is there
        return link.kind == "tun" and tuntap.info(info_data)["type"] == "tap"

    def check(self, req: skel.Request) -> None:
        from . import check as checks
        from pycni import tuntap
        settings = config.load(req.config, req.cni_args)
        with containerlink.socket_in(req.netns) as container:
            if settings.ipam_type:
                invoke.delegate_check(req, settings.ipam_type)
            prev = checks.require_prev_result(req.prev_result)
            intf = checks.container_interface(prev, req.ifname, req.netns)
            found = rtlink.get_link_info_data(container, intf.name)
            link, data = found if found else (None, {})
            bridge = None
            if settings.bridge:
                bridge = rtlink.get_link(container, settings.bridge)
            checks.check_link(intf, link, tuntap.info(data), settings, bridge)
            containerlink.check_addressing(container, req.ifname, link.index, prev, intf)

    def ready(self, conf: dict) -> str:
        from pycni import tuntap
        settings = decode(config.TapConf, conf)
        problem = tuntap.clone_device_problem()
        if problem:
            raise CNIError(PLUGIN_NOT_AVAILABLE, "cannot create taps", problem)
        return settings.ipam.type


def main() -> None:
    skel.main(TapPlugin())


if __name__ == "__main__":
    main()
