"""host-device: move an existing host link into the container.

ADD finds the link (`device`, `hwaddr`, `kernelpath`, `pciBusID` or
`runtimeConfig.deviceID`), notes what it was (state.py), sets its alias
to its host name (as the reference does, so either implementation's DEL
can bring it home), and moves it into the container renamed to
CNI_IFNAME in one request: the kernel renames while moving, so no
temporary name ever shows in the host (udev and NetworkManager see the
link leave) and no temporary namespace is needed. Then the link comes
up, and with `ipam` gets its addresses. Every failure moves the link back
under its name, with its alias and up state.

DEL releases IPAM first, also when the namespace is gone (the reference
returns early and leaks the address, plugins#1196), then moves the link
back under its host name and MTU. If the namespace went away first, a
physical device is back in the host already (the kernel returned it,
under another name when its container name was taken): DEL recognises it
from the record and gives it back its name and MTU.

With a user-space (DPDK) driver bound to the PCI device there is no
netdev: nothing moves and the result names the interface only.
"""

from pycni import posixos as os
import sys

from pycni import containerlink, invoke, netlink, netns, skel, undo
from pycni.netlink import link as rtlink, linkinfo as rtlinkinfo
from pycni.decode import decode
from pycni.errors import CNIError, INTERNAL, INVALID_NETWORK_CONFIG, IO_FAILURE, on_netlink_error
from pycni.result import Result

from . import config, state, sysfs

def warn(msg: str) -> None:
    sys.stderr.write(f"host-device: {msg}\n")


def _own_netns() -> int:
    return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def not_found(msg: str, details: str = "") -> CNIError:
    return CNIError(INVALID_NETWORK_CONFIG, f"failed to find host device: {msg}", details)


def find_host_link(host: netlink.RtNetlink, tree: sysfs.Tree,
                   selector: config.Selector) -> rtlinkinfo.LinkInfo:
    """The host link the selector names."""
    if selector.kind == "hwaddr":
        info = config.pick_by_hwaddr(rtlinkinfo.list_link_infos(host), selector.mac)
        if info is None:
            raise not_found("failed to find physical interface",
                            f"no link with hwaddr {selector.value} in the host")
        return info
    name = selector.value
    net_dir = None
    try:
        if selector.kind == "kernelpath":
            net_dir, name = tree.find_kernelpath(selector.value)
        elif selector.kind == "pci":
            net_dir, name = tree.find_pci_address(selector.value)
        elif selector.kind == "aux":
            net_dir, name = tree.find_aux_device(selector.value)
    except sysfs.LookupError_ as err:
        raise not_found(str(err)) from None
    except OSError as err:
        raise not_found(f"{selector.describe()}: {err.strerror or err}") from None
    info = rtlinkinfo.get_link_info(host, name=name)
    if info is None:
        raise not_found("Link not found", f"no link {name} in the host ({selector.describe()})")
    if net_dir is not None:
        # sysfs lists the links of the namespace that mounted it: in any
        # other, the same name may be another link
        index, address = tree.identity(net_dir, name)
        if (index, address.lower()) != (info.index, info.link.mac):
            raise not_found(f"{name} in sysfs is not the link {name} of this network "
                            "namespace", f"sysfs: index {index} address {address}; "
                            f"netlink: index {info.index} address {info.link.mac} "
                            "(is /sys mounted for this namespace?)")
    return info


def claimed_by(data_dir: str, network: str, req: skel.Request, info) -> str:
    """Another attachment whose record still holds `info`, or ""."""
    try:
        records = state.all_records(data_dir)
    except OSError as err:
        raise CNIError(IO_FAILURE, f"failed to read host-device state in {data_dir}",
                       err.strerror or str(err)) from None
    for net, rec in records:
        if (net, rec.container_id, rec.ifname) == (network, req.container_id, req.ifname):
            continue
        if state.claims(rec, info):
            return f"container {rec.container_id} ({rec.ifname}, network {net})"
    return ""


def _where_it_went(err: CNIError, settings: config.Settings, req: skel.Request) -> CNIError:
    """A `device` that is not in the host because an attachment of ours
    holds it: say which (the reference says only "Link not found")."""
    if settings.selector.kind != "device":
        return err
    try:
        records = state.all_records(settings.data_dir)
    except OSError:
        return err
    for net, rec in records:
        if rec.name == settings.selector.value:
            return CNIError(err.code, f"failed to find host device: {rec.name} is in use by "
                            "another container", f"moved to container {rec.container_id} as "
                            f"{rec.ifname} (network {net})")
    return err


def record_of(info: rtlinkinfo.LinkInfo, req: skel.Request) -> state.Record:
    return state.Record(container_id=req.container_id, ifname=req.ifname, name=info.name,
                        mtu=info.link.mtu, alias=info.alias, mac=info.link.mac,
                        perm_mac=info.perm_mac, parent=info.parent, kind=info.link.kind,
                        up=info.link.is_up)


# --- moving ----------------------------------------------------------------------

def move_in(host: netlink.RtNetlink, container: netlink.RtNetlink, container_fd: int,
            host_fd: int, info: rtlinkinfo.LinkInfo, ifname: str) -> rtlinkinfo.LinkInfo:
    """Move `info` into the container as `ifname`; on failure everything
    is as it was and a CNIError says why."""
    if rtlink.get_link(container, ifname) is not None:
        raise CNIError(INTERNAL, f"failed to move link {info.name}: an interface named "
                       f"{ifname} already exists in the container")
    with on_netlink_error(f"failed to set alias to {config.go_quote(info.name)}"):
        rtlinkinfo.set_alias(host, info.index, info.name)
    try:
        rtlinkinfo.move_link(host, info.index, container_fd, ifname)
    except netlink.NetlinkError as exc:
        # Moved but not renamed (the kernel renames after the move when
        # the old name is free there): bring it back first.
        stray = rtlinkinfo.get_link_info(container, name=info.name)
        if stray is not None and stray.link.mac == info.link.mac:
            _quietly(rtlinkinfo.move_link, container, stray.index, host_fd, info.name)
        _restore_host_side(host, info.name, info.alias, info.link.is_up)
        raise CNIError(INTERNAL, f'failed to move "{info.name}" to the container as '
                       f'"{ifname}"', exc.strerror) from None
    moved = rtlinkinfo.get_link_info(container, name=ifname)
    if moved is None:
        _restore_host_side(host, info.name, info.alias, info.link.is_up)
        raise CNIError(INTERNAL, f'failed to find "{ifname}" in the container after moving '
                       f'"{info.name}"')
    return moved


def move_back(container: netlink.RtNetlink, host: netlink.RtNetlink, host_fd: int,
              container_fd: int, link: rtlinkinfo.LinkInfo, name: str, mtu: int,
              alias: str, up: bool) -> None:
    """Move container link `link` to the host as `name`, with MTU `mtu`
    (0: as it is), alias `alias` and up if `up`."""
    ifname = link.name
    if rtlinkinfo.get_link_info(host, name=name) is not None:
        raise CNIError(INTERNAL, f"failed to rename device {config.go_quote(ifname)} to "
                       f"{config.go_quote(name)}", "a link of that name exists in the host")
    if mtu and link.link.mtu != mtu:
        try:
            rtlink.set_mtu(container, link.index, mtu)
        except netlink.NetlinkError as exc:
            raise CNIError(INTERNAL, f"failed to restore the MTU {mtu} of "
                           f"{config.go_quote(ifname)}", exc.strerror) from None
    try:
        rtlinkinfo.move_link(container, link.index, host_fd, name)
    except netlink.NetlinkError as exc:
        stray = rtlinkinfo.get_link_info(host, name=ifname)
        if stray is not None and stray.link.mac == link.link.mac:
            _quietly(rtlinkinfo.move_link, host, stray.index, container_fd, ifname)
        raise CNIError(INTERNAL, f"failed to move {config.go_quote(ifname)} to the host as "
                       f"{config.go_quote(name)}", exc.strerror) from None
    _restore_host_side(host, name, alias, up)


def _restore_host_side(host: netlink.RtNetlink, name: str, alias: str, up: bool) -> None:
    info = rtlinkinfo.get_link_info(host, name=name)
    if info is None:
        return
    if info.alias != alias:
        _quietly(rtlinkinfo.set_alias, host, info.index, alias)
    if up and not info.link.is_up:
        _quietly(rtlink.set_link_up, host, info.index)


def _move_home(container: netlink.RtNetlink, host: netlink.RtNetlink, host_fd: int,
               container_fd: int, index: int, info: rtlinkinfo.LinkInfo) -> None:
    """Undo move_in: the container link `index` (if it is still there)
    back to the host as it was in `info`."""
    current = rtlinkinfo.get_link_info(container, index=index)
    if current is not None:
        move_back(container, host, host_fd, container_fd, current, info.name,
                  info.link.mtu, info.alias, info.link.is_up)


def _quietly(fn, *args) -> None:
    try:
        fn(*args)
    except OSError as exc:
        warn(f"{fn.__name__}{args[1:]!r}: {exc.strerror or exc}")


def restore_returned(rec: state.Record) -> bool:
    """A physical device the kernel moved home when its container's
    namespace went away: give it its name, MTU, alias and up state back.
    True if it was found."""
    with netlink.RtNetlink() as host:
        info = state.find_returned(rec, rtlinkinfo.list_link_infos(host))
        if info is None:
            return False
        if info.name != rec.name:
            if rtlinkinfo.get_link_info(host, name=rec.name) is not None:
                warn(f"{info.name} (was {rec.name}) is back in the host, but a link named "
                     f"{rec.name} exists: left as {info.name}")
                return True
            try:
                if info.link.is_up:
                    rtlink.set_link_up(host, info.index, False)
                rtlink.rename_link(host, info.index, rec.name)
            except netlink.NetlinkError as exc:
                raise CNIError(INTERNAL, f"failed to rename {config.go_quote(info.name)} back "
                               f"to {config.go_quote(rec.name)}", exc.strerror) from None
        if rec.mtu and info.link.mtu != rec.mtu:
            _quietly(rtlink.set_mtu, host, info.index, rec.mtu)
        _restore_host_side(host, rec.name, rec.alias, rec.up)
        return True


class HostDevicePlugin(skel.Plugin):
    name = "host-device"
    about = "CNI host-device plugin (pycni)"
    sysfs_root = sysfs.SYSFS

    def add(self, req: skel.Request) -> Result:
        with sysfs.Tree(self.sysfs_root) as tree:
            settings = config.load(req.config, tree, req.env)
            config.check_result_version(req.cni_version, settings.ipam_type)
            if settings.dpdk:
                netns.probe(req.netns)
                return self._add_dpdk(req, settings)
            with netlink.RtNetlink() as host:
                try:
                    info = find_host_link(host, tree, settings.selector)
                except CNIError as err:
                    raise _where_it_went(err, settings, req) from None
                config.check_movable(info, settings.selector,
                                     claimed_by(settings.data_dir, req.network_name, req, info))
                return self._add_link(req, settings, host, info)

    def _add_dpdk(self, req: skel.Request, settings: config.Settings) -> Result:
        if not settings.ipam_type:
            return config.build_result(req.ifname, "", req.netns, None, settings.dns,
                                       req.cni_version)
        with undo.Stack("host-device") as stack:
            ipam_result = invoke.ipam_add(req, settings.ipam_type, stack)
            result = config.build_result(req.ifname, "", req.netns, ipam_result,
                                         settings.dns, req.cni_version)
            result.to_dict(req.cni_version)       # converts, or fails while we can undo
            stack.commit()
        return result

    def _add_link(self, req: skel.Request, settings: config.Settings,
                  host: netlink.RtNetlink, info: rtlinkinfo.LinkInfo) -> Result:
        rec = record_of(info, req)
        store = state.Store(settings.data_dir, req.network_name)
        container_fd = netns.open_netns(req.netns)
        host_fd = _own_netns()
        try:
            with containerlink.socket_in(req.netns) as container, \
                    undo.Stack("host-device") as stack:
                moved = move_in(host, container, container_fd, host_fd, info, req.ifname)
                # undone in reverse: the link goes home, then its record goes
                stack.push(store.remove, req.container_id, req.ifname,
                           what=f"removing the state of {req.container_id}/{req.ifname}")
                stack.push(_move_home, container, host, host_fd, container_fd, moved.index,
                           info, what=f"moving {req.ifname} back to the host as {info.name}")
                rec.index = moved.index
                try:
                    store.save(rec)
                except OSError as err:
                    raise CNIError(IO_FAILURE, f"failed to save host-device state in "
                                   f"{settings.data_dir}", err.strerror or str(err)) from None
                rtlink.set_link_up(container, moved.index)
                ipam_result = None
                if settings.ipam_type:
                    ipam_result = invoke.ipam_add(req, settings.ipam_type, stack)
                result = config.build_result(req.ifname, moved.link.mac, req.netns,
                                             ipam_result, settings.dns, req.cni_version)
                if ipam_result is not None:
                    result.to_dict(req.cni_version)
                    from pycni import ipconfig
                    ipconfig.configure_in(req.netns, req.ifname, result)
                stack.commit()
                return result
        finally:
            os.close(container_fd)
            os.close(host_fd)

    # --- DEL -------------------------------------------------------------------

    def delete(self, req: skel.Request) -> None:
        ipam_type = config.ipam_type_of(req.config)
        if ipam_type:
            invoke.delegate_del(req, ipam_type)     # also with the netns gone (#1196)
        data_dir = config.data_dir_of(req.config, req.env)
        store = state.Store(data_dir, req.network_name) if data_dir else None
        rec = None
        if store is not None:
            try:
                rec = store.load(req.container_id, req.ifname)
            except OSError as err:
                warn(f"ignoring the state in {data_dir}: {err.strerror or err}")
        home = False
        if req.netns:
            try:
                container_fd = netns.open_netns(req.netns)
            except netns.GONE:
                container_fd = -1
            if container_fd >= 0:
                try:
                    home = self._move_out(req, container_fd, rec)
                finally:
                    os.close(container_fd)
        if not home and rec is not None:
            restore_returned(rec)
        if rec is not None:
            _quietly_remove(store, req)

    def _move_out(self, req: skel.Request, container_fd: int,
                  rec: state.Record | None) -> bool:
        """Move our link out of the container; False if it is not there."""
        with containerlink.socket_in(req.netns) as container:
            link, name = self._our_link(container, req.ifname, rec)
            if link is None:
                return False
            host_fd = _own_netns()
            try:
                with netlink.RtNetlink() as host:
                    if rec is not None:
                        move_back(container, host, host_fd, container_fd, link, name,
                                  rec.mtu, rec.alias, rec.up)
                    else:
                        move_back(container, host, host_fd, container_fd, link, name,
                                  0, "", False)
            finally:
                os.close(host_fd)
            return True

    @staticmethod
    def _our_link(container: netlink.RtNetlink, ifname: str,
                  rec: state.Record | None) -> tuple[rtlinkinfo.LinkInfo | None, str]:
        """The container link our ADD moved in, and its host name."""
        if rec is not None:
            # the index, which the container cannot change, not the name
            link = rtlinkinfo.get_link_info(container, index=rec.index) if rec.index else None
            if link is not None and link.link.kind == rec.kind:
                return link, rec.name
            return None, ""
        # ADD by another implementation (the reference): its alias is all
        link = rtlinkinfo.get_link_info(container, name=ifname)
        if link is None:
            return None, ""
        if not link.alias:
            warn(f"{ifname} has no alias (no host name): not moving it")
            return None, ""
        try:
            config.check_ifname(link.alias, "host name in the alias")
        except CNIError as err:
            warn(f"{ifname}: {err.msg}: not moving it")
            return None, ""
        return link, link.alias

    # --- CHECK -----------------------------------------------------------------

    def check(self, req: skel.Request) -> None:
        from . import check as checks
        with sysfs.Tree(self.sysfs_root) as tree:
            settings = config.load(req.config, tree, req.env)
        with containerlink.socket_in(req.netns) as container:
            if settings.ipam_type:
                invoke.delegate_check(req, settings.ipam_type)
            prev = checks.require_prev_result(req.prev_result)
            if settings.dpdk:
                return
            intf = checks.container_interface(prev, req.ifname, req.netns)
            link = rtlinkinfo.get_link_info(container, name=intf.name)
            rec = None
            data_dir = config.data_dir_of(req.config, req.env)
            if data_dir:
                try:
                    rec = state.Store(data_dir, req.network_name).load(req.container_id,
                                                                        req.ifname)
                except OSError:
                    rec = None
            checks.check_link(intf, link, rec)
            containerlink.check_addressing(container, req.ifname, link.index, prev, intf)

    # --- GC, STATUS ------------------------------------------------------------

    def gc(self, req: skel.Request) -> None:
        """Forget attachments the runtime no longer has: a device of theirs
        that came back to the host gets its name and MTU back; then IPAM's
        GC. Errors are collected, not fatal to the rest."""
        errors = []
        data_dir = config.data_dir_of(req.config, req.env)
        if data_dir:
            valid = {(a.container_id, a.ifname) for a in req.valid_attachments}
            store = state.Store(data_dir, req.network_name)
            try:
                records = store.records()
            except OSError as err:
                errors.append(f"reading {data_dir}: {err.strerror or err}")
                records = []
            for rec in records:
                if (rec.container_id, rec.ifname) in valid:
                    continue
                try:
                    restore_returned(rec)
                    store.remove(rec.container_id, rec.ifname)
                except (CNIError, OSError) as err:
                    errors.append(f"{rec.container_id}/{rec.ifname}: {err}")
        ipam_type = config.ipam_type_of(req.config)
        if ipam_type:
            try:
                invoke.delegate_gc(req, ipam_type)
            except CNIError as err:
                errors.append(str(err))
        if errors:
            raise CNIError(INTERNAL, "host-device GC failed", "; ".join(errors))

    def status(self, req: skel.Request) -> None:
        conf = decode(config.HostDeviceConf, req.config)
        if conf.ipam.type:
            invoke.delegate_status(req, conf.ipam.type)


def _quietly_remove(store: state.Store, req: skel.Request) -> None:
    try:
        store.remove(req.container_id, req.ifname)
    except OSError as err:
        warn(f"failed to remove the state of {req.container_id}/{req.ifname}: "
             f"{err.strerror or err}")


def main() -> None:
    skel.main(HostDevicePlugin())


if __name__ == "__main__":
    main()
