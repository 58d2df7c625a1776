"""GC and STATUS decisions (pure).

GC keeps an allocation when its (containerID, ifname) is a valid
attachment; a legacy file (containerID only) is kept when any valid
attachment has that containerID. Everything else whose name is an address
goes, also with an empty valid list. The lock, the round-robin cursors and
anything not named like an address are never touched.
"""

from .range import parse_ip
from .range_set import RangeSet, range_for
from .store import is_allocation_name, parse_owner


def is_address(name: str) -> bool:
    try:
        parse_ip(name)
    except ValueError:
        return False
    return "/" not in name


def stale_allocations(allocs: dict[str, str], valid: set[tuple[str, str]]) -> list[str]:
    valid_ids = {cid for cid, _ in valid}
    stale = []
    for name, content in allocs.items():
        if not is_allocation_name(name) or not is_address(name):
            continue
        cid, ifname = parse_owner(content)
        keep = cid in valid_ids if ifname is None else (cid, ifname) in valid
        if not keep:
            stale.append(name)
    return sorted(stale)


def exhausted_sets(range_sets: list[RangeSet], taken: set[str]) -> list[tuple[int, RangeSet]]:
    """Range sets without a single free address."""
    used: list[int] = [0] * len(range_sets)
    for name in taken:
        try:
            family, value = parse_ip(name)
        except ValueError:
            continue
        for i, rs in enumerate(range_sets):
            r = range_for(rs, family, value)
            if r is not None:
                if not r.never_handed_out(value):
                    used[i] += 1
                break
    return [(i, rs) for i, rs in enumerate(range_sets)
            if sum(r.usable() for r in rs) - used[i] <= 0]
