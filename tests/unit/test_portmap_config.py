"""portmap config decoding, validation and address/mapping selection."""

import pytest

from pycni.errors import CNIError
from pycni.plugins.portmap import config as c
from pycni.result import parse_result


def conf(**keys):
    raw = {"cniVersion": "1.0.0", "name": "net", "type": "portmap", **keys}
    return c.parse_config(raw, lambda: "iptables")


def mappings(*entries):
    return {"runtimeConfig": {"portMappings": list(entries)}}


def test_defaults():
    cf = conf()
    assert cf.snat_on and cf.mark_bit == 13 and not cf.masq_all
    assert cf.backend == "iptables" and cf.mappings == []


def test_default_backend_comes_from_detection():
    raw = {"cniVersion": "1.0.0", "name": "n", "type": "portmap"}
    assert c.parse_config(raw, lambda: "nftables").backend == "nftables"


def test_capitalised_keys_from_containerd():
    cf = conf(**mappings({"HostPort": 18090, "ContainerPort": 80, "Protocol": "TCP",
                          "HostIP": ""}))
    assert cf.mappings == [c.PortMapping(18090, 80, "tcp", "")]


@pytest.mark.parametrize("entry, text", [
    ({"hostPort": 0, "containerPort": 80, "protocol": "tcp"}, "Invalid host port number: 0"),
    ({"hostPort": 70000, "containerPort": 80, "protocol": "tcp"}, "Invalid host port"),
    ({"hostPort": 80, "containerPort": -1, "protocol": "tcp"}, "Invalid container port number: -1"),
    ({"hostPort": 80, "containerPort": 80, "protocol": "icmp"}, "Invalid protocol"),
    ({"hostPort": 80, "containerPort": 80, "protocol": ""}, "Invalid protocol"),
])
def test_bad_mappings_are_config_errors(entry, text):
    with pytest.raises(CNIError) as exc:
        conf(**mappings(entry))
    assert exc.value.code == 7 and text in exc.value.msg


def test_mark_bit_range_and_exclusive_with_external_chain():
    with pytest.raises(CNIError, match="between 0 and 31"):
        conf(markMasqBit=32)
    with pytest.raises(CNIError, match="Cannot specify externalSetMarkChain and markMasqBit"):
        conf(markMasqBit=3, externalSetMarkChain="X")
    assert conf(markMasqBit=0).mark_bit == 0


def test_backend_specific_options():
    with pytest.raises(CNIError, match=r"nftables backend was requested but configuration "
                                       r"contains iptables-specific options "
                                       r"\[externalSetMarkChain\]"):
        conf(backend="nftables", externalSetMarkChain="X")
    with pytest.raises(CNIError, match=r"iptables-specific options \[conditionsV4\]"):
        conf(backend="nftables", conditionsV4=["-d", "1.2.3.4"])
    with pytest.raises(CNIError, match=r"nftables-specific options \[conditionsV6\]"):
        conf(backend="iptables", conditionsV6=["ip6 saddr ::1"])
    with pytest.raises(CNIError, match='unrecognized backend "pf"'):
        conf(backend="pf")
    # conditions decide nothing when no backend is named: the default applies
    with pytest.raises(CNIError, match="nftables-specific"):
        conf(conditionsV4=["ip saddr 1.2.3.4"])
    assert conf(backend="nftables", conditionsV4=["ip", "saddr", "1.2.3.4"]).backend == "nftables"


def test_conditions_backend():
    assert c.conditions_backend(None) == ""
    assert c.conditions_backend([""]) == ""
    assert c.conditions_backend(["!", "-d", "x"]) == "iptables"
    assert c.conditions_backend(["-m", "comment"]) == "iptables"
    assert c.conditions_backend(["ip saddr 1.1.1.1"]) == "nftables"


def test_wrong_types_are_errors():
    with pytest.raises(CNIError):
        conf(snat="yes")
    with pytest.raises(CNIError):
        conf(**mappings({"hostPort": "80", "containerPort": 80, "protocol": "tcp"}))


def test_host_ip_normalised():
    cf = conf(**mappings({"hostPort": 1, "containerPort": 1, "protocol": "udp",
                          "hostIP": "::ffff:10.0.0.1"},
                         {"hostPort": 2, "containerPort": 2, "protocol": "udp",
                          "hostIP": "FD00:0::1"}))
    assert [m.host_ip for m in cf.mappings] == ["10.0.0.1", "fd00::1"]


PREV = {"cniVersion": "1.0.0",
        "interfaces": [{"name": "cni0"}, {"name": "vethX"}, {"name": "eth0", "sandbox": "/ns"},
                       {"name": "eth1", "sandbox": "/ns"}],
        "ips": [{"address": "10.1.0.1/24", "interface": 0},
                {"address": "10.2.0.5/24", "interface": 3},
                {"address": "10.1.0.5/24", "interface": 2},
                {"address": "10.1.0.6/24", "interface": 2},
                {"address": "fd00::5/64", "interface": 2}]}


def test_container_ips_first_per_family_on_ifname():
    prev = parse_result(PREV, "1.0.0")
    assert [x.cidr for x in c.container_ips(prev, "eth0")] == ["10.1.0.5/24", "fd00::5/64"]
    assert [x.cidr for x in c.container_ips(prev, "eth1")] == ["10.2.0.5/24"]
    assert c.container_ips(prev, "eth9") == []


def test_container_ips_without_index_or_out_of_range_count():
    prev = parse_result({"cniVersion": "1.0.0", "ips": [
        {"address": "10.1.0.7/24"}, {"address": "fd00::7/64", "interface": 9}]}, "1.0.0")
    assert [x.cidr for x in c.container_ips(prev, "eth0")] == ["10.1.0.7/24", "fd00::7/64"]


def test_container_ip_parts():
    x = c.ContainerIP("10.88.0.5/16")
    assert (x.family, x.ip, x.network) == (4, "10.88.0.5", "10.88.0.0/16")
    assert c.ContainerIP("fd00::5/64").network == "fd00::/64"


def test_mappings_for_family():
    ms = [c.PortMapping(1, 1, "tcp", ""), c.PortMapping(2, 2, "tcp", "10.0.0.1"),
          c.PortMapping(3, 3, "tcp", "::1"), c.PortMapping(4, 4, "tcp", "0.0.0.0"),
          c.PortMapping(5, 5, "tcp", "::")]
    assert [(m.host_port, d) for m, d in c.mappings_for(ms, 4)] == \
        [(1, ""), (2, "10.0.0.1"), (4, "")]
    assert [(m.host_port, d) for m, d in c.mappings_for(ms, 6)] == [(1, ""), (3, "::1"), (5, "")]


# --- what the reference accepts (issue #13: an upgrade never breaks a config) ---

from pycni import log  # noqa: E402

V4_PREV = {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.5/24"}]}
DUAL_PREV = {"cniVersion": "1.0.0",
             "ips": [{"address": "10.0.0.5/24"}, {"address": "fd00::5/64"}]}


@pytest.fixture
def warnings():
    del log._warnings[:]
    yield log._warnings
    del log._warnings[:]


@pytest.mark.parametrize("host_ip", ["nope", "fe80::1%eth0", "10.0.0.256", "localhost"])
def test_unparsable_host_ip_is_accepted_with_a_warning_and_skipped_for_ipv4(warnings, host_ip):
    """Go's ParseIP gives nil, which is not IPv4: the reference skips the
    mapping for an IPv4 container and ADD succeeds."""
    cf = conf(prevResult=V4_PREV, **mappings(
        {"hostPort": 80, "containerPort": 80, "protocol": "tcp", "hostIP": host_ip},
        {"hostPort": 81, "containerPort": 81, "protocol": "tcp"}))
    assert [m.host_ip for m in cf.mappings] == [host_ip, ""]
    assert not cf.mappings[0].host_ip_ok
    assert [m.host_port for m, _ in c.mappings_for(cf.mappings, 4)] == [81]
    assert len(warnings) == 1 and "is not an IP address" in warnings[0] \
        and "portMappings[0]" in warnings[0]


def test_unparsable_host_ip_is_refused_for_an_ipv6_container(warnings):
    """There the reference hands it to ip6tables/nft, which resolve it as a
    host name: refused (code 7) on ADD and CHECK, accepted on DEL and GC."""
    entry = {"hostPort": 80, "containerPort": 80, "protocol": "tcp", "hostIP": "localhost"}
    raw = {"cniVersion": "1.0.0", "name": "net", "type": "portmap", "prevResult": DUAL_PREV,
           **mappings(entry)}
    with pytest.raises(CNIError) as exc:
        c.parse_config(raw, lambda: "nftables")
    assert exc.value.code == 7 and 'Invalid hostIP "localhost"' in exc.value.msg \
        and "IPv6" in exc.value.details
    cf = c.parse_config(raw, lambda: "nftables", scripts=False)
    assert cf.mappings[0].host_ip == "localhost"
    with pytest.raises(CNIError) as exc:      # the backstop of a rule writer
        c.mappings_for(cf.mappings, 6)
    assert exc.value.code == 7


def test_ipv6_in_a_020_prev_result_counts_too(warnings):
    prev = {"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.5/24"}, "ip6": {"ip": "fd00::5/64"}}
    with pytest.raises(CNIError):
        conf(prevResult=prev, **mappings(
            {"hostPort": 80, "containerPort": 80, "protocol": "tcp", "hostIP": "x"}))


@pytest.mark.parametrize("entry", [
    {"hostPort": 70000, "containerPort": 80, "protocol": "tcp"},
    {"hostPort": 80, "containerPort": 70000, "protocol": "tcp"},
    {"hostPort": 80, "containerPort": 80, "protocol": "icmp"},
])
def test_del_and_gc_accept_what_only_iptables_or_nft_refuse(entry):
    """The reference refuses these only when iptables/nft do, on ADD; its
    DEL works. Ours refuses them on ADD/CHECK up front and drops them on
    DEL/GC (they never had a rule)."""
    raw = {"cniVersion": "1.0.0", "name": "net", "type": "portmap",
           **mappings(entry, {"hostPort": 82, "containerPort": 82, "protocol": "udp"})}
    with pytest.raises(CNIError) as exc:
        c.parse_config(raw, lambda: "iptables")
    assert exc.value.code == 7
    cf = c.parse_config(raw, lambda: "iptables", scripts=False)
    assert [m.host_port for m in cf.mappings] == [82]


@pytest.mark.parametrize("entry", [
    {"hostPort": 0, "containerPort": 80, "protocol": "tcp"},
    {"hostPort": 80, "containerPort": -1, "protocol": "tcp"},
])
def test_ports_below_one_are_refused_in_every_command(entry):
    """The reference's parseConfig refuses them for DEL too."""
    raw = {"cniVersion": "1.0.0", "name": "net", "type": "portmap", **mappings(entry)}
    with pytest.raises(CNIError) as exc:
        c.parse_config(raw, lambda: "iptables", scripts=False)
    assert exc.value.code == 7


def test_unknown_backend_is_still_refused():
    """The reference refuses it too ("unrecognized backend")."""
    with pytest.raises(CNIError) as exc:
        conf(backend="ebpf")
    assert exc.value.code == 7 and exc.value.msg == 'unrecognized backend "ebpf"'
