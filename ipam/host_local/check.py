"""CHECK's decision (pure): is what the store holds for the container
what it should hold?"""

from .config import Settings
from .range import ip_text, parse_ip
from .range_set import range_for, range_set_text


def check_problem(conf: Settings, held: list[str], prev_result, container_id: str) -> str:
    """CHECK: what is wrong with the addresses `held` by the container, or "".

    The reference only asks for at least one address. We also ask that every
    address of the previous result that lies in our ranges is held, or,
    without a previous result, that every range set has one held address.
    """
    if not held:
        return f"Failed to find address added by container {container_id}"
    owned = set()
    for name in held:
        try:
            owned.add(parse_ip(name))
        except ValueError:
            continue
    if prev_result is not None:
        for ipc in prev_result.ips:
            try:
                ip = parse_ip(ipc.address)
            except ValueError:
                continue
            in_ours = any(range_for(rs, *ip) for rs in conf.range_sets)
            if in_ours and ip not in owned:
                return f"address {ip_text(*ip)} is not allocated to container {container_id}"
        return ""
    for i, rs in enumerate(conf.range_sets):
        if not any(range_for(rs, *ip) for ip in owned):
            return f"no address of range set {i} ({range_set_text(rs)}) is allocated " \
                   f"to container {container_id}"
    return ""
