"""Range sets (the reference's backend/allocator/range_set.go): the ranges
of one entry of `ranges`, one address family, none overlapping; ADD hands
out one address per set."""

from .range import Range, RangeConf, canonicalize_range, overlaps

RangeSet = tuple[Range, ...]


def range_set_text(rs: RangeSet) -> str:
    return ",".join(str(r) for r in rs)


def range_set_family(rs: RangeSet) -> int:
    return rs[0].family


def range_for(rs: RangeSet, family: int, value: int) -> Range | None:
    for r in rs:
        if r.contains(family, value):
            return r
    return None


def canonicalize_set(confs: list[RangeConf]) -> RangeSet:
    """The reference's RangeSet.Canonicalize; raises ValueError."""
    if not confs:
        raise ValueError("empty range set")
    ranges: list[Range] = []
    for rc in confs:
        r = canonicalize_range(rc)
        if ranges and r.family != ranges[0].family:
            raise ValueError("mixed address families")
        ranges.append(r)
    for i, r1 in enumerate(ranges):
        for r2 in ranges[i + 1:]:
            if overlaps(r1, r2):
                raise ValueError(f"subnets {r1} and {r2} overlap")
    return tuple(ranges)


def sets_overlap(s1: RangeSet, s2: RangeSet) -> bool:
    return any(overlaps(a, b) for a in s1 for b in s2)
