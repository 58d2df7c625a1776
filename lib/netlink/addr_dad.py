"""IPv6 duplicate address detection (DAD) for the addr family: wait until
a link's addresses have settled, as the reference's ip.SettleAddresses
does.

A new IPv6 address is `tentative` until DAD has run on it (one neighbour
solicitation, then a second's wait, after a random delay of up to one
more; immediately when DAD is off for the link), and is marked
`dadfailed` when another node answered for it. The kernel announces both
changes as RTM_NEWADDR on the RTNLGRP_IPV6_IFADDR group: `settle` listens
on that group, so it returns as soon as the state changes instead of a
polling interval later, and still re-reads the addresses at least every
50 ms (the reference's interval) in case a message was lost.

`settle_state` is the pure decision; `settle` gathers the state with
netlink and raises `DadFailed` / `StillTentative`, which callers turn
into their CNI error. Only a link that got an IPv6 address needs this,
so it lives apart from `addr`, which every address-setting plugin loads.
"""

import struct
import time

import _socket as socket

from . import NETLINK_ROUTE, NLM_F_DUMP, RtNetlink, parse_attrs
from . import link as rtlink
from .addr import _IFADDRMSG, IFA_ADDRESS, IFA_FLAGS, IFA_LOCAL, RTM_GETADDR, RTM_NEWADDR

IFA_F_NODAD = 0x02
IFA_F_OPTIMISTIC = 0x04
IFA_F_DADFAILED = 0x08
IFA_F_TENTATIVE = 0x40

RTNLGRP_IPV6_IFADDR = 9
IF_OPER_UP = 6

SETTLE_TIMEOUT = 5.0       # seconds, the reference's dadSettleTimeout
SETTLE_INTERVAL = 0.05     # seconds, the reference's SETTLE_INTERVAL
DRAIN_READS = 64

SETTLED, WAIT, FAILED, TIMED_OUT = "settled", "wait", "failed", "timed-out"


class DadFailed(Exception):
    def __init__(self, address: str):
        super().__init__(address)
        self.address = address


class StillTentative(Exception):
    pass


def address_flags(nl: RtNetlink, index: int) -> list[tuple[str, int]]:
    """(address, IFA_F_* flags) of each IPv6 address of link `index`. The
    32-bit IFA_FLAGS attribute when present (the header byte holds only
    the low 8 bits)."""
    body = _IFADDRMSG.pack(socket.AF_INET6, 0, 0, 0, index)
    out = []
    for kind, payload in nl.request(RTM_GETADDR, NLM_F_DUMP, body):
        if kind != RTM_NEWADDR:
            continue
        parsed = parse_address(payload)
        if parsed is not None and parsed[0] == index:
            out.append(parsed[1:])
    return out


def parse_address(payload: bytes) -> tuple[int, str, int] | None:
    """(ifindex, address, flags) of one RTM_NEWADDR body of the IPv6
    family, None for anything else."""
    family, _prefixlen, flags, _scope, ifindex = _IFADDRMSG.unpack_from(payload)
    if family != socket.AF_INET6:
        return None
    attrs = parse_attrs(payload[_IFADDRMSG.size:])
    raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
    if raw is None or len(raw) != 16:
        return None
    if len(attrs.get(IFA_FLAGS, b"")) == 4:
        (flags,) = struct.unpack("=I", attrs[IFA_FLAGS])
    return ifindex, socket.inet_ntop(socket.AF_INET6, raw), flags


def settle_state(addresses: list[tuple[str, int]], expired: bool, oper_up: bool,
                 carrier: bool) -> tuple[str, str]:
    """What to do after one look at a link's IPv6 addresses: (SETTLED, ""),
    (WAIT, ""), (FAILED, address) or (TIMED_OUT, "").

    A dadfailed address fails at once (as in the reference). Without
    carrier DAD cannot start, so tentative addresses would stay so until
    the link gets one: nothing to wait for (the reference waits out its
    timeout, then succeeds the same way). Past the deadline a link that
    is operationally up but still tentative is an error; one that is not
    up is accepted (the reference's rule).
    """
    tentative = False
    for address, flags in addresses:
        if flags & IFA_F_DADFAILED:
            return FAILED, address
        if flags & IFA_F_TENTATIVE:
            tentative = True
    if not tentative or not carrier:
        return SETTLED, ""
    if expired:
        return (TIMED_OUT, "") if oper_up else (SETTLED, "")
    return WAIT, ""


def _listener() -> "socket.socket | None":
    """A socket on the IPv6 address group of the current netns, or None
    (then `settle` only polls)."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                             NETLINK_ROUTE)
    except OSError:
        return None
    try:
        sock.bind((0, 1 << (RTNLGRP_IPV6_IFADDR - 1)))
    except OSError:
        sock.close()
        return None
    return sock


def _wait(sock, seconds: float) -> None:
    """Until an IPv6 address message arrives or `seconds` pass; drains
    what is queued (a bounded number of reads: processes in the container
    may change addresses without end) so the next wait blocks again."""
    if sock is None:
        time.sleep(seconds)
        return
    sock.settimeout(seconds)
    try:
        sock.recv(1 << 16)
    except OSError:       # timeout, or ENOBUFS after an overrun: look again
        return
    sock.setblocking(False)
    try:
        for _ in range(DRAIN_READS):
            sock.recv(1 << 16)
    except OSError:       # nothing more queued
        pass


def settle(nl: RtNetlink, index: int, timeout: float = SETTLE_TIMEOUT,
           interval: float = SETTLE_INTERVAL, clock=time.monotonic) -> None:
    """Return once no IPv6 address of link `index` is tentative (or DAD
    cannot run: no carrier; or the deadline passed on a link that is not
    up). Raises DadFailed(address) or StillTentative. Must run in the
    link's network namespace (the listener is opened there)."""
    sock = _listener()
    try:
        deadline = clock() + timeout
        while True:
            link = rtlink.get_link_by_index(nl, index)
            if link is None:
                return    # gone: whoever removed it reports that
            addresses = address_flags(nl, index)
            now = clock()
            state, address = settle_state(
                addresses, now >= deadline, link.operstate == IF_OPER_UP,
                bool(link.flags & rtlink.IFF_LOWER_UP))
            if state == SETTLED:
                return
            if state == FAILED:
                raise DadFailed(address)
            if state == TIMED_OUT:
                raise StillTentative()
            _wait(sock, max(0.001, min(interval, deadline - now)))
    finally:
        if sock is not None:
            sock.close()
