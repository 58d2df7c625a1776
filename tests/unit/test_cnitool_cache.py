"""libcni result cache: path, exact encoding, decoding, conversion and the
legacy format."""

import base64
import json
import os
import stat

import pytest

from pycni.cnitool import cache
from pycni.cnitool.request import RuntimeConf

RT = RuntimeConf(container_id="cnitool-5accf66fa4f7cbabc439", netns="/tmp/ns-fake",
                 ifname="eth0", args=[("A", "b"), ("C", "d")],
                 capability_args={"portMappings": [{"hostPort": 80}], "mac": "x"})
RESULT_040 = {"cniVersion": "0.4.0",
              "interfaces": [{"name": "eth0", "mac": "aa:bb:cc:dd:ee:ff", "sandbox": "/tmp/ns-fake"}],
              "ips": [{"version": "4", "interface": 0, "address": "10.0.0.1/24"}],
              "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.254"}],
              "dns": {"nameservers": ["1.1.1.1"]}}


def test_cache_path():
    assert cache.cache_path("/var/lib/cni", "net", RT) == \
        "/var/lib/cni/results/net-cnitool-5accf66fa4f7cbabc439-eth0"


@pytest.mark.parametrize("net, rt", [
    ("", RT), ("n", RuntimeConf("", "/n", "eth0")), ("n", RuntimeConf("c", "/n", ""))])
def test_cache_path_needs_all_parts(net, rt):
    with pytest.raises(cache.CacheError, match="cache file path requires"):
        cache.cache_path("/c", net, rt)


def test_encode_matches_libcni_bytes():
    config = b'{"cniVersion":"0.4.0","name":"net","plugins":[{"type":"spy"}]}'
    data = cache.encode(RT, "net", config, RESULT_040)
    # Field order, compact form and sorted map keys as the Go runtime writes.
    assert data == (
        b'{"kind":"cniCacheV1","containerId":"cnitool-5accf66fa4f7cbabc439",'
        b'"config":"' + base64.b64encode(config) + b'","ifName":"eth0","networkName":"net",'
        b'"netns":"/tmp/ns-fake","cniArgs":[["A","b"],["C","d"]],'
        b'"capabilityArgs":{"mac":"x","portMappings":[{"hostPort":80}]},'
        b'"result":{"cniVersion":"0.4.0","dns":{"nameservers":["1.1.1.1"]},'
        b'"interfaces":[{"mac":"aa:bb:cc:dd:ee:ff","name":"eth0","sandbox":"/tmp/ns-fake"}],'
        b'"ips":[{"address":"10.0.0.1/24","interface":0,"version":"4"}],'
        b'"routes":[{"dst":"0.0.0.0/0","gw":"10.0.0.254"}]}}')


def test_encode_omits_empty_fields():
    info = json.loads(cache.encode(RuntimeConf("c", "", "eth0"), "net", b"{}", None))
    assert set(info) == {"kind", "containerId", "config", "ifName", "networkName"}


def test_decode_attachment_round_trip():
    data = cache.encode(RT, "net", b"conf-bytes", RESULT_040)
    att = cache.decode_attachment(data)
    assert att == cache.Attachment(container_id=RT.container_id, network="net", ifname="eth0",
                                   config=b"conf-bytes", netns="/tmp/ns-fake",
                                   cni_args=[("A", "b"), ("C", "d")],
                                   capability_args=RT.capability_args)


@pytest.mark.parametrize("data", [b"{bad", b"[]", b'{"kind":"other"}', json.dumps(RESULT_040).encode()])
def test_decode_attachment_rejects_non_v1(data):
    assert cache.decode_attachment(data) is None


def test_cached_result_same_version():
    data = cache.encode(RT, "net", b"{}", RESULT_040)
    assert cache.cached_result(data, "0.4.0") == RESULT_040


def test_cached_result_converted_to_list_version():
    data = cache.encode(RT, "net", b"{}", RESULT_040)
    converted = cache.cached_result(data, "1.0.0")
    assert converted["cniVersion"] == "1.0.0"
    assert converted["ips"] == [{"interface": 0, "address": "10.0.0.1/24"}]
    legacy = cache.cached_result(data, "0.2.0")
    assert legacy["ip4"] == {"ip": "10.0.0.1/24",
                             "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.254"}]}


def test_cached_result_legacy_file_is_the_result():
    assert cache.cached_result(json.dumps(RESULT_040).encode(), "0.4.0") == RESULT_040


@pytest.mark.parametrize("data", [
    b"{bad json",
    b'{"kind":"cniCacheV1","containerId":"c"}',                 # no result
    b'{"kind":"cniCacheV1","result":{"ips":[]}}',               # result without version
    b'{"kind":"cniCacheV1","result":{"cniVersion":"9.9.9"}}',
    b'{"kind":"cniCacheV1","result":{"cniVersion":"1.0.0","ips":[{"address":5}]}}',
])
def test_cached_result_unusable(data):
    with pytest.raises(cache.CacheError):
        cache.cached_result(data, "1.0.0")


def test_cached_result_unconvertible_version():
    data = cache.encode(RT, "net", b"{}", {"cniVersion": "1.0.0", "interfaces": [{"name": "x"}]})
    with pytest.raises(cache.CacheError, match="failed to convert cached result"):
        cache.cached_result(data, "0.2.0")          # no IP for the ip4/ip6 shape


def test_write_read_delete_modes(tmp_path):
    cache_dir = str(tmp_path / "cni")
    cache.write(cache_dir, "net", RT, b"{}", RESULT_040)
    results = tmp_path / "cni" / "results"
    path = results / f"net-{RT.container_id}-eth0"
    assert stat.S_IMODE(os.stat(results).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(results) == [path.name]
    assert cache.read(cache_dir, "net", RT) == cache.encode(RT, "net", b"{}", RESULT_040)
    cache.delete(cache_dir, "net", RT)
    assert cache.read(cache_dir, "net", RT) is None
    cache.delete(cache_dir, "net", RT)      # already gone: fine


def test_attachments_listing(tmp_path):
    cache_dir = str(tmp_path)
    assert cache.attachments(cache_dir) == []
    cache.write(cache_dir, "net", RT, b"{}", RESULT_040)
    cache.write(cache_dir, "other", RuntimeConf("c2", "/n2", "eth1"), b"{}", RESULT_040)
    (tmp_path / "results" / "junk").write_text("not json")
    (tmp_path / "results" / "legacy").write_text(json.dumps(RESULT_040))
    found = cache.attachments(cache_dir)
    assert [(a.network, a.container_id, a.ifname) for a in found] == \
        [("net", RT.container_id, "eth0"), ("other", "c2", "eth1")]
