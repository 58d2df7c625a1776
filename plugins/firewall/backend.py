"""Applying the firewall rules: the iptables and nftables backends.

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
"""

from pycni import jsontext
from pycni.model import dataclass

from pycni.errors import CNIError
from pycni.fwtools import (ToolError, default_backend, find_tool, iptables_restore,
                           iptables_save, iptables_usable, retrying, run_tool)

from . import rules_iptables as ipt
from . import rules_nftables as nft
from .config import IPTABLES, NFTABLES, ContainerIP



@dataclass
class Attachment:
    network: str
    container_id: str
    ifname: str
    admin_chain: str = "CNI-ADMIN"
    policy: str = "open"
    bridge: str = ""


def detect() -> str:
    """iptables when its tools are installed, else nftables when nft is
    (the reference would pick firewalld when it runs, else iptables)."""
    return default_backend()


def _families(ips: list[ContainerIP]) -> list[int]:
    return sorted({c.family for c in ips})


class IptablesBackend:
    name = IPTABLES

    usable = staticmethod(iptables_usable)
    restore = staticmethod(iptables_restore)

    @staticmethod
    def saved(family: int) -> ipt.Saved:
        return ipt.parse_saved(iptables_save(family, "filter"))

    def _plan(self, family: int, ips: list[ContainerIP], a: Attachment) -> ipt.Plan:
        return ipt.plan(family, ips, a.admin_chain, a.policy, a.bridge)

    def setup(self, ips: list[ContainerIP], a: Attachment) -> None:
        done = []
        try:
            for family in _families(ips):
                plan = self._plan(family, ips, a)

                def step(family=family, plan=plan):
                    script = ipt.add_script(plan, self.saved(family))
                    if script:
                        self.restore(family, script)
                retrying(step)
                done.append(family)
        except CNIError:
            # leave no half-applied container: drop what the earlier families got
            for family in done:
                try:
                    self._remove(family, ips)
                except CNIError:
                    pass
            raise

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
        try:
            out = run_tool(["nft", "-j", "list", "table", nft.FAMILY, nft.TABLE])
        except ToolError as err:
            if "No such file" in err.stderr:
                return nft.Listing()
            raise
        return nft.parse_listing(jsontext.loads(out))

    @staticmethod
    def run(script: str) -> None:
        run_tool(["nft", "-f", "-"], script)

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


def backend(name: str):
    return IptablesBackend() if name == IPTABLES else NftablesBackend()
