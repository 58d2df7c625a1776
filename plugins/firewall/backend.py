"""Applying the firewall rules: the iptables, nftables and firewalld backends.

Each backend computes its change with the pure functions of
rules_iptables / rules_nftables from a fresh read of the current state
and applies it as one batch (`iptables-restore --noflush -w` per address
family, one `nft -f -` transaction). A batch that fails because the state
changed under it (another container's ADD created a shared chain first,
a rule we meant to delete is gone) is recomputed from a new read and
retried.

Interface (both backends):
  setup(ips, target)     ADD
  teardown(ips, target)  DEL; `ips` may be empty (no prevResult)
  check(ips, target)     CHECK; returns the problems found
  gc(network, valid)     GC; `valid` = [(containerID, ifname)]
where `target` is the Attachment being worked on.

The firewalld backend makes no rules of its own: it puts each container
address into the zone (`firewalldZone`) over D-Bus (pycni.dbus), as the
reference does; an isolating ingressPolicy adds the iptables isolation
rules beside it (the reference does the same whatever the backend).
"""

from pycni.model import dataclass

from pycni.errors import CNIError, INTERNAL
from pycni.fwtools import (IptablesTable, default_backend, find_tool, nft_apply, nft_list,
                           retrying)

from . import rules_iptables as ipt
from . import rules_nftables as nft
from .config import FIREWALLD, IPTABLES, NFTABLES, ContainerIP

FIREWALLD_NAME = "org.fedoraproject.FirewallD1"
FIREWALLD_PATH = "/org/fedoraproject/FirewallD1"
ZONE_INTERFACE = FIREWALLD_NAME + ".zone"
ZONE_ALREADY_SET = "ZONE_ALREADY_SET"


@dataclass
class Attachment:
    """One container interface of a network. `admin_chain` "" (DEL with an
    invalid iptablesAdminChainName): none, the admin chain is left alone."""
    network: str
    container_id: str
    ifname: str
    admin_chain: str = "CNI-ADMIN"
    policy: str = "open"
    bridge: str = ""


def detect() -> str:
    """firewalld when it runs on the system bus (as the reference),
    else iptables when its tools are installed, else nftables when nft is."""
    if firewalld_running():
        return FIREWALLD
    return default_backend()


def firewalld_running() -> bool:
    """The reference's test: the system bus answers and someone owns
    org.fedoraproject.FirewallD1. Without a bus socket nothing is tried
    (a stat); a bus that is not root's or does not answer in time counts
    as no firewalld."""
    from pycni import dbus
    if not dbus.may_be_listening():
        return False
    try:
        with dbus.system_bus() as bus:
            return dbus.name_has_owner(bus, FIREWALLD_NAME)
    except dbus.BusUnavailable:
        return False


def _families(ips: list[ContainerIP]) -> list[int]:
    return sorted({c.family for c in ips})


class IptablesBackend(IptablesTable):
    name = IPTABLES
    table = "filter"

    def _plan(self, family: int, ips: list[ContainerIP], a: Attachment) -> ipt.Plan:
        return ipt.plan(family, ips, a.admin_chain, a.policy, a.bridge)

    def setup(self, ips: list[ContainerIP], a: Attachment) -> None:
        """One batch per family; when a later family fails, the earlier
        ones' rules are removed again (no half-applied container)."""
        from pycni import undo
        with undo.Stack("firewall") as stack:
            for family in _families(ips):
                plan = self._plan(family, ips, a)

                def step(family=family, plan=plan):
                    script = ipt.add_script(plan, self.saved(family))
                    if script:
                        self.restore(family, script)
                retrying(step)
                stack.push(self._remove, family, ips, what=f"removing the IPv{family} rules")
            stack.commit()

    def _remove(self, family: int, ips: list[ContainerIP]) -> None:
        def step():
            script = ipt.del_script(family, ips, self.saved(family))
            if script:
                self.restore(family, script)
        retrying(step)

    def teardown(self, ips: list[ContainerIP], a: Attachment) -> None:
        """Without addresses there is nothing attributable to remove."""
        for family in _families(ips):
            if not self.usable(family):
                continue     # no tools, no rules
            self._remove(family, ips)

    def check(self, ips: list[ContainerIP], a: Attachment) -> list[str]:
        problems = []
        for family in _families(ips):
            problems += ipt.check(self._plan(family, ips, a), self.saved(family))
        return problems

    def gc(self, network: str, valid: list[tuple[str, str]]) -> None:
        """The reference's per-address rules carry no owner: nothing to collect."""
        return None


class NftablesBackend:
    name = NFTABLES

    @staticmethod
    def listing() -> nft.Listing:
        found = nft_list(nft.TABLE.family, nft.TABLE.name)
        return nft.Listing() if found is None else nft.parse_listing(found)

    run = staticmethod(nft_apply)

    def setup(self, ips: list[ContainerIP], a: Attachment) -> None:
        retrying(lambda: self.run(nft.add_script(ips, a.network, a.ifname, a.container_id,
                                                  a.policy, a.bridge, self.listing())))

    def _remove(self, select) -> None:
        if find_tool("nft") is None:
            return       # no nft, no rules

        def step():
            script = nft.delete_script(select(self.listing()))
            if script:
                self.run(script)
        retrying(step)

    def teardown(self, ips: list[ContainerIP], a: Attachment) -> None:
        """Finds the attachment's rules by their tag: `ips` are not needed."""
        self._remove(lambda listing: nft.del_rules(a.network, a.ifname, a.container_id, listing))

    def check(self, ips: list[ContainerIP], a: Attachment) -> list[str]:
        return nft.check(ips, a.network, a.ifname, a.container_id, a.policy, a.bridge,
                         self.listing())

    def gc(self, network: str, valid: list[tuple[str, str]]) -> None:
        self._remove(lambda listing: nft.gc_rules(network, valid, listing))


def isolation_plan(p: ipt.Plan) -> ipt.Plan:
    """Only the bridge isolation part of an iptables plan (what the
    reference adds beside firewalld for same-bridge / isolated)."""
    keep = (ipt.STAGE1, ipt.STAGE2)
    return ipt.Plan(p.family, [c for c in p.chains if c in keep],
                    [op for op in p.ops if op.chain in keep or
                     (op.chain == ipt.FORWARD and op.rule[-1] == ipt.STAGE1)])


class IsolationOnly(IptablesBackend):
    """The iptables isolation rules of an isolating ingressPolicy, without
    per-address rules (those are firewalld's zone)."""

    def _plan(self, family: int, ips: list[ContainerIP], a: Attachment) -> ipt.Plan:
        return isolation_plan(super()._plan(family, ips, a))

    def _remove(self, family: int, ips: list[ContainerIP]) -> None:
        """The isolation rules are shared by the bridge: never removed."""
        return None


class FirewalldBackend:
    """Container addresses as sources of a firewalld zone."""
    name = FIREWALLD

    def __init__(self, zone: str):
        self.zone = zone

    @staticmethod
    def _bus():
        from pycni import dbus
        try:
            return dbus.system_bus()
        except dbus.BusUnavailable as err:
            raise CNIError(INTERNAL, f"failed to connect to the system bus (firewalld): {err}")

    def _call(self, bus, method: str, cip: ContainerIP) -> list:
        return bus.call(FIREWALLD_NAME, FIREWALLD_PATH, ZONE_INTERFACE, method, "ss",
                        [self.zone, cip.host_cidr])

    def setup(self, ips: list[ContainerIP], a: Attachment) -> None:
        from pycni import dbus
        if not ips and not a.bridge:
            return
        from pycni import undo
        # leave nothing on failure: take back the sources this call added
        # (the stack is left, and undone, while the bus is still open)
        with self._bus() as bus, undo.Stack("firewall") as stack:
            for cip in ips:
                try:
                    self._call(bus, "addSource", cip)
                except dbus.DBusError as err:
                    if ZONE_ALREADY_SET in str(err):
                        continue     # a repeated ADD: it is there
                    raise CNIError(INTERNAL, f"failed to add the address {cip.host_cidr} "
                                             f"to {self.zone} zone: {err}")
                except dbus.BusUnavailable as err:
                    raise CNIError(INTERNAL, f"failed to add the address {cip.host_cidr} "
                                             f"to {self.zone} zone: {err}")
                stack.push(self._remove, bus, [cip], what=f"removing {cip.host_cidr}")
            if a.bridge:
                IsolationOnly().setup(ips, a)
            stack.commit()

    def _remove(self, bus, ips: list[ContainerIP]) -> None:
        """removeSource for each; every failure ignored, as the reference
        does (not in the zone, in another zone, firewalld gone)."""
        from pycni import dbus
        for cip in ips:
            try:
                self._call(bus, "removeSource", cip)
            except dbus.DBusError:
                pass
            except dbus.BusUnavailable:
                return

    def teardown(self, ips: list[ContainerIP], a: Attachment) -> None:
        """Without a bus there is no firewalld and no runtime zone source
        left to remove: DEL succeeds. The isolation rules stay (shared)."""
        from pycni import dbus
        if not ips:
            return
        try:
            bus = dbus.system_bus()
        except dbus.BusUnavailable:
            return
        with bus:
            self._remove(bus, ips)

    def check(self, ips: list[ContainerIP], a: Attachment) -> list[str]:
        from pycni import dbus
        problems = []
        with self._bus() as bus:
            for cip in ips:
                try:
                    found = self._call(bus, "querySource", cip)
                except (dbus.DBusError, dbus.BusUnavailable) as err:
                    problems.append(f"failed to find the address {cip.host_cidr} in "
                                    f"{self.zone} zone: {err}")
                    continue
                if found != [True]:
                    problems.append(f"failed to find the address {cip.host_cidr} in "
                                    f"{self.zone} zone")
        if a.bridge:
            problems += IsolationOnly().check(ips, a)
        return problems

    def gc(self, network: str, valid: list[tuple[str, str]]) -> None:
        """A zone's sources carry no owner: nothing can be attributed."""
        return None


def backend(name: str):
    """The iptables or nftables backend (FirewalldBackend takes its zone)."""
    return IptablesBackend() if name == IPTABLES else NftablesBackend()
