"""ptp config model and validation (pure, no root)."""

import pytest

from pycni.decode import DecodeError
from pycni.errors import CNIError
from pycni.plugins.ptp import config


def conf(**extra) -> dict:
    base = {"cniVersion": "1.0.0", "name": "ptpnet", "type": "ptp",
            "ipam": {"type": "host-local"}}
    base.update(extra)
    return base


def refused(raw: dict) -> CNIError:
    with pytest.raises(CNIError) as err:
        config.load(raw)
    return err.value


def test_defaults():
    s = config.load(conf())
    assert (s.conf.ip_masq, s.conf.ip_masq_backend, s.mtu, s.ipam_type) == \
        (False, None, 0, "host-local")
    assert s.dns is None and s.warnings == []


def test_every_key_and_go_style_key_matching():
    s = config.load(conf(IPMASQ=True, ipmasqbackend="nftables", MTU=1400,
                         DNS={"nameservers": ["10.0.0.53"], "domain": "d",
                              "search": ["s"], "options": ["o"]}))
    assert (s.conf.ip_masq, s.conf.ip_masq_backend, s.mtu) == (True, "nftables", 1400)
    assert (s.dns.nameservers, s.dns.domain, s.dns.search, s.dns.options) == \
        (["10.0.0.53"], "d", ["s"], ["o"])


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_backends(backend):
    assert config.load(conf(ipMasqBackend=backend)).conf.ip_masq_backend == backend


@pytest.mark.parametrize("backend", ["", "IPTABLES", "pf", "nft"])
def test_unknown_backend_refused_where_rules_would_be_written(backend):
    with pytest.raises(CNIError) as err:
        config.load(conf(ipMasq=True, ipMasqBackend=backend), masq_setup=True)
    assert err.value.code == 7 and err.value.msg == f'unknown ipmasq backend "{backend}"'


@pytest.mark.parametrize("raw,masq_setup", [
    ({"ipMasq": True}, False),         # CHECK: the reference does not read it
    ({"ipMasq": False}, True),         # ADD without ipMasq
    ({}, True)])
def test_unknown_backend_accepted_with_a_warning_elsewhere(raw, masq_setup):
    s = config.load(conf(ipMasqBackend="pf", **raw), masq_setup=masq_setup)
    assert s.warnings == ['unknown ipMasqBackend "pf": ipMasq needs one of iptables, nftables']


@pytest.mark.parametrize("ipam", [None, {}, {"type": ""}])
def test_ipam_is_required(ipam):
    raw = conf()
    if ipam is None:
        del raw["ipam"]
    else:
        raw["ipam"] = ipam
    err = refused(raw)
    assert err.code == 7 and err.msg == "no plugin name provided"
    assert "ipam" in err.details


@pytest.mark.parametrize("mtu", [0, 68, 1500, 9000, 65535])
def test_mtu_in_range(mtu):
    assert config.load(conf(mtu=mtu)).mtu == mtu


@pytest.mark.parametrize("mtu", [1, 67, 65536, 1 << 31])
def test_mtu_out_of_range(mtu):
    err = refused(conf(mtu=mtu))
    assert err.code == 7
    assert err.msg.startswith(f"invalid MTU {mtu} (must be between 68 and 65535")


def test_negative_mtu_is_the_default_with_a_warning():
    s = config.load(conf(mtu=-5))
    assert s.mtu == 0 and s.warnings == [
        "mtu -5 is negative: the kernel's default is used (as for 0, and as the reference does)"]


@pytest.mark.parametrize("raw", [{"mtu": "1400"}, {"ipMasq": "yes"}, {"ipMasqBackend": 1},
                                 {"dns": {"nameservers": "10.0.0.53"}}])
def test_wrong_json_types(raw):
    with pytest.raises(DecodeError) as err:
        config.load(conf(**raw))
    assert err.value.code in (6, 7)


@pytest.mark.parametrize("dns,expected", [
    (None, None),
    ({}, None),
    ({"domain": ""}, None),
    ({"domain": "x"}, ([], "x")),
    ({"nameservers": []}, ([], "")),       # present (not null) counts, as in Go
    ({"nameservers": None}, None),
    ({"nameservers": ["1.1.1.1"]}, (["1.1.1.1"], "")),
])
def test_dns_override_as_the_reference_decides_it(dns, expected):
    raw = conf() if dns is None else conf(dns=dns)
    got = config.load(raw).dns
    if expected is None:
        assert got is None
    else:
        assert (got.nameservers, got.domain) == expected


def test_delete_reads_only_what_it_needs():
    d = config.load_for_delete({"ipam": {"type": "host-local"}, "ipMasq": True,
                                "ipMasqBackend": "bogus", "mtu": "not a number"})
    assert (d.ipam_type, d.ip_masq) == ("host-local", True)
    d = config.load_for_delete({"IPAM": {"TYPE": "static"}, "ipmasq": "true"})
    assert (d.ipam_type, d.ip_masq) == ("static", False)
    d = config.load_for_delete({"ipam": "host-local"})
    assert (d.ipam_type, d.ip_masq) == ("", False)
