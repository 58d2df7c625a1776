"""firewall config decoding and validation (pure)."""

import pytest

from pycni.errors import CNIError, INVALID_NETWORK_CONFIG
from pycni.result import parse_result
from pycni.plugins.firewall.config import (ContainerIP, bridge_name, container_ips,
                                           parse_config)


def conf(**keys):
    return {"cniVersion": "1.0.0", "name": "net", "type": "firewall", **keys}


def test_defaults():
    c = parse_config(conf(), lambda: "nftables")
    assert c.backend == "nftables"          # detected when not given
    assert c.admin_chain == "CNI-ADMIN"
    assert c.policy == "open" and not c.isolates


def test_keys_match_case_insensitively():
    c = parse_config(conf(Backend="iptables", IptablesAdminChainName="MY-ADMIN",
                          IngressPolicy="isolated"))
    assert (c.backend, c.admin_chain, c.policy) == ("iptables", "MY-ADMIN", "isolated")


@pytest.mark.parametrize("policy", ["open", "same-bridge", "isolated", ""])
def test_ingress_policies(policy):
    assert parse_config(conf(backend="iptables", ingressPolicy=policy)).policy == (policy or "open")


def test_firewalld_is_a_backend_with_zone_trusted_by_default():
    c = parse_config(conf(backend="firewalld"))
    assert (c.backend, c.zone) == ("firewalld", "trusted")
    assert parse_config(conf(backend="firewalld", firewalldZone="public")).zone == "public"


@pytest.mark.parametrize("keys, text", [
    ({"ingressPolicy": "closed"}, 'unknown ingress policy: "closed"'),
    ({"iptablesAdminChainName": "X" * 29}, "longer than 28"),
    ({"iptablesAdminChainName": "has space"}, "whitespace"),
    ({"iptablesAdminChainName": "-j"}, 'starts with "-"'),
    ({"iptablesAdminChainName": "ACCEPT"}, "built-in"),
    ({"iptablesAdminChainName": "CNI-FORWARD"}, "built-in"),
    ({"backend": 5}, "expected a string"),
    ({"ingressPolicy": True}, "expected a string"),
])
def test_invalid_values(keys, text):
    with pytest.raises(CNIError) as e:
        parse_config(conf(**keys))
    assert e.value.code == INVALID_NETWORK_CONFIG
    assert text in e.value.msg


def test_firewalld_zone_is_accepted_and_unused():
    assert parse_config(conf(backend="nftables", firewalldZone="public")).backend == "nftables"


def prev(ips, interfaces=({"name": "cni0"}, {"name": "eth0", "sandbox": "/x"})):
    return parse_result({"cniVersion": "1.0.0", "interfaces": list(interfaces),
                         "ips": [{"address": a, "interface": 1} for a in ips]}, "1.0.0")


def test_container_ips_are_all_addresses_canonical_and_unique():
    got = container_ips(prev(["10.0.0.2/24", "2001:DB8:0:0::2/64", "10.0.0.2/16",
                              "10.0.1.9/24"]))
    assert got == [ContainerIP(4, "10.0.0.2"), ContainerIP(6, "2001:db8::2"),
                   ContainerIP(4, "10.0.1.9")]
    assert [c.host_cidr for c in got] == ["10.0.0.2/32", "2001:db8::2/128", "10.0.1.9/32"]
    assert container_ips(None) == []


def test_bridge_name_is_the_first_interface():
    c = parse_config(conf(backend="iptables", ingressPolicy="same-bridge"))
    assert bridge_name(c, prev(["10.0.0.2/24"])) == "cni0"
    open_ = parse_config(conf(backend="iptables"))
    assert bridge_name(open_, prev(["10.0.0.2/24"], ())) == ""


@pytest.mark.parametrize("interfaces, text", [
    ((), 'interface needs to be set for ingress policy "isolated", make sure to chain '
         '"firewall" plugin with "bridge"'),
    (({"name": ""},), "got empty bridge name"),
    (({"name": 'br"0'},), "invalid bridge name"),
])
def test_bridge_name_errors(interfaces, text):
    c = parse_config(conf(backend="iptables", ingressPolicy="isolated"))
    with pytest.raises(CNIError) as e:
        bridge_name(c, prev(["10.0.0.2/24"], interfaces))
    assert e.value.code == INVALID_NETWORK_CONFIG and text in e.value.msg


# --- what the reference accepts (issue #13) ---------------------------------------

from pycni import log  # noqa: E402


@pytest.mark.parametrize("backend", ["ebtables", "IPTABLES", "pycni-import-sets"])
def test_unknown_backend_is_chosen_as_for_none_with_a_warning(backend):
    """The reference (iptables, firewalld) falls back to its default for a
    backend it does not know; so do we, and say so."""
    del log._warnings[:]
    c = parse_config(conf(backend=backend), lambda: "nftables")
    assert c.backend == "nftables"
    assert len(log._warnings) == 1 and f'unknown backend "{backend}"' in log._warnings[0]
    del log._warnings[:]
    assert parse_config(conf(backend=backend)).backend == "iptables"   # no detection given


def test_ingress_policy_is_checked_before_the_backend_is_chosen():
    """The reference refuses an unknown policy on ADD and DEL; ours stops
    before the backend is detected (no tool is looked for)."""
    def detect():
        raise AssertionError("detection ran")
    with pytest.raises(CNIError) as e:
        parse_config(conf(backend="nosuch", ingressPolicy="closed"), detect)
    assert e.value.code == INVALID_NETWORK_CONFIG and "ingress policy" in e.value.msg
