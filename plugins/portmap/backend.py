"""Applying portmap rules: the iptables and nftables backends.

Both compute their change with the pure functions of rules_iptables /
rules_nftables from a fresh read of the current state, and apply it as
one batch (`iptables-restore --noflush -w`, `nft -f -`). A batch that
fails because the state changed under it (another container's ADD
created a shared chain first, a rule we meant to delete is gone) is
recomputed from a new read and retried.
"""

import json

from pycni.errors import CNIError, INTERNAL
from pycni.fwtools import (IPT_TOOLS, ToolError, default_backend, find_tool, iptables_restore,
                           iptables_save, iptables_usable, retrying, run_tool)

from . import rules_iptables as ipt
from . import rules_nftables as nft
from .config import IPTABLES, NFTABLES, ContainerIP, PortMapConf


def detect() -> str:
    """The reference's default: iptables, unless only nftables is there."""
    return default_backend()


class IptablesBackend:
    name = IPTABLES

    usable = staticmethod(iptables_usable)
    restore = staticmethod(iptables_restore)

    @staticmethod
    def saved(family: int) -> ipt.Saved:
        return ipt.parse_saved(iptables_save(family, "nat"))

    def apply(self, conf: PortMapConf, network: str, cid: str, cip: ContainerIP) -> None:
        plan = ipt.plan(conf, network, cid, cip)
        retrying(lambda: self.restore(cip.family, ipt.add_script(plan, self.saved(cip.family))))

    def check(self, conf: PortMapConf, network: str, cid: str, cip: ContainerIP) -> list[str]:
        return ipt.check(ipt.plan(conf, network, cid, cip), self.saved(cip.family))

    def _remove(self, script_for) -> set[int]:
        """Run `script_for(saved)` in each usable family; failing only
        when no family works (IPv6 may be off). Returns the families
        where something was removed."""
        errors, worked, changed = [], False, set()
        for family in (4, 6):
            if not self.usable(family):
                errors.append(f"{IPT_TOOLS[family][1]} not found")
                continue
            try:
                def step(family=family):
                    script = script_for(self.saved(family))
                    if script:
                        self.restore(family, script)
                        changed.add(family)
                retrying(step)
                worked = True
            except CNIError as err:
                errors.append(str(err))
        if not worked:
            raise CNIError(INTERNAL, "neither iptables nor ip6tables is usable", "; ".join(errors))
        return changed

    def teardown(self, network: str, cid: str) -> set[int]:
        return self._remove(lambda saved: ipt.del_script(network, cid, saved))

    def gc(self, network: str, valid_ids: set[str]) -> None:
        self._remove(lambda saved: ipt.gc_script(network, valid_ids, saved))


class NftablesBackend:
    name = NFTABLES

    @staticmethod
    def listing(family: int) -> tuple[list[nft.ExistingRule], bool]:
        try:
            out = run_tool(["nft", "-j", "list", "table", nft.FAMILY[family], nft.TABLE])
        except ToolError as err:
            if "No such file" in err.stderr:
                return [], False
            raise
        return nft.parse_listing(family, json.loads(out))

    @staticmethod
    def run(script: str) -> None:
        run_tool(["nft", "-f", "-"], script)

    def apply(self, conf: PortMapConf, network: str, cid: str, cip: ContainerIP) -> None:
        def step():
            existing, _ = self.listing(cip.family)
            self.run(nft.add_script(conf, network, cid, cip, existing))
        retrying(step)

    def check(self, conf: PortMapConf, network: str, cid: str, cip: ContainerIP) -> list[str]:
        existing, hooks_ok = self.listing(cip.family)
        return nft.check(conf, network, cid, cip.family, existing, hooks_ok)

    def _remove(self, select) -> set[int]:
        """Delete the rules `select` picks, both families in one
        transaction; returns the families where something was removed."""
        if find_tool("nft") is None:
            raise CNIError(INTERNAL, "nft not found")
        changed: set[int] = set()

        def step():
            doomed = []
            for family in (4, 6):
                doomed += select(self.listing(family)[0])
            script = nft.delete_script(doomed)
            if script:
                self.run(script)
            changed.clear()
            changed.update(r.family for r in doomed)
        retrying(step)
        return changed

    def teardown(self, network: str, cid: str) -> set[int]:
        return self._remove(lambda existing: nft.del_rules(network, cid, existing))

    def gc(self, network: str, valid_ids: set[str]) -> None:
        self._remove(lambda existing: nft.gc_rules(network, valid_ids, existing))


def backend(name: str):
    return IptablesBackend() if name == IPTABLES else NftablesBackend()
