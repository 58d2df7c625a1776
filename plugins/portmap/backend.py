"""Applying portmap rules: the iptables and nftables backends.

Both compute their change with the pure functions of rules_iptables /
rules_nftables from a fresh read of the current state, and apply it as
one batch (`iptables-restore --noflush -w`, `nft -f -`). A batch that
fails because the state changed under it (another container's ADD
created a shared chain first, a rule we meant to delete is gone) is
recomputed from a new read and retried.

Both follow the firewall backend protocol (pycni.fwtools):
  setup(conf, network, cid, cip)   ADD for one container address
  teardown(network, cid, conf, families)
                                   DEL; the families where rules were removed
                                   (`conf`, `families`: what ADD wrote, when known)
  check(conf, network, cid, cip)   CHECK; the problems found
  gc(network, valid)               GC; `valid` = (container ID, ifname)s
"""

from pycni.errors import CNIError, INTERNAL
from pycni.fwtools import (IPT_TOOLS, NFT_FAMILY, IptablesTable, default_backend, find_tool,
                           nft_apply, nft_list, no_table, remove_chains_in_process, retrying,
                           run_tool)
from pycni.lazy import lazy

from . import rules_iptables as ipt
from .config import IPTABLES, NFTABLES, ContainerIP, PortMapConf

nft = lazy("pycni.plugins.portmap.rules_nftables")   # the nftables backend's only


# `iptables -S CHAIN` per IP family
LIST_TOOLS = {4: "iptables", 6: "ip6tables"}
# DEL lists CNI-HOSTPORT-DNAT alone in IPv6 when IPv4's held this many rules
PROBE_MIN_ENTRIES = 8
# what `iptables -S CHAIN` (exit status 1) says about a missing chain
CHAIN_MISSING = (b"No chain/target/match by that name", b"is incompatible, use 'nft' tool")


def attachment_ids(valid) -> set[str]:
    """The container IDs of `valid`, the backend protocol's (container ID,
    ifname) pairs (fwtools): portmap's chains are named by network and ID
    only."""
    return {cid for cid, _ifname in valid}


def detect() -> str:
    """The reference's default: iptables, unless only nftables is there."""
    return default_backend()


class IptablesBackend(IptablesTable):
    name = IPTABLES
    table = "nat"

    def setup(self, conf: PortMapConf, network: str, cid: str, cip: ContainerIP) -> None:
        """ADD. Usually the shared chains and rules are there already and
        the container's chain is not: one batch asserts the former (`-C`)
        and creates the latter (`-N`), no iptables-save
        (ipt.fresh_add_script). iptables-restore applies a batch all or
        nothing, so when it is refused (the first ADD on a node, a repeated
        ADD, a shared rule removed outside) nothing changed and the batch
        is computed from the whole table as before."""
        plan = ipt.plan(conf, network, cid, cip)
        if self.restore_if_accepted(cip.family, ipt.fresh_add_script(plan)):
            return
        retrying(lambda: self.restore(cip.family, ipt.add_script(plan, self.saved(cip.family))))

    def check(self, conf: PortMapConf, network: str, cid: str, cip: ContainerIP) -> list[str]:
        """CHECK. One batch of `-C` lines (ipt.check_script) that changes
        nothing and is accepted only when every rule is there; the whole
        table, read only when it is refused, says what is missing."""
        p = ipt.plan(conf, network, cid, cip)
        if self.seen_in_process(p):
            return []
        try:
            if self.restore_if_accepted(cip.family, ipt.check_script(p)):
                return []
        except CNIError:
            pass     # a rule too long for one batch line: the table says
        return ipt.check(p, self.saved(cip.family))

    @staticmethod
    def seen_in_process(p: ipt.Plan) -> bool:
        """Where iptables is iptables-nft: is every rule of plan `p` in its
        chain, as iptables-nft writes it (pycni.nftexpr), seen in one dump
        of each of the two chains, without an exec? False means only "not
        seen" (a rule missing, written otherwise, a form nftexpr does not
        cover): `-C` then decides, as without this."""
        from pycni.fwtools import iptables_nft
        if not iptables_nft(p.family):
            return False
        from pycni import netlink, nfnetlink, nftexpr
        wanted = [(p.chain, nftexpr.expressions(r, p.family)) for r in p.rules]
        wanted += [(ipt.DNAT_CHAIN, nftexpr.expressions(e, p.family)) for e in p.entries]
        if any(exprs is None for _chain, exprs in wanted):
            return False
        table = NFT_FAMILY[p.family]
        try:
            with netlink.NetlinkSocket(nfnetlink.NETLINK_NETFILTER) as nl:
                # of the entry chain (a rule per container) only the rules
                # naming the container's chain are read
                have = {chain: [nftexpr.rule_expressions(b)
                                for b in nfnetlink.rule_bodies(nl, table, "nat", chain, naming)]
                        for chain, naming in ((p.chain, None), (ipt.DNAT_CHAIN, [p.chain]))}
        except OSError:
            return False
        return all(exprs in have[chain] for chain, exprs in wanted)

    @staticmethod
    def listed(family: int, chain: str) -> ipt.Saved | None:
        """`iptables -S CHAIN` of the nat table; None when that fails (no
        such chain, no iptables binary, ...: the caller reads the whole
        table instead)."""
        try:
            return ipt.parse_saved(run_tool([LIST_TOOLS[family], "-w", "-t", "nat", "-S", chain]))
        except CNIError:
            return None

    @staticmethod
    def chain_missing(family: int, chain: str) -> bool:
        """Does `iptables -S CHAIN 1` say that nat has no such chain? Exit
        status 1 with iptables' message for it ("No chain/target/match by
        that name"; iptables-nft 1.8.9 says "... is incompatible, use 'nft'
        tool" for a missing chain, and for a regular chain only then).
        False for anything else: the caller reads the whole table."""
        from pycni.fwtools import TOOL_ENV
        from pycni.spawn import run
        path = find_tool(LIST_TOOLS[family])
        if path is None:
            return False
        returncode, _out, err = run([path, "-w", "-t", "nat", "-S", chain, "1"], TOOL_ENV)
        return returncode == 1 and any(m in err for m in CHAIN_MISSING)

    def _remove(self, remove_in) -> set[int]:
        """Run `remove_in(family)` (True: something was removed) in each
        usable family; failing only when no family works (IPv6 may be
        off). Returns the families where something was removed."""
        errors, worked, changed = [], False, set()
        for family in (4, 6):
            if not self.usable(family):
                errors.append(f"{IPT_TOOLS[family][1]} not found")
                continue
            if no_table(family, "nat"):
                worked = True    # no nat table in this family: nothing of ours in it
                continue
            try:
                def step(family=family):
                    if remove_in(family):
                        changed.add(family)
                retrying(step)
                worked = True
            except CNIError as err:
                errors.append(str(err))
        if not worked:
            raise CNIError(INTERNAL, "neither iptables nor ip6tables is usable", "; ".join(errors))
        return changed

    def _apply_removal(self, family: int, script: str | None) -> bool:
        if script:
            self.restore(family, script)
            return True
        return False

    def teardown(self, network: str, cid: str, conf: PortMapConf | None = None,
                 families: "tuple[int, ...]" = ()) -> set[int]:
        """DEL. With the config's mappings (`conf`) and the families ADD
        wrote rules in (`families`: those of the container's addresses in
        prevResult), the container's rules are known: one batch deletes
        them without reading the table first (ipt.exact_del_script), and
        iptables-restore refuses it unless they are all of the container's
        state. Refused (rules written otherwise, other or missing mappings,
        a partial state) or in the other families, the way below.

        Usually the container's entry rules are in CNI-HOSTPORT-DNAT
        only: listing that chain alone (`iptables -S`, ~4 times cheaper
        than `iptables-save` of a nat table that holds 500 mappings) gives
        the batch (ipt.del_listed_script). Otherwise, or when that batch
        fails, the whole table is read as before (ipt.del_script): same
        result, the listing only saves work. Without an entry rule of the
        container in the listing, `iptables -S CHAIN 1` of its two chains
        tells whether there is anything to remove at all. The listing is
        tried first in IPv4, and in IPv6 only when IPv4's entry chain was
        not small (for a small table the listing would be one exec more)."""
        probe = [True]
        exact = self.exact_script if families and self.nameable(conf) else None

        def remove_in(family: int) -> bool:
            done = self.removed_in_process(family, network, cid)
            if done is not None:
                return done
            script = exact(network, cid, conf, family) if exact and family in families else None
            if script:
                if self.restore_if_accepted(family, script):
                    # What the table holds elsewhere is unknown: in the
                    # other family read it whole (one exec, as for a small
                    # table) rather than list and probe it.
                    probe[0] = False
                    return True
            if probe[0]:
                listed = self.listed(family, ipt.DNAT_CHAIN)
                if listed is not None:
                    probe[0] = len(listed.lines.get(ipt.DNAT_CHAIN, ())) >= PROBE_MIN_ENTRIES
                    script = ipt.del_listed_script(network, cid, listed)
                    if script:
                        if self.restore_if_accepted(family, script):
                            return True
                        # refused: a jump from another chain, or a change under us
                    elif all(self.chain_missing(family, chain)
                             for chain in ipt.container_chains(network, cid)):
                        # No entry rule, and neither chain exists: no rule can
                        # jump to a chain that does not exist, so there is
                        # nothing to remove (a repeated DEL; a container
                        # without port mappings: every DEL of a pod).
                        return False
            saved = self.saved(family)
            probe[0] = len(saved.lines.get(ipt.DNAT_CHAIN, ())) >= PROBE_MIN_ENTRIES
            return self._apply_removal(family, ipt.del_script(network, cid, saved))
        return self._remove(remove_in)

    @staticmethod
    def removed_in_process(family: int, network: str, cid: str) -> bool | None:
        """Where iptables is iptables-nft: the container's entry rules in
        CNI-HOSTPORT-DNAT and its two chains removed over nf_tables, in
        one transaction and without an exec (the same change as
        ipt.del_listed_script). None: not done, the iptables-restore ways
        below decide."""
        return remove_chains_in_process(family, ipt.DNAT_CHAIN,
                                        ipt.container_chains(network, cid))

    @staticmethod
    def nameable(conf: PortMapConf | None) -> bool:
        """Can DEL name the rules ADD wrote for `conf`? Not without
        mappings, nor with conditions ADD would have refused: DEL does not
        validate them, so they go into a batch only once they pass ADD's
        checks."""
        if conf is None or not conf.mappings or conf.backend != IPTABLES:
            return False
        from .config import validate_script_inputs
        try:
            validate_script_inputs(conf)
        except CNIError:
            return False
        return True

    @staticmethod
    def exact_script(network: str, cid: str, conf: PortMapConf, family: int) -> str | None:
        """The batch deleting the rules ADD wrote for (nameable) `conf` in
        `family` (ipt.exact_del_script); None when a rule would not fit
        one batch line (then ADD could not have written it either)."""
        try:
            return ipt.exact_del_script(network, cid, ipt.entry_rules(conf, network, cid, family))
        except CNIError:
            return None

    def gc(self, network: str, valid) -> None:
        """GC: the chains of `network`'s attachments not in `valid`."""
        valid_ids = attachment_ids(valid)

        def remove_in(family: int) -> bool:
            saved = self.saved(family)
            return self._apply_removal(family, ipt.gc_script(network, valid_ids, saved))
        self._remove(remove_in)


class NftablesBackend:
    name = NFTABLES

    @staticmethod
    def listing(family: int) -> "tuple[list[nft.ExistingRule], bool]":
        table = nft.TABLES[family]
        found = nft_list(table.family, table.name)
        return ([], False) if found is None else nft.parse_listing(family, found)

    run = staticmethod(nft_apply)

    def setup(self, conf: PortMapConf, network: str, cid: str, cip: ContainerIP) -> None:
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

    def teardown(self, network: str, cid: str, conf: PortMapConf | None = None,
                 families: "tuple[int, ...]" = ()) -> set[int]:
        """Finds the container's rules by their comments: `conf` and
        `families` are not needed."""
        return self._remove(lambda existing: nft.del_rules(network, cid, existing))

    def gc(self, network: str, valid) -> None:
        valid_ids = attachment_ids(valid)
        self._remove(lambda existing: nft.gc_rules(network, valid_ids, existing))


def backend(name: str):
    return IptablesBackend() if name == IPTABLES else NftablesBackend()
