"""dhcp: IPAM through the dhcp daemon, which holds the leases.

`dhcp daemon [flags]` runs the daemon (daemon.py); every other start is
the IPAM plugin, a short call to the daemon's socket (rpc.py):

ADD     the daemon acquires (or, for an attachment it already holds,
        returns) a lease inside the container's netns on CNI_IFNAME
CHECK   the daemon must hold the attachment's lease (it is checked at once)
DEL     the daemon releases the lease (success when it holds none)
STATUS  code 50 when no daemon answers on the socket
GC      the daemon releases this network's leases of attachments not listed
        as valid (the reference has no GC)

The config is validated here before the daemon is asked (and again by
the daemon). The plugin path loads _socket, pycni.jsontext and the config
model only.
"""

from pycni import skel
from pycni.errors import CNIError, INTERNAL, PLUGIN_NOT_AVAILABLE
from pycni.result import Result

from . import config as cfg


def _request(req: skel.Request, method: str, **extra) -> dict:
    from pycni import posixos as os
    from pycni.jsontext import dumps
    return {"method": method, "containerID": req.container_id,
            "netns": os.path.abspath(req.netns) if req.netns else "",
            "ifName": req.ifname, "args": req.args_text,
            "config": dumps(req.config), **extra}


def _call(req: skel.Request, method: str, **extra) -> dict:
    from . import rpc
    conf = cfg.load(req.config)
    path = cfg.socket_path(conf)
    if method in ("Allocate", "Check"):
        try:                        # bad options refused before asking, as the daemon words it
            cfg.prepare_options(conf, req.args_text)
        except CNIError as exc:
            raise CNIError(exc.code, f"error calling DHCP.Allocate: {exc.msg}",
                           exc.details) from None
    try:
        return rpc.call(path, _request(req, method, **extra))
    except rpc.Unreachable as exc:
        if method == "Status":
            raise
        raise CNIError(INTERNAL, exc.msg, exc.details) from None
    except CNIError as exc:
        if exc.code == PLUGIN_NOT_AVAILABLE:
            raise
        raise CNIError(exc.code, f"error calling DHCP.{method}: {exc.msg}", exc.details) from None


class DHCPPlugin(skel.Plugin):
    name = "dhcp"
    about = "CNI dhcp plugin (pycni)"

    def add(self, req: skel.Request) -> Result:
        from pycni.result import parse_result
        result = parse_result(_call(req, "Allocate"), "1.1.0")
        result.cni_version = req.cni_version
        return result

    def check(self, req: skel.Request) -> None:
        _call(req, "Check")

    def delete(self, req: skel.Request) -> None:
        _call(req, "Release")

    def status(self, req: skel.Request) -> None:
        _call(req, "Status")

    def gc(self, req: skel.Request) -> None:
        valid = [{"containerID": a.container_id, "ifname": a.ifname}
                 for a in req.valid_attachments]
        _call(req, "GC", valid=valid)


def main() -> None:
    import sys
    if len(sys.argv) > 1 and sys.argv[1] == "daemon":
        from pycni import posixos as os
        from .daemon import main as daemon_main
        sys.stdout.flush()
        os._exit(daemon_main(sys.argv[2:]))
    skel.main(DHCPPlugin())


if __name__ == "__main__":
    main()
