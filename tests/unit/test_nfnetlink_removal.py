"""pycni.nfnetlink.remove_chains, the in-process teardown of an
attachment's iptables-nft chains (bridge ipMasq, portmap DEL), without a
kernel: pyroute2 decodes every message it builds and encodes the rules it
parses; a fake socket plays the kernel's answers. The real-kernel tests
(rules written by iptables-nft, read back with iptables-save) are in
tests/integration/test_netlink.py."""

import errno

import pytest
from pyroute2.netlink.nfnetlink import nfgen_msg
from pyroute2.netlink.nfnetlink.nftsocket import nft_chain_msg, nft_rule_msg

from pycni import fwtools, netlink as nl, nfnetlink
from pycni.ipmasq import iptables as masq
from pycni.plugins.portmap import backend, rules_iptables as ri

from test_oracle_netlink import attrs, decoded, encoded

NFT = nfnetlink.NFNL_SUBSYS_NFTABLES << 8


def kernel_rule(handle, verdict, chain=None, family=2) -> bytes:
    """An NFT_MSG_NEWRULE body as the kernel dumps it (encoded by pyroute2):
    a counter, then an immediate verdict."""
    code = [("NFTA_VERDICT_CODE", verdict)] + ([("NFTA_VERDICT_CHAIN", chain)] if chain else [])
    m = nft_rule_msg()
    m["nfgen_family"] = family
    m["attrs"] = [
        ("NFTA_RULE_TABLE", "nat"), ("NFTA_RULE_CHAIN", "CNI-HOSTPORT-DNAT"),
        ("NFTA_RULE_HANDLE", handle),
        ("NFTA_RULE_EXPRESSIONS", [
            {"attrs": [("NFTA_EXPR_NAME", "counter")]},
            {"attrs": [("NFTA_EXPR_NAME", "immediate"), ("NFTA_EXPR_DATA", {"attrs": [
                ("NFTA_IMMEDIATE_DREG", 0),
                ("NFTA_IMMEDIATE_DATA", {"attrs": [("NFTA_DATA_VERDICT", {"attrs": code})]})]})]},
        ])]
    return encoded(m)


@pytest.mark.parametrize("verdict, chain, want", [
    (-3, "CNI-DN-abc", (7, "CNI-DN-abc")),      # -j CHAIN
    (-4, "CNI-DN-abc", None),                   # -g CHAIN: not what we write
    (1, None, None),                            # -j ACCEPT
])
def test_rule_jump_reads_the_verdict(verdict, chain, want):
    assert nfnetlink.rule_jump(kernel_rule(7, verdict, chain)) == want


def test_rule_jump_needs_a_handle():
    m = nft_rule_msg()
    m["attrs"] = [("NFTA_RULE_TABLE", "nat")]
    assert nfnetlink.rule_jump(encoded(m)) is None


def test_removal_batch_messages():
    batch = nfnetlink.removal_batch("ip6", "nat", "POSTROUTING", [12, 15], ["CNI-x"])
    kinds = [(t, f) for t, f, _ in batch]
    ack = nl.NLM_F_ACK
    assert kinds == [(nfnetlink.NFNL_MSG_BATCH_BEGIN, 0), (NFT | 8, ack), (NFT | 8, ack),
                     (NFT | 8, ack), (NFT | 5, ack), (nfnetlink.NFNL_MSG_BATCH_END, 0)]
    for t, _, body in (batch[0], batch[-1]):
        msg = decoded(nfgen_msg, t, body)
        assert (msg["nfgen_family"], msg["res_id"]) == (0, 10)   # AF_UNSPEC, nftables
    rules = [decoded(nft_rule_msg, t, body) for t, _, body in batch[1:4]]
    assert [msg["nfgen_family"] for msg in rules] == [10, 10, 10]
    assert [attrs(msg) for msg in rules] == [
        [("NFTA_RULE_TABLE", "nat"), ("NFTA_RULE_CHAIN", "POSTROUTING"), ("NFTA_RULE_HANDLE", 12)],
        [("NFTA_RULE_TABLE", "nat"), ("NFTA_RULE_CHAIN", "POSTROUTING"), ("NFTA_RULE_HANDLE", 15)],
        [("NFTA_RULE_TABLE", "nat"), ("NFTA_RULE_CHAIN", "CNI-x")]]    # the whole chain
    chain = decoded(nft_chain_msg, batch[4][0], batch[4][2])
    assert attrs(chain) == [("NFTA_CHAIN_TABLE", "nat"), ("NFTA_CHAIN_NAME", "CNI-x")]


class FakeKernel:
    """Stands in for a NETLINK_NETFILTER NetlinkSocket: `chains` exist,
    `entry` lists (handle, verdict, target) rules; a batch is answered with
    `codes` (None: one ACK per message) and applied when all are 0."""

    def __init__(self, chains, entry, codes=None, apply=True):
        self.chains, self.entry, self.codes, self.apply = set(chains), list(entry), codes, apply
        self.batches: list[list] = []

    def request(self, msg_type, flags, body):
        if msg_type == NFT | nfnetlink.NFT_MSG_GETCHAIN:
            name = dict(attrs(decoded(nft_chain_msg, msg_type, body)))["NFTA_CHAIN_NAME"]
            if name not in self.chains:
                raise nl.NetlinkError(errno.ENOENT, "ENOENT")
            return []
        assert msg_type == NFT | nfnetlink.NFT_MSG_GETRULE and flags == nl.NLM_F_DUMP
        return [(NFT | nfnetlink.NFT_MSG_NEWRULE, kernel_rule(h, v, c)) for h, v, c in self.entry]

    def send_batch(self, messages):
        self.batches.append(messages)
        content = messages[1:-1]
        codes = self.codes if self.codes is not None else [0] * len(content)
        if self.apply and not any(codes):
            for t, _, body in content:
                if t == NFT | nfnetlink.NFT_MSG_DELCHAIN:
                    self.chains.discard(dict(attrs(decoded(nft_chain_msg, t, body)))["NFTA_CHAIN_NAME"])
        return codes


DN, SN = "CNI-DN-aaa", "CNI-SN-aaa"


def test_remove_chains_deletes_jumps_and_existing_chains():
    k = FakeKernel({DN, "CNI-DN-other"}, [(3, -3, "CNI-DN-other"), (4, -3, DN), (9, -3, DN)])
    assert nfnetlink.remove_chains(k, "ip", "nat", "CNI-HOSTPORT-DNAT", [DN, SN]) is True
    (batch,) = k.batches
    assert batch[1:-1] == nfnetlink.removal_batch("ip", "nat", "CNI-HOSTPORT-DNAT", [4, 9], [DN])[1:-1]
    assert k.chains == {"CNI-DN-other"}


def test_remove_chains_nothing_there_sends_nothing():
    k = FakeKernel({"CNI-DN-other"}, [(3, -3, "CNI-DN-other")])
    assert nfnetlink.remove_chains(k, "ip", "nat", "CNI-HOSTPORT-DNAT", [DN, SN]) is False
    assert k.batches == []


@pytest.mark.parametrize("kernel", [
    FakeKernel({DN}, [(4, -3, DN)], codes=[0, 0, -errno.EBUSY]),   # a jump from elsewhere
    FakeKernel({DN}, [(4, -3, DN)], codes=[0, 0]),                  # a reply missing
    FakeKernel({DN}, [(4, -3, DN)], apply=False),                   # acked, chain still there
])
def test_remove_chains_not_done_leaves_it_to_the_caller(kernel):
    assert nfnetlink.remove_chains(kernel, "ip", "nat", "CNI-HOSTPORT-DNAT", [DN]) is None


def test_remove_chains_socket_error_is_not_done():
    class Broken(FakeKernel):
        def request(self, *args):
            raise OSError(errno.EPERM, "EPERM")
    assert nfnetlink.remove_chains(Broken(set(), []), "ip", "nat", "X", [DN]) is None


class Sockets:
    """Stands in for netlink.NetlinkSocket: hands out `kernel`, counts closes."""

    def __init__(self, kernel):
        self.kernel, self.protocols, self.closed = kernel, [], 0

    def __call__(self, protocol):
        self.protocols.append(protocol)
        outer = self

        class Handle:
            def request(self, *a):
                return outer.kernel.request(*a)

            def send_batch(self, m):
                return outer.kernel.send_batch(m)

            def close(self):
                outer.closed += 1

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.close()
        return Handle()


def test_portmap_del_in_process_where_iptables_is_nft(monkeypatch):
    dn, sn = ri.container_chains("net", "cid")
    kernel = FakeKernel({dn}, [(5, -3, dn)])
    sockets = Sockets(kernel)
    monkeypatch.setattr(fwtools, "iptables_nft", lambda family=4: family == 4)
    monkeypatch.setattr(nl, "NetlinkSocket", sockets)
    assert backend.IptablesBackend.removed_in_process(4, "net", "cid") is True
    assert sockets.protocols == [nfnetlink.NETLINK_NETFILTER] and sockets.closed == 1
    assert kernel.chains == set()
    # legacy iptables (here: IPv6's): the iptables-restore ways decide
    assert backend.IptablesBackend.removed_in_process(6, "net", "cid") is None
    assert len(sockets.protocols) == 1


def test_ipmasq_teardown_in_process_keeps_the_socket_until_finish(monkeypatch):
    chain = masq.chain_name("net", "cid")
    kernel = FakeKernel({chain}, [(2, -3, chain)])
    sockets = Sockets(kernel)
    monkeypatch.setattr(fwtools, "iptables_nft", lambda family=4: True)
    monkeypatch.setattr(nl, "NetlinkSocket", sockets)
    monkeypatch.setattr(masq, "available", lambda family=4: True)
    started = masq.StartedTeardown(["10.1.2.3/24"], "net", "cid", eager=False)
    assert kernel.chains == set() and started.usable == [] and started.batches.scripts == {}
    assert sockets.closed == 0       # the grace period passes while the caller works
    started.finish()
    assert sockets.closed == 1
