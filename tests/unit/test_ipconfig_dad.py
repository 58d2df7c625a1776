"""DAD settling (pycni.netlink.addr, pycni.ipconfig): the pure decisions,
address flag parsing, and the settle loop over a scripted kernel."""

import socket
import struct

import pytest

from pycni import ipconfig, netlink
from pycni.netlink import link as rtlink, addr as rtaddr
from pycni.netlink import addr_dad as rtdad
from pycni.errors import INTERNAL
from pycni.ipconfig import IfacePlan, settle_error, should_settle
from pycni.netlink.addr_dad import (FAILED, IFA_F_DADFAILED, IFA_F_NODAD, IFA_F_TENTATIVE, settle_state, SETTLED, TIMED_OUT, WAIT)

OK = 0x80        # IFA_F_PERMANENT: a settled static address


# --- settle_state -------------------------------------------------------------

def test_nothing_tentative_is_settled():
    assert settle_state([("fd00::2", OK), ("fe80::1", OK)], False, True, True) == (SETTLED, "")


def test_no_ipv6_address_is_settled():
    assert settle_state([], False, True, True) == (SETTLED, "")


def test_tentative_waits_until_the_deadline():
    assert settle_state([("fd00::2", IFA_F_TENTATIVE)], False, True, True) == (WAIT, "")


def test_dadfailed_fails_at_once_and_names_the_address():
    addrs = [("fe80::1", IFA_F_TENTATIVE), ("fd00::2", IFA_F_TENTATIVE | IFA_F_DADFAILED)]
    assert settle_state(addrs, False, True, True) == (FAILED, "fd00::2")


def test_dadfailed_wins_over_an_expired_deadline():
    assert settle_state([("fd00::2", IFA_F_DADFAILED)], True, True, True) == (FAILED, "fd00::2")


def test_still_tentative_past_the_deadline_on_a_link_that_is_up_is_an_error():
    assert settle_state([("fd00::2", IFA_F_TENTATIVE)], True, True, True) == (TIMED_OUT, "")


def test_past_the_deadline_a_link_that_is_not_up_is_accepted():
    # the reference's rule: DAD cannot finish there, not a failure
    assert settle_state([("fd00::2", IFA_F_TENTATIVE)], True, False, True) == (SETTLED, "")


def test_without_carrier_there_is_nothing_to_wait_for():
    assert settle_state([("fd00::2", IFA_F_TENTATIVE)], False, False, False) == (SETTLED, "")


def test_nodad_addresses_are_not_tentative():
    assert settle_state([("fd00::2", IFA_F_NODAD)], False, True, True) == (SETTLED, "")


# --- should_settle and the errors ---------------------------------------------------

def test_settles_only_with_ipv6_addresses():
    assert should_settle(IfacePlan(addresses=["fd00::2/64"], has_ipv6=True))
    assert not should_settle(IfacePlan(addresses=["10.0.0.2/24"]))


def test_the_caller_can_turn_settling_off_but_not_on_without_ipv6():
    v6 = IfacePlan(addresses=["fd00::2/64"], has_ipv6=True)
    assert not should_settle(v6, settle=False)
    assert should_settle(v6, settle=True)
    assert not should_settle(IfacePlan(addresses=["10.0.0.2/24"]), settle=True)


def test_dadfailed_error_message():
    err = settle_error("eth0", failed_address="fd00::2")
    assert err.code == INTERNAL
    assert err.msg == ('failed to settle addresses for "eth0": link eth0 has address '
                       "fd00::2 in DADFAILED state")
    assert "duplicate address detection" in err.details


def test_timeout_error_message():
    err = settle_error("eth0", timeout=5.0)
    assert err.code == INTERNAL
    assert err.msg == ('failed to settle addresses for "eth0": link eth0 still has '
                       "tentative addresses after 5 seconds")


# --- parsing RTM_NEWADDR ------------------------------------------------------------

def newaddr(address: str, flags: int, index: int = 2, extended: int | None = None,
            family: int = socket.AF_INET6) -> bytes:
    raw = socket.inet_pton(family, address)
    body = struct.pack("=BBBBI", family, 64, flags & 0xFF, 0, index)
    body += netlink.attr(rtaddr.IFA_ADDRESS, raw)
    if extended is not None:
        body += netlink.attr(rtaddr.IFA_FLAGS, struct.pack("=I", extended))
    return body


def test_parse_address_reads_the_header_flags():
    assert rtdad.parse_address(newaddr("fd00::2", IFA_F_TENTATIVE)) == \
        (2, "fd00::2", IFA_F_TENTATIVE)


def test_parse_address_prefers_the_32_bit_ifa_flags_attribute():
    flags = IFA_F_DADFAILED | IFA_F_TENTATIVE | 0x100   # 0x100: IFA_F_MANAGETEMPADDR
    assert rtdad.parse_address(newaddr("fd00::2", 0, extended=flags)) == \
        (2, "fd00::2", flags)


def test_parse_address_skips_ipv4():
    assert rtdad.parse_address(newaddr("10.0.0.2", 0, family=socket.AF_INET)) is None


# --- the loop, over a scripted kernel --------------------------------------------------

def newlink(index: int, operstate: int = 6, flags: int = 0x10041) -> bytes:
    body = struct.pack("=BxHiII", 0, 1, index, flags, 0)
    return body + netlink.attr(rtlink.IFLA_OPERSTATE, bytes([operstate]))


class ScriptedKernel:
    """nl.request answers: the link, then each look's addresses in turn
    (the last one repeats)."""

    def __init__(self, looks, operstate=6, flags=0x10041):
        self.looks = list(looks)
        self.operstate, self.flags = operstate, flags
        self.dumps = 0

    def request(self, msg_type, flags, body):
        if msg_type == rtlink.RTM_GETLINK:
            (index,) = struct.unpack_from("=i", body, 4)
            return [(rtlink.RTM_NEWLINK, newlink(index, self.operstate, self.flags))]
        assert msg_type == rtaddr.RTM_GETADDR
        look = self.looks[min(self.dumps, len(self.looks) - 1)]
        self.dumps += 1
        return [(rtaddr.RTM_NEWADDR, newaddr(a, f, index=2)) for a, f in look]


@pytest.fixture
def fake_time(monkeypatch):
    now = [0.0]
    waits = []

    def wait(sock, seconds):
        waits.append(seconds)
        now[0] += seconds
    monkeypatch.setattr(rtdad, "_listener", lambda: None)
    monkeypatch.setattr(rtdad, "_wait", wait)
    return now, waits


def run_settle(kernel, now, timeout=5.0):
    return rtdad.settle(kernel, 2, timeout=timeout, clock=lambda: now[0])


def test_settle_returns_at_once_when_nothing_is_tentative(fake_time):
    now, waits = fake_time
    kernel = ScriptedKernel([[("fd00::2", OK)]])
    run_settle(kernel, now)
    assert kernel.dumps == 1 and waits == []


def test_settle_waits_until_dad_is_done_in_steps_of_at_most_50_ms(fake_time):
    now, waits = fake_time
    kernel = ScriptedKernel([[("fd00::2", IFA_F_TENTATIVE)]] * 3 + [[("fd00::2", OK)]])
    run_settle(kernel, now)
    assert kernel.dumps == 4 and waits == [0.05] * 3


def test_settle_raises_dadfailed(fake_time):
    now, _ = fake_time
    kernel = ScriptedKernel([[("fd00::2", IFA_F_TENTATIVE)],
                             [("fd00::2", IFA_F_TENTATIVE | IFA_F_DADFAILED)]])
    with pytest.raises(rtdad.DadFailed) as exc:
        run_settle(kernel, now)
    assert exc.value.address == "fd00::2"


def test_settle_is_bounded(fake_time):
    now, waits = fake_time
    kernel = ScriptedKernel([[("fd00::2", IFA_F_TENTATIVE)]])
    with pytest.raises(rtdad.StillTentative):
        run_settle(kernel, now, timeout=1.0)
    assert 0.99 <= sum(waits) <= 1.01


def test_settle_accepts_a_link_that_never_came_up(fake_time):
    now, _ = fake_time
    kernel = ScriptedKernel([[("fd00::2", IFA_F_TENTATIVE)]], operstate=2)
    run_settle(kernel, now, timeout=1.0)


def test_configure_iface_keeps_its_positional_signature():
    # ptp and others call configure_iface(ifname, result); the new knobs
    # are keyword-only
    import inspect
    params = inspect.signature(ipconfig.configure_iface).parameters
    assert list(params)[:2] == ["ifname", "result"]
    assert all(p.kind == p.KEYWORD_ONLY for p in list(params.values())[2:])


class EndlessSocket:
    """A group socket that always has another message queued."""

    def __init__(self):
        self.reads = 0

    def settimeout(self, seconds):
        pass

    def setblocking(self, flag):
        pass

    def recv(self, size):
        self.reads += 1
        return b"x" * 16


def test_wait_drains_a_bounded_number_of_messages():
    sock = EndlessSocket()
    rtdad._wait(sock, 0.05)
    assert sock.reads == 1 + rtdad.DRAIN_READS


def test_wait_returns_on_a_timeout():
    class Quiet(EndlessSocket):
        def recv(self, size):
            raise TimeoutError("timed out")
    rtdad._wait(Quiet(), 0.05)


def test_the_listener_joins_the_ipv6_address_group():
    sock = rtdad._listener()
    if sock is None:
        pytest.skip("no netlink here")
    try:
        assert sock.getsockname()[1] == 1 << (rtdad.RTNLGRP_IPV6_IFADDR - 1)
    finally:
        sock.close()
