"""static against the reference, case by case: each case's outcome is
written down here (EXPECTED: the result, or ("error", code, msg)) and
checked against our plugin in-process (skel.run) and against the
reference binaries run as subprocesses: upstream v1.9 (built by
bench/build-reference.sh) for every case, Debian's v1.1.1 (/usr/lib/cni)
for every refusal it can read (it knows no 1.1.0). static touches no
kernel state and no file, so nothing here needs root.

A case's note says how it may differ from the reference: "msg" same code,
our own wording (Go's json type errors name Go types); "refuse" the
reference prints a result that no runtime or plugin can read back
(a route without dst, a null route) and we refuse it.
"""

import io
import json
import os
import subprocess

import pytest

from pycni import skel
from pycni.ipam.static.plugin import StaticPlugin

REF_V19 = "/var/cache/pycni-bench/ref-v1.9/bin/static"
REF_DEBIAN = "/usr/lib/cni/static"

# (id, command, config, CNI_ARGS, note); note: "" same as reference,
# "msg" same code but our own wording (Go's json errors), "refuse" the reference accepts
A = [{"address": "10.0.0.5/24", "gateway": "10.0.0.1"}]
A2 = [{"address": "10.0.0.5/24", "gateway": "10.0.0.1"}, {"address": "fd00::5/64"}]


def conf(ipam=None, v="1.0.0", **top):
    d = {"cniVersion": v, "name": "st-net"}
    if ipam is not None:
        d["ipam"] = {"type": "static", **ipam}
    d.update(top)
    return d


def prev(*ips, v="1.0.0"):
    return {"cniVersion": v, "ips": list(ips)}


ROUTES = [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}, {"dst": "fd00:1::/64"}]
DNS = {"nameservers": ["10.0.0.53"], "domain": "example", "search": ["a.example"],
       "options": ["ndots:2"]}
EXTRAS = [{"dst": "10.1.2.3/8", "gw": "10.0.0.1", "mtu": 1400, "advmss": 1300,
           "priority": 5, "table": 100, "scope": 0}]

CASES = [
    # results per version
    *[(f"add-{v}", "ADD", conf({"addresses": A2, "routes": ROUTES, "dns": DNS}, v=v), "", "")
      for v in ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")],
    ("add-no-version", "ADD", {"name": "st-net", "ipam": {"type": "static", "addresses": A}}, "", ""),
    ("add-empty-1.1.0", "ADD", conf({}, v="1.1.0"), "", ""),
    ("add-empty-0.2.0", "ADD", conf({}, v="0.2.0"), "", ""),
    ("add-v6-only-0.1.0", "ADD", conf({"addresses": [{"address": "fd00::6/64"}],
                                       "routes": [{"dst": "0.0.0.0/0"}]}, v="0.1.0"), "", ""),
    ("add-two-v4-0.2.0", "ADD", conf({"addresses": [{"address": "10.0.0.5/24"},
                                                    {"address": "10.0.0.6/24"}]}, v="0.2.0"), "", ""),
    ("add-two-v4-0.3.0", "ADD", conf({"addresses": [{"address": "10.0.0.5/24"},
                                                    {"address": "10.0.0.6/24"}]}, v="0.3.0"), "", ""),
    ("add-two-v4-no-version", "ADD", {"name": "st-net", "ipam": {
        "type": "static", "addresses": [{"address": "10.0.0.5/24"}, {"address": "10.0.0.6/24"}]}},
     "", ""),
    ("add-route-extras-1.1.0", "ADD", conf({"addresses": A, "routes": EXTRAS}, v="1.1.0"), "", ""),
    ("add-route-extras-0.4.0", "ADD", conf({"addresses": A, "routes": EXTRAS}, v="0.4.0"), "", ""),
    ("add-keys-any-case", "ADD", conf({"ADDRESSES": [{"ADDRESS": "10.0.0.5/24", "Gateway": "10.0.0.1"}],
                                       "Routes": [{"DST": "0.0.0.0/0"}]}), "", ""),
    ("add-address-ipnet", "ADD", conf({"addresses": [{"Address": {"IP": "10.0.0.5", "Mask": "////AA=="}}]}),
     "", ""),
    # address forms
    ("addr-mapped-120", "ADD", conf({"addresses": [{"address": "::ffff:10.0.0.1/120"}]}), "", ""),
    ("addr-mapped-90", "ADD", conf({"addresses": [{"address": "::ffff:10.0.0.1/90"}]}), "", ""),
    ("addr-v6-canonical", "ADD", conf({"addresses": [{"address": "FD00:0:0::0:1/64"}]}), "", ""),
    ("addr-prefix-leading-zero", "ADD", conf({"addresses": [{"address": "10.0.0.1/024"}]}), "", ""),
    ("addr-host-bits-kept", "ADD", conf({"addresses": [{"address": "10.1.2.3/8"}]}), "", ""),
    ("gw-outside-subnet", "ADD", conf({"addresses": [{"address": "10.0.0.5/24", "gateway": "10.9.9.9"}]}), "", ""),
    ("gw-other-family", "ADD", conf({"addresses": [{"address": "10.0.0.5/24", "gateway": "fd00::1"}]}), "", ""),
    ("gw-mapped", "ADD", conf({"addresses": [{"address": "10.0.0.5/24", "gateway": "::ffff:10.0.0.1"}]}), "", ""),
    ("gw-empty", "ADD", conf({"addresses": [{"address": "10.0.0.5/24", "gateway": ""}]}), "", ""),
    ("gw-null", "ADD", conf({"addresses": [{"address": "10.0.0.5/24", "gateway": None}]}), "", ""),
    ("addresses-null", "ADD", conf({"addresses": None}), "", ""),
    ("dns-not-checked", "ADD", conf({"dns": {"nameservers": ["not-an-ip"]}}), "", ""),
    # CNI_ARGS
    ("args-ip-appended", "ADD", conf({"addresses": A}), "IP=10.0.0.7/24", ""),
    ("args-ip-gateway-dual", "ADD", conf({}), "IP=10.0.0.7/24,fd00::7/64;GATEWAY=10.0.0.1,fd00::1", ""),
    ("args-spaces-trimmed", "ADD", conf({}), "IP= 10.0.0.7/24 , 10.1.0.7/16;GATEWAY= 10.0.0.1 ", ""),
    ("args-gateway-alone", "ADD", conf({}), "GATEWAY=10.0.0.1", ""),
    ("args-gateway-not-for-config", "ADD", conf({"addresses": [{"address": "10.0.0.5/24"}]}),
     "GATEWAY=10.0.0.1", ""),
    ("args-gateway-outside", "ADD", conf({}), "IP=10.0.0.7/24;GATEWAY=10.9.0.1", ""),
    ("args-gateway-last-wins", "ADD", conf({}), "IP=10.0.0.7/24,10.0.0.8/24;GATEWAY=10.0.0.1,10.0.0.2", ""),
    ("args-ip-repeated", "ADD", conf({}), "IP=10.0.0.7/24;IP=10.0.0.8/24", ""),
    ("args-ip-empty", "ADD", conf({}), "IP=", ""),
    ("args-ignore-unknown", "ADD", conf({}), "IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.0.0.7/24", ""),
    ("args-ignore-unknown-later", "ADD", conf({}), "K8S_POD_NAME=x;IgnoreUnknown=True;IP=10.0.0.7/24", ""),
    ("args-unknown", "ADD", conf({}), "K8S_POD_NAME=x;K8S_POD_NAMESPACE=y", ""),
    ("args-unknown-lowercase", "ADD", conf({}), "ip=10.0.0.7/24", ""),
    ("args-ignore-unknown-bad", "ADD", conf({}), "IgnoreUnknown=maybe", ""),
    ("args-ignore-unknown-last-false", "ADD", conf({}), "IgnoreUnknown=1;IgnoreUnknown=0;a=b", ""),
    ("args-unknown-before-bad-ip", "ADD", conf({}), "a=b;IP=bad", ""),
    ("args-trailing-semicolon", "ADD", conf({}), "IP=10.0.0.7/24;", ""),
    ("args-two-equals", "ADD", conf({}), "IP=a=b", ""),
    ("args-commonargs", "ADD", conf({}), "CommonArgs=x", ""),
    ("args-ip-not-cidr", "ADD", conf({}), "IP=10.0.0.7", ""),
    ("args-ip-empty-item", "ADD", conf({}), "IP=,", ""),
    ("args-gateway-bad", "ADD", conf({}), "IP=10.0.0.7/24;GATEWAY=foo", ""),
    ("args-gateway-empty-item", "ADD", conf({}), "GATEWAY=,", ""),
    # args.cni.ips and the ips capability replace
    ("cni-ips-replace", "ADD", conf({"addresses": A}, args={"cni": {"ips": ["10.1.0.5/16"]}}),
     "IP=10.0.0.7/24", ""),
    ("runtime-ips-replace-all", "ADD", conf({"addresses": A}, runtimeConfig={"ips": ["10.2.0.5/16"]},
                                            args={"cni": {"ips": ["10.1.0.5/16"]}}), "", ""),
    ("runtime-ips-empty", "ADD", conf({"addresses": A}, runtimeConfig={"ips": []}), "", ""),
    ("cni-null", "ADD", conf({"addresses": A}, args={"cni": None}), "", ""),
    ("cni-ips-null", "ADD", conf({"addresses": A}, args={"cni": {"ips": None}}), "", ""),
    ("cni-ips-not-cidr", "ADD", conf({"addresses": A}, args={"cni": {"ips": ["10.1.0.5"]}}), "", ""),
    ("runtime-ips-not-cidr", "ADD", conf({"addresses": A}, runtimeConfig={"ips": ["bad"]}), "", ""),
    # refusals of the config
    ("no-ipam", "ADD", conf(), "", ""),
    ("ipam-null", "ADD", conf(ipam=None) | {"ipam": None}, "", ""),
    ("address-not-cidr", "ADD", conf({"addresses": [{"address": "10.0.0.5"}]}), "", ""),
    ("address-leading-zero", "ADD", conf({"addresses": [{"address": "010.0.0.1/24"}]}), "", ""),
    ("address-prefix-too-long", "ADD", conf({"addresses": [{"address": "10.0.0.1/33"}]}), "", ""),
    ("address-zone", "ADD", conf({"addresses": [{"address": "fe80::1%eth0/64"}]}), "", ""),
    ("address-space", "ADD", conf({"addresses": [{"address": " 10.0.0.1/24"}]}), "", ""),
    ("address-empty", "ADD", conf({"addresses": [{}]}), "", ""),
    ("address-null-entry", "ADD", conf({"addresses": [None]}), "", ""),
    ("gateway-bad", "ADD", conf({"addresses": [{"address": "10.0.0.5/24", "gateway": "foo"}]}), "", ""),
    ("route-dst-bad", "ADD", conf({"routes": [{"dst": "bad"}]}), "", ""),
    ("route-gw-bad", "ADD", conf({"routes": [{"dst": "10.0.0.0/8", "gw": "bad"}]}), "", ""),
    ("route-dst-null", "ADD", conf({"routes": [{"dst": None}]}), "", ""),
    ("version-unknown", "ADD", conf({"addresses": A}, v="9.9.9"), "", ""),
    # wrong JSON types: code 999 as the reference, our own wording
    ("type-gateway", "ADD", conf({"addresses": [{"address": "10.0.0.5/24", "gateway": 5}]}), "", "msg"),
    ("type-address", "ADD", conf({"addresses": [{"address": 5}]}), "", "msg"),
    ("type-addresses", "ADD", conf({"addresses": "x"}), "", "msg"),
    ("type-address-ipnet", "ADD", conf({"addresses": [{"Address": "10.0.0.5/24"}]}), "", "msg"),
    ("type-dns", "ADD", conf({"dns": "x"}), "", "msg"),
    ("type-ipam", "ADD", conf() | {"ipam": "x"}, "", "msg"),
    ("type-runtime-config", "ADD", conf({"addresses": A}, runtimeConfig="x"), "", "msg"),
    ("type-args", "ADD", conf({"addresses": A}, args="x"), "", "msg"),
    ("type-cni-ips", "ADD", conf({"addresses": A}, args={"cni": {"ips": "x"}}), "", "msg"),
    # the reference prints a result no one can read back; we refuse
    ("route-no-dst", "ADD", conf({"routes": [{"gw": "10.0.0.1"}]}), "", "refuse"),
    ("route-null", "ADD", conf({"routes": [None]}), "", "refuse"),
    # DEL, GC, STATUS
    ("del", "DEL", conf({"addresses": A}), "", ""),
    ("del-bad-config", "DEL", conf() | {"ipam": "x"}, "junk", ""),
    ("gc", "GC", conf({"addresses": A}, v="1.1.0"), "", ""),
    ("status", "STATUS", conf({"addresses": A}, v="1.1.0"), "", ""),
    # CHECK
    ("check-no-prev", "CHECK", conf({"addresses": A2}), "", ""),
    ("check-match", "CHECK", conf({"addresses": A2}, prevResult=prev(
        {"address": "10.0.0.5/24", "gateway": "10.0.0.1"}, {"address": "fd00::5/64"})), "", ""),
    ("check-other-prefix", "CHECK", conf({"addresses": A2}, prevResult=prev(
        {"address": "10.0.0.5/16", "gateway": "10.0.0.1"})), "", ""),
    ("check-gateway-differs", "CHECK", conf({"addresses": A2}, prevResult=prev(
        {"address": "10.0.0.5/24", "gateway": "10.0.0.2"})), "", ""),
    ("check-gateway-missing", "CHECK", conf({"addresses": A2}, prevResult=prev(
        {"address": "10.0.0.5/24"})), "", ""),
    ("check-address-absent", "CHECK", conf({"addresses": A2}, prevResult=prev(
        {"address": "10.0.0.6/24"})), "", ""),
    ("check-prev-empty", "CHECK", conf({"addresses": A2}, prevResult={}), "", ""),
    ("check-first-entry-decides", "CHECK", conf({"addresses": A2}, prevResult=prev(
        {"address": "10.0.0.5/24", "gateway": "10.0.0.2"},
        {"address": "10.0.0.5/24", "gateway": "10.0.0.1"})), "", ""),
    ("check-first-entry-matches", "CHECK", conf({"addresses": A2}, prevResult=prev(
        {"address": "10.0.0.5/24", "gateway": "10.0.0.1"},
        {"address": "10.0.0.5/24", "gateway": "10.0.0.2"})), "", ""),
    ("check-unconfigured-gateway", "CHECK", conf({"addresses": A2}, prevResult=prev(
        {"address": "fd00::5/64", "gateway": "fd00::1"})), "", ""),
    ("check-mapped", "CHECK", conf({"addresses": A2}, prevResult=prev(
        {"address": "::ffff:10.0.0.5/120", "gateway": "::ffff:10.0.0.2"})), "", ""),
    ("check-prev-other-version", "CHECK", conf({"addresses": A2}, prevResult={
        "cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.5/24", "gateway": "10.0.0.9"}}), "", ""),
    ("check-prev-bad-address", "CHECK", conf({"addresses": A2}, prevResult=prev({"address": "bad"})),
     "", "msg"),
    ("check-prev-not-object", "CHECK", conf({"addresses": A2}, prevResult="x"), "", "msg"),
    ("check-bad-config-first", "CHECK", conf({"addresses": [{"address": "bad"}]}, prevResult=prev(
        {"address": "10.0.0.5/24", "gateway": "10.0.0.2"})), "", ""),
    ("check-runtime-ips", "CHECK", conf({"addresses": A2}, runtimeConfig={"ips": ["10.0.0.5/24"]},
                                        prevResult=prev({"address": "10.0.0.5/24",
                                                         "gateway": "10.0.0.2"})), "", ""),
    ("check-args-gateway", "CHECK", conf({}, prevResult=prev(
        {"address": "10.0.0.5/24", "gateway": "10.0.0.2"})), "IP=10.0.0.5/24;GATEWAY=10.0.0.1", ""),
    ("check-0.3.1", "CHECK", conf({"addresses": A2}, v="0.3.1", prevResult=prev(
        {"address": "10.0.0.5/24"}, v="0.3.1")), "", ""),
]


EXPECTED = {'add-0.1.0': {'cniVersion': '0.1.0',
               'ip4': {'ip': '10.0.0.5/24',
                       'gateway': '10.0.0.1',
                       'routes': [{'dst': '0.0.0.0/0', 'gw': '10.0.0.1'}]},
               'ip6': {'ip': 'fd00::5/64', 'routes': [{'dst': 'fd00:1::/64'}]},
               'dns': {'nameservers': ['10.0.0.53'],
                       'domain': 'example',
                       'search': ['a.example'],
                       'options': ['ndots:2']}},
 'add-0.2.0': {'cniVersion': '0.2.0',
               'ip4': {'ip': '10.0.0.5/24',
                       'gateway': '10.0.0.1',
                       'routes': [{'dst': '0.0.0.0/0', 'gw': '10.0.0.1'}]},
               'ip6': {'ip': 'fd00::5/64', 'routes': [{'dst': 'fd00:1::/64'}]},
               'dns': {'nameservers': ['10.0.0.53'],
                       'domain': 'example',
                       'search': ['a.example'],
                       'options': ['ndots:2']}},
 'add-0.3.0': {'cniVersion': '0.3.0',
               'ips': [{'version': '4', 'address': '10.0.0.5/24', 'gateway': '10.0.0.1'},
                       {'version': '6', 'address': 'fd00::5/64'}],
               'routes': [{'dst': '0.0.0.0/0', 'gw': '10.0.0.1'}, {'dst': 'fd00:1::/64'}],
               'dns': {'nameservers': ['10.0.0.53'],
                       'domain': 'example',
                       'search': ['a.example'],
                       'options': ['ndots:2']}},
 'add-0.3.1': {'cniVersion': '0.3.1',
               'ips': [{'version': '4', 'address': '10.0.0.5/24', 'gateway': '10.0.0.1'},
                       {'version': '6', 'address': 'fd00::5/64'}],
               'routes': [{'dst': '0.0.0.0/0', 'gw': '10.0.0.1'}, {'dst': 'fd00:1::/64'}],
               'dns': {'nameservers': ['10.0.0.53'],
                       'domain': 'example',
                       'search': ['a.example'],
                       'options': ['ndots:2']}},
 'add-0.4.0': {'cniVersion': '0.4.0',
               'ips': [{'version': '4', 'address': '10.0.0.5/24', 'gateway': '10.0.0.1'},
                       {'version': '6', 'address': 'fd00::5/64'}],
               'routes': [{'dst': '0.0.0.0/0', 'gw': '10.0.0.1'}, {'dst': 'fd00:1::/64'}],
               'dns': {'nameservers': ['10.0.0.53'],
                       'domain': 'example',
                       'search': ['a.example'],
                       'options': ['ndots:2']}},
 'add-1.0.0': {'cniVersion': '1.0.0',
               'ips': [{'address': '10.0.0.5/24', 'gateway': '10.0.0.1'},
                       {'address': 'fd00::5/64'}],
               'routes': [{'dst': '0.0.0.0/0', 'gw': '10.0.0.1'}, {'dst': 'fd00:1::/64'}],
               'dns': {'nameservers': ['10.0.0.53'],
                       'domain': 'example',
                       'search': ['a.example'],
                       'options': ['ndots:2']}},
 'add-1.1.0': {'cniVersion': '1.1.0',
               'ips': [{'address': '10.0.0.5/24', 'gateway': '10.0.0.1'},
                       {'address': 'fd00::5/64'}],
               'routes': [{'dst': '0.0.0.0/0', 'gw': '10.0.0.1'}, {'dst': 'fd00:1::/64'}],
               'dns': {'nameservers': ['10.0.0.53'],
                       'domain': 'example',
                       'search': ['a.example'],
                       'options': ['ndots:2']}},
 'add-no-version': {'cniVersion': '0.1.0',
                    'ip4': {'ip': '10.0.0.5/24', 'gateway': '10.0.0.1'},
                    'dns': {}},
 'add-empty-1.1.0': {'cniVersion': '1.1.0'},
 'add-empty-0.2.0': ('error', 999, 'cannot convert: no valid IP addresses'),
 'add-v6-only-0.1.0': {'cniVersion': '0.1.0', 'ip6': {'ip': 'fd00::6/64'}, 'dns': {}},
 'add-two-v4-0.2.0': ('error',
                      999,
                      'CNI version 0.2.0 does not support more than 1 address per family'),
 'add-two-v4-0.3.0': {'cniVersion': '0.3.0',
                      'ips': [{'version': '4', 'address': '10.0.0.5/24'},
                              {'version': '4', 'address': '10.0.0.6/24'}],
                      'dns': {}},
 'add-two-v4-no-version': ('error',
                           999,
                           'CNI version  does not support more than 1 address per family'),
 'add-route-extras-1.1.0': {'cniVersion': '1.1.0',
                            'ips': [{'address': '10.0.0.5/24', 'gateway': '10.0.0.1'}],
                            'routes': [{'dst': '10.1.2.3/8',
                                        'gw': '10.0.0.1',
                                        'mtu': 1400,
                                        'advmss': 1300,
                                        'priority': 5,
                                        'table': 100,
                                        'scope': 0}]},
 'add-route-extras-0.4.0': {'cniVersion': '0.4.0',
                            'ips': [{'version': '4',
                                     'address': '10.0.0.5/24',
                                     'gateway': '10.0.0.1'}],
                            'routes': [{'dst': '10.1.2.3/8',
                                        'gw': '10.0.0.1',
                                        'mtu': 1400,
                                        'advmss': 1300,
                                        'priority': 5,
                                        'table': 100,
                                        'scope': 0}],
                            'dns': {}},
 'add-keys-any-case': {'cniVersion': '1.0.0',
                       'ips': [{'address': '10.0.0.5/24', 'gateway': '10.0.0.1'}],
                       'routes': [{'dst': '0.0.0.0/0'}]},
 'add-address-ipnet': {'cniVersion': '1.0.0', 'ips': [{'address': '10.0.0.5/24'}]},
 'addr-mapped-120': {'cniVersion': '1.0.0', 'ips': [{'address': '10.0.0.1/24'}]},
 'addr-mapped-90': {'cniVersion': '1.0.0', 'ips': [{'address': '10.0.0.1/0'}]},
 'addr-v6-canonical': {'cniVersion': '1.0.0', 'ips': [{'address': 'fd00::1/64'}]},
 'addr-prefix-leading-zero': {'cniVersion': '1.0.0', 'ips': [{'address': '10.0.0.1/24'}]},
 'addr-host-bits-kept': {'cniVersion': '1.0.0', 'ips': [{'address': '10.1.2.3/8'}]},
 'gw-outside-subnet': {'cniVersion': '1.0.0',
                       'ips': [{'address': '10.0.0.5/24', 'gateway': '10.9.9.9'}]},
 'gw-other-family': {'cniVersion': '1.0.0',
                     'ips': [{'address': '10.0.0.5/24', 'gateway': 'fd00::1'}]},
 'gw-mapped': {'cniVersion': '1.0.0', 'ips': [{'address': '10.0.0.5/24', 'gateway': '10.0.0.1'}]},
 'gw-empty': {'cniVersion': '1.0.0', 'ips': [{'address': '10.0.0.5/24'}]},
 'gw-null': {'cniVersion': '1.0.0', 'ips': [{'address': '10.0.0.5/24'}]},
 'addresses-null': {'cniVersion': '1.0.0'},
 'dns-not-checked': {'cniVersion': '1.0.0', 'dns': {'nameservers': ['not-an-ip']}},
 'args-ip-appended': {'cniVersion': '1.0.0',
                      'ips': [{'address': '10.0.0.5/24', 'gateway': '10.0.0.1'},
                              {'address': '10.0.0.7/24'}]},
 'args-ip-gateway-dual': {'cniVersion': '1.0.0',
                          'ips': [{'address': '10.0.0.7/24', 'gateway': '10.0.0.1'},
                                  {'address': 'fd00::7/64', 'gateway': 'fd00::1'}]},
 'args-spaces-trimmed': {'cniVersion': '1.0.0',
                         'ips': [{'address': '10.0.0.7/24', 'gateway': '10.0.0.1'},
                                 {'address': '10.1.0.7/16'}]},
 'args-gateway-alone': {'cniVersion': '1.0.0'},
 'args-gateway-not-for-config': {'cniVersion': '1.0.0', 'ips': [{'address': '10.0.0.5/24'}]},
 'args-gateway-outside': {'cniVersion': '1.0.0', 'ips': [{'address': '10.0.0.7/24'}]},
 'args-gateway-last-wins': {'cniVersion': '1.0.0',
                            'ips': [{'address': '10.0.0.7/24', 'gateway': '10.0.0.2'},
                                    {'address': '10.0.0.8/24', 'gateway': '10.0.0.2'}]},
 'args-ip-repeated': {'cniVersion': '1.0.0', 'ips': [{'address': '10.0.0.8/24'}]},
 'args-ip-empty': {'cniVersion': '1.0.0'},
 'args-ignore-unknown': {'cniVersion': '1.0.0', 'ips': [{'address': '10.0.0.7/24'}]},
 'args-ignore-unknown-later': {'cniVersion': '1.0.0', 'ips': [{'address': '10.0.0.7/24'}]},
 'args-unknown': ('error', 999, 'ARGS: unknown args ["K8S_POD_NAME=x" "K8S_POD_NAMESPACE=y"]'),
 'args-unknown-lowercase': ('error', 999, 'ARGS: unknown args ["ip=10.0.0.7/24"]'),
 'args-ignore-unknown-bad': ('error',
                             999,
                             'ARGS: error parsing value of pair "IgnoreUnknown=maybe": boolean '
                             'unmarshal error: invalid input maybe'),
 'args-ignore-unknown-last-false': ('error', 999, 'ARGS: unknown args ["a=b"]'),
 'args-unknown-before-bad-ip': ('error', 999, 'ARGS: unknown args ["a=b"]'),
 'args-trailing-semicolon': ('error', 999, 'ARGS: invalid pair ""'),
 'args-two-equals': ('error', 999, 'ARGS: invalid pair "IP=a=b"'),
 'args-commonargs': ('error',
                     999,
                     "ARGS: cannot unmarshal into field 'CommonArgs' - type '*types.CommonArgs' "
                     'does not implement encoding.TextUnmarshaler'),
 'args-ip-not-cidr': ('error',
                      999,
                      "the 'ip' field is expected to be in CIDR notation, got: '10.0.0.7'"),
 'args-ip-empty-item': ('error', 999, "the 'ip' field is expected to be in CIDR notation, got: ''"),
 'args-gateway-bad': ('error', 999, 'invalid gateway address: foo'),
 'args-gateway-empty-item': ('error', 999, 'invalid gateway address: '),
 'cni-ips-replace': {'cniVersion': '1.0.0', 'ips': [{'address': '10.1.0.5/16'}]},
 'runtime-ips-replace-all': {'cniVersion': '1.0.0', 'ips': [{'address': '10.2.0.5/16'}]},
 'runtime-ips-empty': {'cniVersion': '1.0.0',
                       'ips': [{'address': '10.0.0.5/24', 'gateway': '10.0.0.1'}]},
 'cni-null': {'cniVersion': '1.0.0', 'ips': [{'address': '10.0.0.5/24', 'gateway': '10.0.0.1'}]},
 'cni-ips-null': {'cniVersion': '1.0.0',
                  'ips': [{'address': '10.0.0.5/24', 'gateway': '10.0.0.1'}]},
 'cni-ips-not-cidr': ('error',
                      999,
                      "an entry in the 'ips' field is NOT in CIDR notation, got: '10.1.0.5'"),
 'runtime-ips-not-cidr': ('error',
                          999,
                          "an entry in the 'ips' field is NOT in CIDR notation, got: 'bad'"),
 'no-ipam': ('error', 999, "IPAM config missing 'ipam' key"),
 'ipam-null': ('error', 999, "IPAM config missing 'ipam' key"),
 'address-not-cidr': ('error',
                      999,
                      "the 'address' field is expected to be in CIDR notation, got: '10.0.0.5'"),
 'address-leading-zero': ('error',
                          999,
                          "the 'address' field is expected to be in CIDR notation, got: "
                          "'010.0.0.1/24'"),
 'address-prefix-too-long': ('error',
                             999,
                             "the 'address' field is expected to be in CIDR notation, got: "
                             "'10.0.0.1/33'"),
 'address-zone': ('error',
                  999,
                  "the 'address' field is expected to be in CIDR notation, got: 'fe80::1%eth0/64'"),
 'address-space': ('error',
                   999,
                   "the 'address' field is expected to be in CIDR notation, got: ' 10.0.0.1/24'"),
 'address-empty': ('error', 999, "the 'address' field is expected to be in CIDR notation, got: ''"),
 'address-null-entry': ('error',
                        999,
                        "the 'address' field is expected to be in CIDR notation, got: ''"),
 'gateway-bad': ('error', 999, 'invalid IP address: foo'),
 'route-dst-bad': ('error', 999, 'invalid CIDR address: bad'),
 'route-gw-bad': ('error', 999, 'invalid IP address: bad'),
 'route-dst-null': ('error', 999, 'invalid CIDR address: '),
 'version-unknown': ('error', 1, 'incompatible CNI versions'),
 'type-gateway': ('error',
                  999,
                  'invalid value for config.ipam.addresses[0].gateway: expected a string'),
 'type-address': ('error',
                  999,
                  'invalid value for config.ipam.addresses[0].address: expected a string'),
 'type-addresses': ('error', 999, 'invalid value for config.ipam.addresses: expected a list'),
 'type-address-ipnet': ('error',
                        999,
                        'invalid value for config.ipam.addresses[0].Address: expected an IPNet '
                        'object {IP, Mask}'),
 'type-dns': ('error', 999, 'invalid value for config.ipam.dns: expected an object'),
 'type-ipam': ('error', 999, 'invalid value for config.ipam: expected an object'),
 'type-runtime-config': ('error',
                         999,
                         'invalid value for config.runtimeConfig: expected an object'),
 'type-args': ('error', 999, 'invalid value for config.args: expected an object'),
 'type-cni-ips': ('error', 999, 'invalid value for config.args.cni.ips: expected a list'),
 'route-no-dst': ('error', 999, 'invalid route 0: dst is missing'),
 'route-null': ('error', 999, 'invalid route 0: expected an object, got null'),
 'del': None,
 'del-bad-config': None,
 'gc': None,
 'status': None,
 'check-no-prev': ('error', 999, 'Required prevResult missing'),
 'check-match': None,
 'check-other-prefix': None,
 'check-gateway-differs': ('error', 999, 'static: Failed to match addr 10.0.0.5 on interface eth0'),
 'check-gateway-missing': ('error', 999, 'static: Failed to match addr 10.0.0.5 on interface eth0'),
 'check-address-absent': None,
 'check-prev-empty': None,
 'check-first-entry-decides': ('error',
                               999,
                               'static: Failed to match addr 10.0.0.5 on interface eth0'),
 'check-first-entry-matches': None,
 'check-unconfigured-gateway': None,
 'check-mapped': ('error', 999, 'static: Failed to match addr 10.0.0.5 on interface eth0'),
 'check-prev-other-version': ('error',
                              999,
                              'could not parse prevResult: result type supports [1.0.0 1.1.0] but '
                              'unmarshalled CNIVersion is "0.2.0"'),
 'check-prev-bad-address': ('error', 999, "could not parse prevResult: invalid CIDR address 'bad'"),
 'check-prev-not-object': ('error', 999, 'failed to load netconf: prevResult must be an object'),
 'check-bad-config-first': ('error',
                            999,
                            "the 'address' field is expected to be in CIDR notation, got: 'bad'"),
 'check-runtime-ips': None,
 'check-args-gateway': ('error', 999, 'static: Failed to match addr 10.0.0.5 on interface eth0'),
 'check-0.3.1': ('error', 1, 'config version does not allow CHECK')}


def env(command: str, args: str) -> dict:
    return {"PATH": "/usr/bin:/bin", "CNI_COMMAND": command, "CNI_CONTAINERID": "st-c1",
            "CNI_NETNS": "/nonexistent/st-netns", "CNI_IFNAME": "eth0",
            "CNI_PATH": "/nonexistent", "CNI_ARGS": args}


def outcome(code: int, text: str):
    data = json.loads(text) if text.strip() else None
    if code != 0:
        return ("error", data["code"], data["msg"])
    return data


def ours(command, config, args):
    out = io.StringIO()
    code = skel.run(StaticPlugin(), env(command, args),
                    io.BytesIO(json.dumps(config).encode()), out)
    return outcome(code, out.getvalue())


def reference(binary, command, config, args):
    proc = subprocess.run([binary], input=json.dumps(config).encode(),
                          env=env(command, args), capture_output=True, timeout=30)
    return outcome(proc.returncode, proc.stdout.decode())


IDS = [c[0] for c in CASES]


def test_every_case_has_its_outcome():
    assert sorted(EXPECTED) == sorted(IDS) and len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_ours(case):
    cid, command, config, args, _note = case
    assert ours(command, config, args) == EXPECTED[cid]


def agrees(case, got) -> bool:
    cid, _command, _config, _args, note = case
    want = EXPECTED[cid]
    if note == "msg":
        return got[:2] == want[:2]
    if note == "refuse":
        return want[0] == "error" and not isinstance(got, tuple)
    return got == want


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_reference_v1_9(case):
    if not os.access(REF_V19, os.X_OK):
        pytest.skip(f"{REF_V19} not built (bench/build-reference.sh)")
    got = reference(REF_V19, *case[1:4])
    assert agrees(case, got), (got, EXPECTED[case[0]])


REFUSALS = [c for c in CASES if isinstance(EXPECTED[c[0]], tuple)
            and c[2].get("cniVersion") != "1.1.0"]


@pytest.mark.parametrize("case", REFUSALS, ids=[c[0] for c in REFUSALS])
def test_reference_debian_refusals(case):
    if not os.access(REF_DEBIAN, os.X_OK):
        pytest.skip(f"{REF_DEBIAN} not installed")
    got = reference(REF_DEBIAN, *case[1:4])
    if isinstance(got, tuple):     # v1.1.1's result types know no 1.1.0
        got = got[:2] + (got[2].replace("[1.0.0]", "[1.0.0 1.1.0]"),)
    assert agrees(case, got), (got, EXPECTED[case[0]])
