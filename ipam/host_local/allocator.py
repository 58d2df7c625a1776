"""Choosing addresses: round-robin over a range set, requested addresses,
the duplicate-allocation rule. Pure logic over a `StoreView`.

Order of candidates (the reference's RangeIter): the range set is one
cyclic sequence (range 0 start..end, range 1 start..end, ...). Allocation
starts right after the address recorded in `last_reserved_ip.<set index>`
when that address is still in the set, else at the first range's start,
and visits every address once, the last reserved one last. The gateway,
the network address and the v4 broadcast address are never handed out.
"""

from pycni.errors import CNIError, INTERNAL, INVALID_NETWORK_CONFIG
from pycni.result import IPConfig

from .config import Settings
from .range import ip_text, parse_ip
from .range_set import RangeSet, range_for, range_set_text

# After this many taken candidates in a row, list the taken names once
# instead of probing every further address with a failing create.
PROBES_BEFORE_LISTING = 8


class StoreView:
    """What allocation needs from a store (called with its lock held);
    store.DiskStore provides it. (Not a typing.Protocol: importing typing
    costs milliseconds in every call.)"""

    def reserve(self, name: str, container_id: str, ifname: str,  # type: ignore[empty-body]
                set_index: int) -> bool: ...

    def last_reserved(self, set_index: int) -> str | None: ...

    def owned(self, container_id: str, ifname: str) -> list[str]: ...  # type: ignore[empty-body]

    def taken(self) -> set[str]: ...  # type: ignore[empty-body]

    def unreserve(self, names: list[str], container_id: str, ifname: str) -> None: ...


def candidates(rs: RangeSet, last: tuple[int, int] | None):   # yields (Range, int)
    """Every allocatable address of `rs` once, in round-robin order."""
    first, value = 0, rs[0].start
    for i, r in enumerate(rs):
        if last is not None and r.contains(*last):
            if last[1] < r.end:
                first, value = i, last[1] + 1
            else:
                first = (i + 1) % len(rs)
                value = rs[first].start
            break
    segments = [(rs[first], value, rs[first].end)]
    segments += [(rs[(first + k) % len(rs)], rs[(first + k) % len(rs)].start,
                  rs[(first + k) % len(rs)].end) for k in range(1, len(rs))]
    if value > rs[first].start:
        segments.append((rs[first], rs[first].start, value - 1))
    for r, lo, hi in segments:
        for v in range(lo, hi + 1):
            if not r.never_handed_out(v):
                yield r, v


def _last_reserved(store: StoreView, index: int) -> tuple[int, int] | None:
    text = store.last_reserved(index)
    if not text:
        return None
    try:
        return parse_ip(text)
    except ValueError:
        return None     # unreadable: we only lose round-robin once, as the reference


def _ip_in_set(rs: RangeSet, name: str) -> bool:
    try:
        return range_for(rs, *parse_ip(name)) is not None
    except ValueError:
        return False


def allocate_in_set(rs: RangeSet, index: int, store: StoreView, container_id: str,
                    ifname: str, requested: tuple[int, int] | None) -> IPConfig:
    """One address of range set `rs` for (container_id, ifname)."""
    if requested is not None:
        r = range_for(rs, *requested)
        assert r is not None            # allocate() passes an address of this set
        text = r.text(requested[1])
        if requested[1] == r.gateway:
            raise CNIError(INVALID_NETWORK_CONFIG, f"requested ip {text} is subnet's gateway")
        if r.never_handed_out(requested[1]):
            raise CNIError(INVALID_NETWORK_CONFIG,
                           f"requested ip {text} is the network or broadcast address "
                           f"of {r.subnet_text()}")
        if not store.reserve(text, container_id, ifname, index):
            raise CNIError(INTERNAL, f"requested IP address {text} is not available "
                           f"in range set {range_set_text(rs)}")
        return IPConfig(address=r.cidr(requested[1]), gateway=r.text(r.gateway))

    for name in store.owned(container_id, ifname):
        if _ip_in_set(rs, name):
            raise CNIError(INTERNAL, f"{name} has been allocated to {container_id}, "
                           f"duplicate allocation is not allowed")

    taken: set[str] | None = None
    misses = 0
    for r, value in candidates(rs, _last_reserved(store, index)):
        text = r.text(value)
        if taken is not None and text in taken:
            continue
        if store.reserve(text, container_id, ifname, index):
            return IPConfig(address=r.cidr(value), gateway=r.text(r.gateway))
        misses += 1
        if taken is None and misses >= PROBES_BEFORE_LISTING:
            taken = store.taken()
    raise CNIError(INTERNAL, f"no IP addresses available in range set: {range_set_text(rs)}")


def allocate(config: Settings, store: StoreView, container_id: str, ifname: str) -> list[IPConfig]:
    """One address per range set, honouring requested addresses. On any
    failure the addresses this call reserved are released again (only
    those: an allocation the container held before is left alone)."""
    pending = list(config.requested)
    ips: list[IPConfig] = []
    try:
        for index, rs in enumerate(config.range_sets):
            wanted = next((ip for ip in pending if range_for(rs, *ip) is not None), None)
            if wanted is not None:
                pending.remove(wanted)
            try:
                ips.append(allocate_in_set(rs, index, store, container_id, ifname, wanted))
            except CNIError as err:
                err.msg = f"failed to allocate for range {index}: {err.msg}"
                raise
        if pending:
            missing = " ".join(ip_text(*ip) for ip in pending)
            raise CNIError(INVALID_NETWORK_CONFIG,
                           f"failed to allocate all requested IPs: {missing}")
    except CNIError:
        if ips:
            store.unreserve([ip.address.split("/")[0] for ip in ips], container_id, ifname)
        raise
    return ips
