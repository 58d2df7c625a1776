"""The lines of an `nft -f -` script that every backend writing nft
scripts for a table of its own (portmap, firewall) writes the same way.

A plugin's table is a `Table`: its family, name and comment. Its scripts
start by declaring it (`add` never fails on what exists, so a repeated
or racing ADD declares the same things again), and remove rules by the
handle `nft -j list table` reported. What else goes into a script is the
plugin's (rules_nftables); names and values from a config are quoted
with pycni.fwquote before they get here.
"""

from .fwquote import nft_identifier

# the nft family of an IP version's table, and the name of its address
# expressions (`ip daddr`, `ip6 saddr`)
IP_FAMILY = {4: "ip", 6: "ip6"}


class Table:
    """One nft table a plugin owns; `ref` ("FAMILY NAME") is how a
    script names it."""

    __slots__ = ("family", "name", "comment", "ref")

    def __init__(self, family: str, name: str, comment: str):
        self.family, self.name, self.comment = family, name, comment
        self.ref = f"{family} {name}"

    def declare(self, chains) -> list[str]:
        """Create the table with its comment and its regular (hookless)
        `chains`, each where missing."""
        return [f'add table {self.ref} {{ comment "{self.comment}" ; }}',
                *[f"add chain {self.ref} {chain}" for chain in chains]]

    def delete_rule(self, chain: str, handle) -> str:
        """Delete the rule with `handle` (as listed) from `chain`."""
        return f"delete rule {self.ref} {nft_identifier(chain)} handle {int(handle):d}"
