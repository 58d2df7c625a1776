"""The sbr configuration and every decision that needs no kernel.

sbr (source-based routing) is a chained plugin. For the interface
CNI_IFNAME it makes replies leave through the interface their request
came in on: each of the interface's addresses (from prevResult) gets a
rule `from ADDR lookup TABLE`, and, unless the config names a `table`,
the interface's routes move from the main table into that table. What
follows is pure, so unit tests cover it without root: the config model,
which prevResult addresses belong to the interface, which tables are
free, which routes go to which table.
"""

from pycni import ipaddr
from pycni.config import NetConf
from pycni.decode import decode, lookup
from pycni.errors import CNIError, INVALID_NETWORK_CONFIG
from pycni.model import dataclass, field
from pycni.result import IPConfig, Result

FIRST_TABLE = 100
TABLE_MAX = 0xFFFFFFFF


@dataclass
class SbrConf(NetConf):
    # None: pick a free table per address and move the interface's routes
    # there; a number: only add the rules, to this table.
    table: int | None = None


def invalid(msg: str, details: str = "") -> CNIError:
    return CNIError(INVALID_NETWORK_CONFIG, msg, details)


def check_table(table: int | None) -> int | None:
    if table is not None and not 0 < table <= TABLE_MAX:
        raise invalid(f"invalid table {table}, must be [1, {TABLE_MAX}]",
                      "a routing table id is an unsigned 32-bit number; 0 means none")
    return table


def load(config: dict) -> int | None:
    """ADD/CHECK: the configured table (None for automatic), validated."""
    return check_table(decode(SbrConf, config).table)


def table_for_delete(config: dict) -> int | None:
    """DEL reads `table` alone and never fails on it: a value that does
    not validate means no table, so DEL looks at the rules of every
    table (as it does without one)."""
    value = lookup(config, "table")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 < value <= TABLE_MAX else None


def require_prev_result(prev: Result | None) -> Result:
    if prev is None:
        raise invalid("This plugin must be called as chained plugin",
                      "sbr changes the routing of an interface an earlier plugin configured")
    return prev


def interface_ips(prev: Result, ifname: str) -> list[IPConfig]:
    """The prevResult addresses of `ifname`, as the reference picks them:
    an address without an interface index, or with an index outside the
    interfaces list, counts as the interface's; one whose index names
    another interface does not. No address at all is an error; none for
    this interface is not (there is then nothing to do)."""
    if not prev.ips:
        raise invalid(f"No IP addresses supplied on interface: {ifname}")
    out = []
    for ip in prev.ips:
        index = ip.interface
        if index is not None and 0 <= index < len(prev.interfaces) \
                and prev.interfaces[index].name != ifname:
            continue
        out.append(ip)
    return out


def host_address(ip: IPConfig) -> str:
    """The rule's source: the address alone (a /32 or /128)."""
    return str(ipaddr.ip_interface(ip.address).ip)


# --- tables ----------------------------------------------------------------------

def next_free_table(used: set[int], candidate: int) -> int:
    """The first table id from `candidate` on that nothing uses."""
    table = candidate
    while table in used:
        table += 1
    if table > TABLE_MAX:
        raise CNIError(INVALID_NETWORK_CONFIG, "no free routing table left")
    return table


# --- moving routes ---------------------------------------------------------------

@dataclass
class TablePlan:
    """What one address gets: its rule's source, its table, a default
    route via its gateway (if it has one), and the interface's routes
    copied into the table (indexes into the interface's route list)."""
    source: str
    table: int
    gateway: str = ""
    copies: list[int] = field(default_factory=list)


def _contains(network, address: str) -> bool:
    return bool(address) and ipaddr.ip_address(address) in network


def belongs_to(ip: IPConfig, prefsrc: str, gw: str) -> bool:
    """Whether a route of the interface goes into `ip`'s table: its
    preferred source or its gateway lies in `ip`'s subnet, or it has
    neither (a plain device route, of either family)."""
    network = ipaddr.ip_interface(ip.address).network
    return _contains(network, prefsrc) or _contains(network, gw) or (not prefsrc and not gw)


def plan_tables(ips: list[IPConfig], routes: list[tuple[str, str]],
                used: set[int]) -> list[TablePlan]:
    """One table per address, the first free from 100 and then the next
    free ones; `routes` are the interface's main-table routes as
    (preferred source, gateway) pairs."""
    plans = []
    table = next_free_table(used, FIRST_TABLE)
    for ip in ips:
        copies = [i for i, (prefsrc, gw) in enumerate(routes) if belongs_to(ip, prefsrc, gw)]
        plans.append(TablePlan(source=host_address(ip), table=table, gateway=ip.gateway,
                               copies=copies))
        table = next_free_table(used, table + 1)
    return plans
