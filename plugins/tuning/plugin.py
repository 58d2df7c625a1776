"""tuning: sysctls and link attributes of an interface another plugin made.

A chained plugin (podman's chain ends bridge -> portmap -> firewall ->
tuning): it creates nothing, it adjusts CNI_IFNAME in the container.

ADD validates everything first (sysctl keys confined to /proc/sys/net/,
the admin allowlist, MAC/MTU/txQLen values, that every sysctl file and
the link exist), then writes the sysctls, saves the link's original
attributes to the backup file and changes them. If any step fails, what
was already changed is put back and the backup removed, so a failed ADD
leaves nothing behind. The result is prevResult with the interface's new
MAC.

DEL restores the saved link attributes (not the sysctls: the namespace
dies with the container) and removes the backup. It never fails for a
missing namespace, link or backup.

CHECK re-reads every configured sysctl and link attribute.
"""

from pycni import posixos as os
import sys

from pycni import netlink, netns, nodeconf, skel, undo
from pycni.netlink import link as rtlink
from pycni.errors import CNIError, INTERNAL, INVALID_NETWORK_CONFIG
from pycni.result import Result

from . import backup
from . import config

EINVAL, ERANGE, EADDRNOTAVAIL = 22, 34, 99
# What the kernel answers to a value it will not take: a config error.
BAD_VALUE_ERRNOS = (EINVAL, ERANGE, EADDRNOTAVAIL)
CNI_ARGS_KEYS = ("MAC",)


def _log(msg: str) -> None:
    sys.stderr.write(f"tuning: {msg}\n")


def _os_error(msg: str, exc: OSError) -> CNIError:
    code = INVALID_NETWORK_CONFIG if exc.errno in BAD_VALUE_ERRNOS else INTERNAL
    return CNIError(code, msg, exc.strerror or str(exc))


def _no_link(ifname: str) -> CNIError:
    return CNIError(INTERNAL, f'failed to get "{ifname}": Link not found',
                    f"no interface {ifname} in the container network namespace")


# --- reading the link ----------------------------------------------------------

def read_state(nl: netlink.RtNetlink, ifname: str) -> tuple[rtlink.Link, int] | None:
    """The link and its transmit queue length, or None if there is none."""
    got = rtlink.get_link_attrs(nl, ifname)
    if got is None:
        return None
    link, attrs = got
    return link, netlink.attr_u32_value(attrs, rtlink.IFLA_TXQLEN)


def original_state(link: rtlink.Link, txqlen: int, settings: config.Settings) -> backup.LinkState:
    """What ADD is about to change, as it is now."""
    state = backup.LinkState()
    if settings.mac:
        state.mac = link.mac
    if settings.promisc:
        state.promisc = bool(link.flags & rtlink.IFF_PROMISC)
    if settings.mtu:
        state.mtu = link.mtu
    if settings.allmulti is not None:
        state.allmulti = bool(link.flags & rtlink.IFF_ALLMULTI)
    if settings.txqlen is not None:
        state.txqlen = txqlen
    return state


# --- changing the link ---------------------------------------------------------

def apply_link(nl: netlink.RtNetlink, index: int, settings: config.Settings) -> None:
    """Change the attributes in the reference's order: MAC, promiscuous
    mode, MTU, all-multicast, queue length."""
    steps = []
    if settings.mac:
        steps.append((f"failed to set MAC address {settings.mac}",
                      lambda: rtlink.set_mac(nl, index, settings.mac)))
    if settings.promisc:
        steps.append(("failed to set promiscuous mode",
                      lambda: rtlink.set_promisc(nl, index, True)))
    if settings.mtu:
        steps.append((f"failed to set MTU {settings.mtu}",
                      lambda: rtlink.set_mtu(nl, index, settings.mtu)))
    if settings.allmulti is not None:
        steps.append((f"failed to set all-multicast mode {str(settings.allmulti).lower()}",
                      lambda: rtlink.set_allmulti(nl, index, settings.allmulti)))
    if settings.txqlen is not None:
        steps.append((f"failed to set transmit queue length {settings.txqlen}",
                      lambda: rtlink.set_txqlen(nl, index, settings.txqlen)))
    for msg, step in steps:
        try:
            step()
        except OSError as exc:
            raise _os_error(msg, exc) from None


def restore_link(nl: netlink.RtNetlink, index: int, state: backup.LinkState) -> list[str]:
    """Put saved attributes back, in the reference's order (MTU first:
    a smaller MTU may be what the old MAC's driver needs); every failure
    is reported, none stops the others."""
    steps = []
    if state.mtu:
        steps.append(("failed to restore MTU", lambda: rtlink.set_mtu(nl, index, state.mtu)))
    if state.mac:
        steps.append(("failed to restore MAC address",
                      lambda: rtlink.set_mac(nl, index, config.parse_mac(state.mac))))
    if state.promisc is not None:
        steps.append(("failed to restore promiscuous mode",
                      lambda: rtlink.set_promisc(nl, index, state.promisc)))
    if state.allmulti is not None:
        steps.append(("failed to restore all-multicast mode",
                      lambda: rtlink.set_allmulti(nl, index, state.allmulti)))
    if state.txqlen is not None:
        steps.append(("failed to restore transmit queue length",
                      lambda: rtlink.set_txqlen(nl, index, state.txqlen)))
    errors = []
    for msg, step in steps:
        try:
            step()
        except (OSError, CNIError) as exc:
            errors.append(f"{msg}: {exc}")
    return errors


# --- sysctls ---------------------------------------------------------------------

def check_sysctls_exist(settings: config.Settings) -> None:
    for key, path, _value in settings.sysctls:
        if not os.path.isfile(path):
            raise CNIError(INVALID_NETWORK_CONFIG, f"unknown sysctl {key}",
                           f"{path} does not exist in the container network namespace")


def read_sysctl(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def write_sysctl(path: str, value: str) -> None:
    # no O_CREAT: /proc/sys files exist or the key is wrong
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def apply_sysctls(settings: config.Settings, stack: undo.Stack) -> None:
    """Write every sysctl; each old value goes back from `stack` if ADD fails."""
    for key, path, value in settings.sysctls:
        try:
            old = read_sysctl(path)
        except OSError:
            old = None   # write-only (e.g. route/flush): an action, nothing to undo
        try:
            write_sysctl(path, value)
        except OSError as exc:
            raise _os_error(f"failed to set sysctl {key} to {value!r}",
                            OSError(exc.errno, f"write {path}: {exc.strerror}")) from None
        if old is not None:
            stack.push(write_sysctl, path, old.strip(), what=f"restoring {path}")


# --- the plugin ------------------------------------------------------------------

def settings_for(req: skel.Request, allowlist: list[str] | None) -> config.Settings:
    config.check_duplicate_sysctl_keys(req.stdin)
    conf = config.decode_conf(req.config)
    cni_args = req.cni_args
    cni_args.require_known(CNI_ARGS_KEYS)
    return config.build_settings(conf, req.ifname, cni_args.get("MAC"), allowlist)


def required_prev_result(req: skel.Request) -> Result:
    prev = req.prev_result
    if prev is None:
        raise CNIError(INVALID_NETWORK_CONFIG, "Required prevResult missing",
                       "tuning is a chained plugin: it adjusts an interface "
                       "an earlier plugin created")
    return prev


def update_result_mac(result: Result, ifname: str, mac: str) -> None:
    """The result names the new MAC for every interface called `ifname`."""
    for interface in result.interfaces:
        if interface.name == ifname:
            interface.mac = mac


def restore_in_namespace(ifname: str, state: backup.LinkState) -> list[str] | None:
    """Restore `state` on `ifname` (we are in its namespace): the errors,
    or None if the link is gone and there is nothing to restore."""
    with netlink.RtNetlink() as nl:
        current = read_state(nl, ifname)
        if current is None:
            return None
        return restore_link(nl, current[0].index, state)


def _restore_logged(nl: netlink.RtNetlink, index: int, state: backup.LinkState) -> None:
    for problem in restore_link(nl, index, state):
        _log(problem)


def apply_in_namespace(settings: config.Settings, ifname: str, backup_path: str) -> None:
    """ADD inside the container namespace: check, then change; if a step
    fails, undo what was already changed and drop the backup."""
    check_sysctls_exist(settings)
    if not settings.touches_link:
        with undo.Stack("tuning") as stack:
            apply_sysctls(settings, stack)
            stack.commit()
        return
    with netlink.RtNetlink() as nl, undo.Stack("tuning") as stack:
        current = read_state(nl, ifname)
        if current is None:
            raise _no_link(ifname)
        link, txqlen = current
        saved = original_state(link, txqlen, settings)
        apply_sysctls(settings, stack)
        try:
            backup.save(backup_path, saved)
        except OSError as exc:
            raise CNIError(INTERNAL, f"failed to save link state to {backup_path}",
                           str(exc)) from None
        stack.push(backup.remove, backup_path, what=f"removing {backup_path}")
        # a step of apply_link may fail after others changed the link: put
        # back everything that was saved
        stack.push(_restore_logged, nl, link.index, saved, what="restoring the link")
        apply_link(nl, link.index, settings)
        stack.commit()


class TuningPlugin(skel.Plugin):
    name = "tuning"

    def add(self, req: skel.Request) -> Result:
        settings = settings_for(req, config.read_allowlist())
        nodeconf.require_state_dir(settings.data_dir, req.env)
        prev = required_prev_result(req)
        backup_path = backup.file_path(settings.data_dir, req.container_id, req.ifname)
        with netns.entered(req.netns):
            apply_in_namespace(settings, req.ifname, backup_path)
        if settings.mac:
            update_result_mac(prev, req.ifname, settings.mac)
        return prev

    def delete(self, req: skel.Request) -> None:
        data_dir = config.data_dir_of(req.config)
        if not nodeconf.state_dir_allowed(data_dir, req.env):
            # ADD never wrote there: nothing to restore, nothing to remove.
            _log(f"dataDir {data_dir!r} is not an allowed state directory: nothing restored")
            return
        path = backup.file_path(data_dir, req.container_id, req.ifname)
        try:
            state = backup.load(path)
        except ValueError as exc:
            _log(f"ignoring unreadable backup {path}: {exc}")
            backup.remove(path)
            return
        except OSError as exc:
            _log(f"cannot read backup {path}: {exc}")
            return
        if state is None:
            return   # nothing changed, or already restored
        if not req.netns:
            backup.remove(path)   # the namespace and its links are gone
            return
        try:
            with netns.entered(req.netns):
                errors = restore_in_namespace(req.ifname, state)
        except netns.GONE:
            errors = None
        if errors:
            # As the reference: DEL succeeds and the backup stays, so a
            # later DEL can try again.
            _log("; ".join(errors))
            return
        backup.remove(path)

    def check(self, req: skel.Request) -> None:
        settings = settings_for(req, None)
        required_prev_result(req)
        with netns.entered(req.netns):
            for _key, path, value in settings.sysctls:
                try:
                    current = read_sysctl(path)
                except OSError as exc:
                    raise CNIError(INTERNAL, f"cannot read sysctl {path}",
                                   exc.strerror or str(exc)) from None
                # multi-value sysctls read back tab-separated
                if value.split() != current.split():
                    raise CNIError(INTERNAL, f"Error: Tuning configured value of {path} "
                                   f"is {value}, current value is {current.strip()}")
            with netlink.RtNetlink() as nl:
                found = read_state(nl, req.ifname)
        if found is None:
            raise CNIError(INTERNAL, f"Cannot find container link {req.ifname}")
        problem = check_link(found[0], found[1], settings, req.ifname)
        if problem:
            raise CNIError(INTERNAL, problem)


def check_link(link: rtlink.Link, txqlen: int, settings: config.Settings,
               ifname: str) -> str:
    """The first configured attribute the link does not have ("" if none)."""
    if settings.mac and settings.mac != link.mac:
        return (f"Error: Tuning configured Ethernet of {ifname} is {settings.mac}, "
                f"current value is {link.mac}")
    promisc = bool(link.flags & rtlink.IFF_PROMISC)
    if promisc != settings.promisc:
        return (f"Error: Tuning link {ifname} configured promisc is "
                f"{str(settings.promisc).lower()}, current value is {int(promisc)}")
    if settings.mtu and settings.mtu != link.mtu:
        return (f"Error: Tuning configured MTU of {ifname} is {settings.mtu}, "
                f"current value is {link.mtu}")
    if settings.allmulti is not None:
        allmulti = bool(link.flags & rtlink.IFF_ALLMULTI)
        if allmulti != settings.allmulti:
            return (f"Error: Tuning configured all-multicast mode of {ifname} is "
                    f"{str(settings.allmulti).lower()}, current value is {str(allmulti).lower()}")
    if settings.txqlen is not None and settings.txqlen != txqlen:
        return (f"Error: Tuning configured Transmit Queue Length of {ifname} is "
                f"{settings.txqlen}, current value is {txqlen}")
    return ""


def main() -> None:
    skel.main(TuningPlugin())


if __name__ == "__main__":
    main()
