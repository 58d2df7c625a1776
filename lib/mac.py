"""Hardware addresses as the reference reads them (Go's net.ParseMAC, its
one grammar for every plugin): 6 (MAC-48), 8 (EUI-64) or 20 (IP over
InfiniBand) octets, written aa:bb:.., aa-bb-.. (one separator throughout)
or aabb.ccdd.eeff.. (groups of four hex digits). Each plugin words its
own refusal, as its reference twin does."""

_HEX = frozenset("0123456789abcdefABCDEF")


def parse(text: str) -> bytes | None:
    """The octets `text` spells, or None where Go's ParseMAC refuses it."""
    if len(text) < 14:
        return None
    if text[2] in ":-":
        if (len(text) + 1) % 3:
            return None
        parts = text.split(text[2])
        if any(len(p) != 2 for p in parts):
            return None
    elif text[4] == ".":
        if (len(text) + 1) % 5:
            return None
        groups = text.split(".")
        if any(len(g) != 4 for g in groups):
            return None
        parts = [g[i:i + 2] for g in groups for i in (0, 2)]
    else:
        return None
    if len(parts) not in (6, 8, 20) or any(not set(p) <= _HEX for p in parts):
        return None
    return bytes(int(p, 16) for p in parts)


def text(octets: bytes) -> str:
    """Lower-case colon form, as Go's HardwareAddr.String."""
    return ":".join(f"{b:02x}" for b in octets)


def unicast_problem(octets: bytes) -> str | None:
    """Why `octets` cannot be an interface's Ethernet address (the kernel
    would refuse it with a less helpful EADDRNOTAVAIL), or None."""
    if octets[0] & 1:
        return "a multicast address cannot be an interface address"
    if not any(octets):
        return "the all-zero address cannot be an interface address"
    return None


def interface_mac(spelling: str) -> str:
    """A unicast Ethernet address for a new interface (macvlan's and tap's
    `mac`, runtimeConfig and CNI_ARGS MAC), lower-case colon form; code 7
    with the reference's words otherwise."""
    from .errors import CNIError, INVALID_NETWORK_CONFIG
    octets = parse(spelling)
    if octets is None or len(octets) != 6:
        problem: str | None = f"address {spelling}: invalid MAC address"
    else:
        problem = unicast_problem(octets)
        if not problem:
            return text(octets)
    raise CNIError(INVALID_NETWORK_CONFIG, f"invalid args {spelling} for MAC addr: {problem}")


# --- the MAC a plugin puts on the link it creates (macvlan, tap) ---------------
# Where its candidates come from (CNI_ARGS MAC=, runtimeConfig.mac,
# args.cni.mac) is read by pycni.args (mac_from_cni_args, config_string),
# so that this module loads only when one of them is set.

def choose(*candidates: str) -> str:
    """The first of `candidates` that is set (the caller lists them most
    specific first: runtimeConfig.mac, then CNI_ARGS or args, then the
    config key), normalised by interface_mac; "" when none is (the
    kernel's choice)."""
    for candidate in candidates:
        if candidate:
            return interface_mac(candidate)
    return ""
