"""dhcp: the config model, the DHCP options, lease results and schedule, daemon flags."""

import struct

import pytest

from pycni import dhcp4
from pycni.errors import CNIError
from pycni.ipam.dhcp import config as cfg
from pycni.ipam.dhcp import lease as leases
from pycni.ipam.dhcp.daemon import parse_duration, parse_flags


def conf(**ipam):
    return {"cniVersion": "1.0.0", "name": "net", "type": "macvlan",
            "ipam": {"type": "dhcp", **ipam}}


def opts(args="", **ipam):
    return cfg.prepare_options(cfg.load(conf(**ipam)), args)


# ------------------------------------------------------------------ config

def test_defaults():
    c = cfg.load(conf())
    assert cfg.socket_path(c) == "/run/cni/dhcp.sock"
    assert c.ipam.priority == 0
    assert opts() == [(55, bytes((3, 1)))]


def test_keys_are_matched_as_go_matches_them():
    c = cfg.load({"name": "n", "IPAM": {"DaemonSocketPath": "/x/d.sock", "PRIORITY": 5,
                                        "Provide": [{"Option": "host-name", "FromArg": "K"}]}})
    assert cfg.socket_path(c) == "/x/d.sock" and c.ipam.priority == 5
    assert c.ipam.provide[0].value_from_cni_arg == "K"


def test_no_ipam_refused():
    with pytest.raises(CNIError) as exc:
        cfg.load({"name": "n", "type": "macvlan"})
    assert exc.value.code == 7 and exc.value.msg == "IPAM config missing 'ipam' key"


@pytest.mark.parametrize("path", ["relative.sock", "/x\0y", "/" + "a" * 107])
def test_socket_path_refused(path):
    with pytest.raises(CNIError) as exc:
        cfg.socket_path(cfg.load(conf(daemonSocketPath=path)))
    assert exc.value.code == 7


@pytest.mark.parametrize("ipam,msg", [
    ({"priority": "1"}, "priority"),
    ({"provide": {}}, "provide"),
    ({"request": [{"skipDefault": "yes"}]}, "skipDefault"),
])
def test_type_mismatches_refused(ipam, msg):
    with pytest.raises(CNIError) as exc:
        cfg.load(conf(**ipam))
    assert msg in str(exc.value)


def test_provide_value_and_from_arg():
    got = opts("IgnoreUnknown=1;K8S_POD_NAME=web-0;noequals;X=a=b",
               provide=[{"option": "host-name", "fromArg": "K8S_POD_NAME"},
                        {"option": "60", "value": "vendor"},
                        {"option": "user-class", "value": "u", "fromArg": "X"},
                        {"option": "77", "fromArg": "missing"}])
    assert got == [(12, b"web-0"), (60, b"vendor"), (77, b"u"), (77, b"a=b"),
                   (55, bytes((3, 1)))]


def test_request_options():
    assert opts(request=[{"option": "121"}, {"option": "routers"}]) == [(55, bytes((121, 3, 1)))]
    assert opts(request=[{"skipDefault": True}]) == []
    assert opts(request=[{"skipDefault": True, "option": "host-name"}]) == [(55, bytes((12,)))]


def test_bad_option_refused_with_the_reference_text():
    with pytest.raises(CNIError) as exc:
        opts(request=[{"option": "bogus"}])
    assert exc.value.code == 999
    assert exc.value.msg == ('Can not parse option "bogus": Can not parse option: '
                             'strconv.ParseUint: parsing "bogus": invalid syntax')
    with pytest.raises(CNIError) as exc:
        opts(provide=[{"option": "300", "value": "x"}])
    assert "value out of range" in exc.value.msg


@pytest.mark.parametrize("option", ["0", "255", "53"])
def test_options_that_would_break_messages_are_not_provided(option):
    with pytest.raises(CNIError) as exc:
        opts(provide=[{"option": option, "value": "x"}])
    assert exc.value.code == 7 and "cannot be provided" in exc.value.msg


def test_value_too_long_refused():
    with pytest.raises(CNIError) as exc:
        opts(provide=[{"option": "host-name", "value": "é" * 128}])      # 256 bytes
    assert exc.value.msg.startswith('value too long for option "host-name"')
    with pytest.raises(CNIError) as exc:
        opts("K=" + "x" * 256, provide=[{"option": "host-name", "fromArg": "K"}])
    assert 'from CNI_ARGS "K"' in exc.value.msg


# ------------------------------------------------------------------ results

def ack(options, yiaddr="10.1.2.3") -> bytes:
    hdr = struct.pack("!BBBBIHHIIII16s64s128s", 2, 1, 6, 0, 1, 0, 0, 0,
                      int.from_bytes(dhcp4.ip_bytes(yiaddr), "big"), 0, 0,
                      dhcp4.mac_bytes("02:00:00:00:00:01"), b"", b"")
    return hdr + dhcp4.MAGIC + dhcp4.encode_options([(53, b"\x05")] + list(options))


MASK24 = (1, bytes((255, 255, 255, 0)))
ROUTER = (3, dhcp4.ip_bytes("10.1.2.1"))


def test_result_with_router():
    r = leases.result(ack([MASK24, ROUTER])).to_dict("1.1.0")
    assert r == {"cniVersion": "1.1.0",
                 "ips": [{"address": "10.1.2.3/24", "gateway": "10.1.2.1"}],
                 "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.2.1"}]}


def test_result_static_routes_then_default_and_priority():
    static = (33, dhcp4.ip_bytes("10.9.0.0") + dhcp4.ip_bytes("10.1.2.9"))
    r = leases.result(ack([MASK24, ROUTER, static]), priority=9).to_dict("1.1.0")
    assert r["routes"] == [{"dst": "10.9.0.0/8", "gw": "10.1.2.9", "priority": 9},
                           {"dst": "0.0.0.0/0", "gw": "10.1.2.1", "priority": 9}]


def test_result_classless_routes_replace_the_others():
    classless = (121, bytes([16, 10, 9, 10, 1, 2, 7, 16, 10, 8, 0, 0, 0, 0]))
    static = (33, dhcp4.ip_bytes("10.5.0.0") + dhcp4.ip_bytes("10.1.2.9"))
    r = leases.result(ack([MASK24, ROUTER, static, classless])).to_dict("1.1.0")
    assert r["ips"][0]["gateway"] == "10.1.2.1"
    assert r["routes"] == [{"dst": "10.9.0.0/16", "gw": "10.1.2.7"},
                           {"dst": "10.8.0.0/16", "scope": 253}]


def test_result_without_mask_refused():
    with pytest.raises(CNIError) as exc:
        leases.result(ack([ROUTER]))
    assert exc.value.msg == "DHCP option Subnet Mask not found in DHCPACK"


def test_result_without_router():
    r = leases.result(ack([MASK24])).to_dict("0.3.1")
    assert r["ips"] == [{"version": "4", "address": "10.1.2.3/24"}] and "routes" not in r


# ------------------------------------------------------------------ leases

def make_lease(lease_time=100, t1=50, t2=85, bound_at=1000.0):
    le = leases.Lease("c/n/eth0", "/run/netns/x", [1, 2], "eth0", "02:00:00:00:00:01",
                      [(12, b"host")])
    le.commit(ack([MASK24, ROUTER, (54, dhcp4.ip_bytes("10.1.2.1")),
                   (51, lease_time.to_bytes(4, "big")), (58, t1.to_bytes(4, "big")),
                   (59, t2.to_bytes(4, "big"))]), bound_at)
    return le


def test_lease_round_trip():
    le = make_lease()
    again = leases.Lease.from_dict(le.to_dict())
    assert again.to_dict() == le.to_dict()
    assert again.address == "10.1.2.3" and again.server_id == "10.1.2.1"
    assert again.options == [(12, b"host")] and again.expires_at == 1100.0


def test_lease_record_refused_when_broken():
    data = make_lease().to_dict()
    with pytest.raises(ValueError):
        leases.Lease.from_dict(dict(data, ack="00"))
    with pytest.raises(KeyError):
        leases.Lease.from_dict({k: v for k, v in data.items() if k != "netns"})


@pytest.mark.parametrize("now,step,at", [(1000.0, "renew", 1050.0), (1049.0, "renew", 1050.0),
                                         (1050.0, "renew", 1050.0), (1070.0, "renew", 1070.0),
                                         (1085.0, "rebind", 1085.0), (1099.0, "rebind", 1099.0),
                                         (1100.0, "expire", 1100.0), (5000.0, "expire", 5000.0)])
def test_schedule(now, step, at):
    assert leases.next_step(make_lease(), now) == (step, at)


# ------------------------------------------------------------------ daemon flags

def test_flags_default():
    f = parse_flags([])
    assert f["socketpath"] == "" and f["timeout"] == 10 and f["resendmax"] == 62
    assert f["resendtimeout"] == 208 and f["broadcast"] is False


def test_flags_go_syntax():
    f = parse_flags(["-socketpath", "/s", "--hostprefix=/host", "-broadcast", "-timeout=1m30s",
                     "-resendmax", "500ms", "-pidfile", "/p", "-statedir", "/d"])
    assert (f["socketpath"], f["hostprefix"], f["broadcast"], f["timeout"], f["resendmax"],
            f["pidfile"], f["statedir"]) == ("/s", "/host", True, 90.0, 0.5, "/p", "/d")
    assert parse_flags(["-broadcast=false"])["broadcast"] is False


@pytest.mark.parametrize("argv", [["-nope"], ["-timeout"], ["-timeout", "10"],
                                  ["-broadcast=maybe"], ["---timeout=1s"]])
def test_flags_refused(argv):
    with pytest.raises(ValueError):
        parse_flags(argv)


@pytest.mark.parametrize("text,seconds", [("10s", 10), ("1h", 3600), ("1.5s", 1.5), ("0", 0),
                                          ("2m3s", 123), ("250ms", 0.25), ("1us", 1e-6)])
def test_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)
