"""The one link a plugin made in the container (macvlan, tap, ...): the
netlink socket that reaches it, its DEL and the CHECK of its addresses,
and `Plugin`, the DEL, GC and STATUS such a plugin with optional IPAM
serves.

Every function here opens the container's namespace once and works
through a socket bound to it; none of them changes what the plugin
reports, only where the code for it lives.
"""

import errno

from . import invoke, netlink, netns, skel
from .netlink import link as rtlink
from .errors import CNIError, INTERNAL

# DEL: the link went away between the lookup and the delete (a parallel DEL)
GONE_ERRNOS = (errno.ENODEV, errno.ENOENT)


def socket_in(path: str) -> netlink.RtNetlink:
    """A route netlink socket bound to the network namespace at `path`
    (netns.GONE when that is not, or no longer, a namespace)."""
    with netns.entered(path):
        return netlink.RtNetlink()


def delete(path: str, ifname: str, plugin: str, is_ours) -> None:
    """DEL of link `ifname` in the container at `path`: done when there is
    no netns (empty CNI_NETNS, or gone: its links went with it) or no such
    link. A link `is_ours(link, info_data)` refuses stays, with a note on
    stderr: an ADD that failed on a name clash is followed by a DEL, and
    the link of that name is another plugin's."""
    if not path:
        return
    try:
        nl = socket_in(path)
    except netns.GONE:
        return      # also when only the unmounted mount-point file is left
    with nl:
        found = rtlink.get_link_info_data(nl, ifname)
        if found is None:
            return
        link, data = found
        if not is_ours(link, data):
            import sys
            sys.stderr.write(f"{plugin}: {ifname} is a {link.kind or 'non-' + plugin} "
                             "link, not deleting it\n")
            return
        try:
            rtlink.delete_link(nl, link.index)
        except netlink.NetlinkError as exc:
            if exc.errno not in GONE_ERRNOS:
                from . import jsontext
                raise CNIError(INTERNAL, f"failed to delete {jsontext.dumps(ifname)}",
                               exc.strerror or str(exc)) from None


def check_addressing(nl: netlink.RtNetlink, ifname: str, index: int, prev, intf) -> None:
    """CHECK of the addresses and routes `prev` (the prevResult) gives the
    container interface `intf`, on link `index` read through `nl`."""
    from . import checks, ipconfig
    ipconfig.check_iface(nl, ifname, index, checks.own_ips(prev, intf), prev.routes)


class Plugin(skel.Plugin):
    """A plugin that puts one link, named CNI_IFNAME, into the container
    and takes its addresses from IPAM if the config names a plugin. DEL
    releases IPAM first, then deletes the link (see `delete`); GC is
    IPAM's; STATUS is the plugin's own, then IPAM's. A subclass says how
    it reads the IPAM type for DEL and GC (tolerant: whatever else in the
    config no longer validates), which links are its own, and whether it
    could serve an ADD now."""

    def ipam_type_for_delete(self, config: dict) -> str:
        raise NotImplementedError

    def ready(self, config: dict) -> str:
        """STATUS: raise code 50 when an ADD could not work now; else
        return the IPAM type (to ask it too)."""
        raise NotImplementedError

    def is_ours(self, link: rtlink.Link, info_data: dict) -> bool:
        raise NotImplementedError

    def delete(self, req: skel.Request) -> None:
        ipam_type = self.ipam_type_for_delete(req.config)
        if ipam_type:
            invoke.delegate_del(req, ipam_type)
        delete(req.netns, req.ifname, self.name, self.is_ours)

    def gc(self, req: skel.Request) -> None:
        ipam_type = self.ipam_type_for_delete(req.config)
        if ipam_type:
            invoke.delegate_gc(req, ipam_type)

    def status(self, req: skel.Request) -> None:
        ipam_type = self.ready(req.config)
        if ipam_type:
            invoke.delegate_status(req, ipam_type)
