"""firewall: allow a container's traffic through the host's forward
filtering (chained after an interface plugin, usually bridge).

ADD takes the container addresses from prevResult and installs the
per-container accept rules (iptables or nftables backend, see backend.py)
or adds them to a firewalld zone (firewalld backend) plus, for
ingressPolicy same-bridge / isolated, the isolation rules of the bridge
named first in prevResult. The result is prevResult, passed through.

DEL removes exactly this container's rules. The iptables rules are the
reference's, identified only by the container's addresses, so DEL needs
prevResult for them (without it there is nothing attributable, and DEL
succeeds having removed nothing, as the reference does). The nftables
rules carry the network, interface and container ID and are found
without prevResult. The firewalld backend removes the addresses of
prevResult from the zone. CHECK verifies the rules (or asks firewalld),
GC removes this network's nftables rules of attachments not in
cni.dev/valid-attachments.
"""

from pycni import skel
from pycni.errors import CNIError, INTERNAL, INVALID_NETWORK_CONFIG
from pycni.result import Result

from .config import (FIREWALLD, FirewallConf, bridge_name, container_ips, parse_config,
                     usable_admin_chain, zone_problem)

SUPPORTED_VERSIONS = ("0.4.0", "1.0.0", "1.1.0")


def _conf(req: skel.Request, check_zone: bool = True, check_admin: bool = True) -> FirewallConf:
    from . import backend
    return parse_config(req.config, backend.detect, check_zone, check_admin)


def _backend(conf: FirewallConf):
    from . import backend
    if conf.backend == FIREWALLD:
        return backend.FirewalldBackend(conf.zone)
    return backend.backend(conf.backend or "")     # parse_config has chosen one


def _attachment(req: skel.Request, conf: FirewallConf, bridge: str = "",
                admin_chain: str | None = None):
    """The attachment worked on; `admin_chain` (default: the config's,
    validated) "" for none."""
    from .backend import Attachment
    return Attachment(req.network_name, req.container_id, req.ifname,
                      conf.admin_chain if admin_chain is None else admin_chain,
                      conf.policy, bridge)


def _chained(req: skel.Request):
    """ADD and CHECK: config, the required prevResult, the container's
    addresses in it and the attachment they belong to."""
    conf = _conf(req)
    prev = req.prev_result
    if prev is None:
        raise CNIError(INVALID_NETWORK_CONFIG, "missing prevResult from earlier plugin")
    ips = container_ips(prev)
    bridge = bridge_name(conf, prev) if ips else ""
    return conf, prev, ips, _attachment(req, conf, bridge)


class FirewallPlugin(skel.Plugin):
    name = "firewall"
    supported_versions = SUPPORTED_VERSIONS

    def add(self, req: skel.Request) -> Result:
        conf, prev, ips, target = _chained(req)
        _backend(conf).setup(ips, target)
        return prev

    def delete(self, req: skel.Request) -> None:
        # as the reference's DEL, ours never reads iptablesAdminChainName:
        # an invalid one does not fail it, and goes nowhere (no rule names it)
        conf = _conf(req, check_zone=False, check_admin=False)
        ips = container_ips(req.prev_result)
        if conf.backend == FIREWALLD and zone_problem(conf.zone):
            return       # no source can have gone into a zone firewalld refuses
        _backend(conf).teardown(ips, _attachment(req, conf, admin_chain=usable_admin_chain(conf)))

    def check(self, req: skel.Request) -> None:
        conf, _prev, ips, target = _chained(req)
        problems = _backend(conf).check(ips, target)
        if problems:
            raise CNIError(INTERNAL, problems[0], "; ".join(problems[1:]))

    def gc(self, req: skel.Request) -> None:
        # as DEL: an invalid iptablesAdminChainName (or firewalldZone) does
        # not fail GC, which removes attachments' rules only and hands the
        # backend no admin chain (the name reaches no rule)
        conf = _conf(req, check_zone=False, check_admin=False)
        valid = [(a.container_id, a.ifname) for a in req.valid_attachments]
        _backend(conf).gc(req.network_name, valid)


def main() -> None:
    skel.main(FirewallPlugin())


if __name__ == "__main__":
    main()
