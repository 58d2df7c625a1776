"""Traffic-control objects over rtnetlink: TBF and ingress qdiscs and the u32
filter that redirects a veth's incoming traffic to an IFB device.

Messages are built and dumps parsed by pure functions (unit-tested); the
apply/list helpers at the bottom only send them on an `RtNetlink` socket.

Why rtnetlink and not `tc`: the messages below are the ones the reference
plugin sends, so the kernel ends up in the same state, field for field.
`tc qdisc add ... tbf` differs: it sends the burst in bytes (the kernel
then recomputes the bucket time, which can read back one tick off) and a
rate table marked "ethernet" (the reference's qdisc reads "unspec"). It
also costs a fork/exec per call.
"""

import struct
from pycni.model import dataclass, field

from pycni.netlink import (NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, attr, attr_items, attr_str,
                           attr_str_value, attr_u32, parse_attrs)

from .config import TbfParams, UINT32_MAX

RTM_NEWQDISC, RTM_DELQDISC, RTM_GETQDISC = 36, 37, 38
RTM_NEWTFILTER, RTM_DELTFILTER, RTM_GETTFILTER = 44, 45, 46

TC_H_ROOT = 0xFFFFFFFF
TC_H_INGRESS = 0xFFFFFFF1
INGRESS_HANDLE = 0xFFFF0000      # ffff:
TBF_HANDLE = 0x00010000          # 1:
REDIRECT_CLASSID = 0x00010001    # 1:1, as the reference sets it
FILTER_PRIORITY = 1
ETH_P_ALL = 0x0003

TCA_KIND, TCA_OPTIONS = 1, 2
TCA_TBF_PARMS, TCA_TBF_RATE64 = 1, 4
TCA_U32_CLASSID, TCA_U32_SEL, TCA_U32_ACT = 1, 5, 7
TC_U32_TERMINAL = 1
TCA_ACT_KIND, TCA_ACT_OPTIONS = 1, 2
TCA_MIRRED_PARMS = 2
TCA_EGRESS_REDIR = 1
TC_ACT_OK = 0
TC_ACT_STOLEN = 4

# struct tcmsg: family, ifindex, handle, parent, info
_TCMSG = struct.Struct("=BxxxiIII")
# struct tc_ratespec: cell_log, linklayer, overhead, cell_align, mpu, rate
_RATESPEC = struct.Struct("=BBHhHI")
# struct tc_tbf_qopt: rate, peakrate, limit, buffer, mtu
_TBF_QOPT = struct.Struct("=12s12sIII")
# struct tc_u32_sel: flags, offshift, nkeys, offmask, off, offoff, hoff, hmask
_U32_SEL = struct.Struct("=BBBxHHhhI")
# struct tc_u32_key: mask, val, off, offmask
_U32_KEY = struct.Struct("=IIii")
# struct tc_mirred: tc_gen (index, capab, action, refcnt, bindcnt), eaction, ifindex
_MIRRED = struct.Struct("=IIiiiiI")


def tcmsg(ifindex: int, handle: int = 0, parent: int = 0, info: int = 0) -> bytes:
    return _TCMSG.pack(0, ifindex, handle, parent, info)


# --- requests -------------------------------------------------------------------

def tbf_qdisc(ifindex: int, params: TbfParams) -> bytes:
    """Root TBF qdisc 1: (rate bytes/s, limit bytes, buffer ticks). No rate
    table, no peak rate, link layer left unspecified: the reference's message."""
    rate = _RATESPEC.pack(0, 0, 0, 0, 0, params.rate & UINT32_MAX)
    qopt = _TBF_QOPT.pack(rate, bytes(_RATESPEC.size), params.limit, params.buffer, 0)
    options = attr(TCA_TBF_PARMS, qopt)
    if params.rate > UINT32_MAX:
        options += attr(TCA_TBF_RATE64, struct.pack("=Q", params.rate))
    return (tcmsg(ifindex, TBF_HANDLE, TC_H_ROOT) + attr_str(TCA_KIND, "tbf")
            + attr(TCA_OPTIONS, options))


def ingress_qdisc(ifindex: int) -> bytes:
    return (tcmsg(ifindex, INGRESS_HANDLE, TC_H_INGRESS) + attr_str(TCA_KIND, "ingress")
            + attr(TCA_OPTIONS, b""))


def _mirred(order: int, target: int, control: int) -> bytes:
    parms = _MIRRED.pack(0, 0, control, 0, 0, TCA_EGRESS_REDIR, target)
    return attr(order, attr_str(TCA_ACT_KIND, "mirred")
                + attr(TCA_ACT_OPTIONS, attr(TCA_MIRRED_PARMS, parms)))


def redirect_filter(ifindex: int, target: int) -> bytes:
    """u32 filter under ffff: matching every packet (one all-zero key) and
    redirecting it to link `target`.

    The reference's netlink library adds the redirect twice (once for its
    legacy RedirIndex field, once from the action list; the second, "pass",
    never runs since the first steals the packet). Both are kept so that the
    kernel state is the reference's.
    """
    sel = _U32_SEL.pack(TC_U32_TERMINAL, 0, 1, 0, 0, 0, 0, 0) + _U32_KEY.pack(0, 0, 0, 0)
    actions = _mirred(1, target, TC_ACT_STOLEN) + _mirred(2, target, TC_ACT_OK)
    options = (attr(TCA_U32_SEL, sel) + attr_u32(TCA_U32_CLASSID, REDIRECT_CLASSID)
               + attr(TCA_U32_ACT, actions))
    info = (FILTER_PRIORITY << 16) | _htons(ETH_P_ALL)
    return (tcmsg(ifindex, 0, INGRESS_HANDLE, info) + attr_str(TCA_KIND, "u32")
            + attr(TCA_OPTIONS, options))


def _htons(value: int) -> int:
    return struct.unpack("=H", struct.pack("!H", value))[0]


# --- dumps ----------------------------------------------------------------------

@dataclass
class Qdisc:
    ifindex: int
    kind: str
    handle: int
    parent: int
    tbf: TbfParams | None = None    # for kind "tbf"


@dataclass
class Redirect:
    ifindex: int       # target link
    eaction: int       # TCA_EGRESS_REDIR, ...
    control: int       # TC_ACT_STOLEN, ...


@dataclass
class Filter:
    ifindex: int
    kind: str
    parent: int
    priority: int
    protocol: int
    classid: int = 0
    redirects: list[Redirect] = field(default_factory=list)


def parse_qdisc(payload: bytes) -> Qdisc:
    _family, ifindex, handle, parent, _info = _TCMSG.unpack_from(payload)
    attrs = parse_attrs(payload[_TCMSG.size:])
    qdisc = Qdisc(ifindex, attr_str_value(attrs, TCA_KIND), handle, parent)
    if qdisc.kind == "tbf":
        options = parse_attrs(attrs.get(TCA_OPTIONS, b""))
        raw = options.get(TCA_TBF_PARMS)
        if raw and len(raw) >= _TBF_QOPT.size:
            rate_spec, _peak, limit, buffer, _mtu = _TBF_QOPT.unpack_from(raw)
            rate = _RATESPEC.unpack(rate_spec)[5]
            if TCA_TBF_RATE64 in options:
                rate = struct.unpack("=Q", options[TCA_TBF_RATE64][:8])[0]
            qdisc.tbf = TbfParams(rate=rate, limit=limit, buffer=buffer)
    return qdisc


def parse_filter(payload: bytes) -> Filter:
    _family, ifindex, _handle, parent, info = _TCMSG.unpack_from(payload)
    attrs = parse_attrs(payload[_TCMSG.size:])
    flt = Filter(ifindex, attr_str_value(attrs, TCA_KIND), parent, info >> 16,
                 _htons(info & 0xFFFF))
    if flt.kind != "u32":
        return flt
    options = parse_attrs(attrs.get(TCA_OPTIONS, b""))
    if TCA_U32_CLASSID in options:
        flt.classid = struct.unpack("=I", options[TCA_U32_CLASSID][:4])[0]
    for _order, action in sorted(attr_items(options.get(TCA_U32_ACT, b""))):
        act = parse_attrs(action)
        if attr_str_value(act, TCA_ACT_KIND) != "mirred":
            continue
        parms = parse_attrs(act.get(TCA_ACT_OPTIONS, b"")).get(TCA_MIRRED_PARMS)
        if parms and len(parms) >= _MIRRED.size:
            _i, _c, control, _r, _b, eaction, target = _MIRRED.unpack_from(parms)
            flt.redirects.append(Redirect(target, eaction, control))
    return flt


# --- applying (thin) --------------------------------------------------------------

def _create(nl, msg_type: int, body: bytes) -> None:
    nl.request(msg_type, NLM_F_CREATE | NLM_F_EXCL, body)


def add_tbf(nl, ifindex: int, params: TbfParams) -> None:
    _create(nl, RTM_NEWQDISC, tbf_qdisc(ifindex, params))


def add_ingress(nl, ifindex: int) -> None:
    _create(nl, RTM_NEWQDISC, ingress_qdisc(ifindex))


def add_redirect(nl, ifindex: int, target: int) -> None:
    _create(nl, RTM_NEWTFILTER, redirect_filter(ifindex, target))


def delete_qdisc(nl, ifindex: int, parent: int, handle: int = 0) -> None:
    nl.request(RTM_DELQDISC, 0, tcmsg(ifindex, handle, parent))


def list_qdiscs(nl, ifindex: int) -> list[Qdisc]:
    out = [parse_qdisc(p) for k, p in nl.request(RTM_GETQDISC, NLM_F_DUMP, tcmsg(ifindex))
           if k == RTM_NEWQDISC]
    return [q for q in out if q.ifindex == ifindex]


def list_filters(nl, ifindex: int, parent: int) -> list[Filter]:
    replies = nl.request(RTM_GETTFILTER, NLM_F_DUMP, tcmsg(ifindex, 0, parent))
    return [parse_filter(p) for k, p in replies if k == RTM_NEWTFILTER]
