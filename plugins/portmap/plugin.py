"""portmap: forward host ports to a container (chained plugin).

ADD reads `runtimeConfig.portMappings` and the container's first IPv4 and
IPv6 address on CNI_IFNAME from prevResult, installs the forwarding rules
(iptables or nftables backend, see backend.py), flushes stale UDP
conntrack entries for the mapped ports and, for IPv4 with snat, sets
route_localnet on the host interface routing to the container so that
127.0.0.1:hostPort works. The result is prevResult, passed through.

DEL removes this attachment's rules whatever runtimeConfig and prevResult
say (the rules are found by network name and container ID), and succeeds
when they are already gone. CHECK verifies the rules. GC removes the rules
of this network's containers not in cni.dev/valid-attachments.
"""

import sys

from pycni import skel
from pycni.errors import CNIError, INTERNAL, INVALID_NETWORK_CONFIG
from pycni.result import Result

from .config import ContainerIP, PortMapConf, container_ips, parse_config


def _conf(req: skel.Request) -> PortMapConf:
    from . import backend
    return parse_config(req.config, backend.detect, scripts=req.command not in ("DEL", "GC"))


def _warn(text: str) -> None:
    sys.stderr.write(f"portmap: {text}\n")


def host_interface_to(ip: str) -> str:
    """The name of the interface the host routes `ip` through, or ""."""
    import _socket as socket  # the C module: `socket` costs ~8 ms more
    from pycni import netlink
    from pycni.netlink import route as rtroute
    try:
        with netlink.RtNetlink() as nl:
            index = rtroute.get_route_oif(nl, ip)
        # the name in this namespace, as the socket's (no link messages to load)
        return socket.if_indextoname(index) if index else ""
    except OSError:
        return ""


def enable_route_localnet(cip: ContainerIP) -> None:
    """Let 127.0.0.1 sources cross to the container (localhost -> hostPort)."""
    from pycni import sysctl
    ifname = host_interface_to(cip.ip)
    if ifname:
        try:
            sysctl.ensure("1", "net", "ipv4", "conf", ifname, "route_localnet")
        except OSError as err:
            raise CNIError(INTERNAL, "unable to enable route_localnet", str(err)) from None


def flush_conntrack(conf: PortMapConf, family: int) -> None:
    ports = {m.host_port for m in conf.mappings if m.protocol == "udp"}
    if not ports:
        return
    from . import conntrack
    try:
        conntrack.flush_udp_ports(ports, family)
    except OSError as err:   # informative only, as in the reference
        _warn(f"failed to delete stale UDP conntrack entries: {err}")


def _chained(req: skel.Request, missing: str) -> tuple[PortMapConf, Result]:
    """ADD and CHECK: the config and the required prevResult (`missing`:
    the reference's message without it)."""
    conf = _conf(req)
    prev = req.prev_result
    if prev is None:
        raise CNIError(INVALID_NETWORK_CONFIG, missing)
    return conf, prev


def _added_families(req: skel.Request) -> tuple[int, ...]:
    """DEL: the families ADD wrote rules in, those of the container's
    addresses in prevResult; IPv4 (the usual case, a guess the backend
    verifies) without a usable prevResult."""
    try:
        prev = req.prev_result
    except CNIError:
        prev = None
    if prev is None:
        return (4,)
    return tuple(cip.family for cip in container_ips(prev, req.ifname))


class PortmapPlugin(skel.Plugin):
    name = "portmap"

    def add(self, req: skel.Request) -> Result:
        conf, prev = _chained(req, "must be called as chained plugin")
        if not conf.mappings:
            return prev
        from . import backend
        impl = backend.backend(conf.backend)
        for cip in container_ips(prev, req.ifname):
            impl.setup(conf, req.network_name, req.container_id, cip)
            flush_conntrack(conf, cip.family)
            if cip.family == 4 and conf.snat_on:
                enable_route_localnet(cip)
        return prev

    def delete(self, req: skel.Request) -> None:
        conf = _conf(req)
        from . import backend
        try:
            removed = backend.backend(conf.backend).teardown(
                req.network_name, req.container_id, conf, _added_families(req))
        except CNIError as err:
            if conf.mappings:
                raise
            # No mappings asked for: the reference does nothing at all here,
            # so a host without the firewall tools must not fail the DEL.
            _warn(f"cleanup skipped: {err}")
            return
        # Flows DNATed by the removed rules would otherwise keep going to
        # the old address; dumping conntrack is not free, so only where
        # rules were actually removed.
        for family in sorted(removed):
            flush_conntrack(conf, family)

    def check(self, req: skel.Request) -> None:
        conf, prev = _chained(req, "Required prevResult missing")
        if not conf.mappings:
            return
        from . import backend
        impl = backend.backend(conf.backend)
        problems = []
        for cip in container_ips(prev, req.ifname):
            problems += impl.check(conf, req.network_name, req.container_id, cip)
        if problems:
            raise CNIError(INTERNAL, f"portmap rules of {req.container_id} are incomplete",
                           "; ".join(problems))

    def gc(self, req: skel.Request) -> None:
        conf = _conf(req)
        valid = [(a.container_id, a.ifname) for a in req.valid_attachments]
        from . import backend
        backend.backend(conf.backend).gc(req.network_name, valid)


def main() -> None:
    skel.main(PortmapPlugin())


if __name__ == "__main__":
    main()
