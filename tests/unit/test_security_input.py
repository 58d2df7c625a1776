"""Config text as Go's encoding/json reads it (issue #11, findings 5 and 11).

- Duplicate keys that differ in case: Go walks the keys in document order
  and sets the field each matches, so the *last* case-insensitive match
  wins, across exact repeats too ({"a":1,"A":2,"a":3} gives 3).
- Limits: nesting up to 10,000 levels parses, deeper is a decoding error
  (code 6); NaN/Infinity and numbers beyond float64 are refused (code 6);
  invalid UTF-8 and lone surrogates become U+FFFD as in Go; integers
  beyond int64 in an integer field are a config error (code 7). Never a
  traceback or a bare 999.

Expected values were checked against Go 1.19 encoding/json.
"""

import io
import json

import pytest

from pycni import decode as decode_module
from pycni import skel
from pycni.config import NetConf
from pycni.decode import GoKeys, decode, fold, loads, lookup
from pycni.errors import CNIError, DECODING_FAILURE, INVALID_NETWORK_CONFIG
from pycni.result import IPConfig, Result, parse_result

ENV = {"CNI_CONTAINERID": "cid42", "CNI_NETNS": "/run/netns/none-such",
       "CNI_IFNAME": "eth1", "CNI_PATH": "/opt/cni/bin"}


class Echo(skel.Plugin):
    """ADD returns a result; keeps the request for inspection."""
    name = "echo"
    seen = None

    def add(self, req):
        Echo.seen = req
        return Result(ips=[IPConfig("10.0.0.9/24")])

    def delete(self, req):
        Echo.seen = req


def run(command, data: bytes, env=None):
    out = io.StringIO()
    Echo.seen = None
    code = skel.run(Echo(), {"CNI_COMMAND": command, **ENV, **(env or {})},
                    io.BytesIO(data), out)
    return code, out.getvalue()


def error_of(stdout: str) -> dict:
    doc = json.loads(stdout)
    assert set(doc) >= {"cniVersion", "code", "msg"}
    return doc


def nested(depth: int) -> str:
    """A config whose deepest value sits `depth` containers down."""
    inner = "[" * (depth - 1) + "]" * (depth - 1)
    return '{"cniVersion":"1.0.0","name":"deep","type":"echo","x":' + inner + "}"


# --- finding 5: the last case-insensitive key wins ------------------------------

@pytest.mark.parametrize("text, expected", [
    ('{"a":1,"A":2}', 2),
    ('{"A":2,"a":1}', 1),
    ('{"a":1,"A":2,"a":3}', 3),          # Python's dict would keep "a" first
    ('{"A":1,"a":2,"A":3}', 3),
    ('{"a":1,"a":2}', 2),
])
def test_last_match_wins_across_repeats(text, expected):
    assert lookup(loads(text), "a") == expected


def test_loads_keeps_document_order_of_last_occurrence():
    assert list(loads('{"a":1,"b":2,"a":3}')) == ["b", "a"]
    assert loads('{"a":1,"b":2,"a":3}') == {"a": 3, "b": 2}


def test_decode_struct_fields_last_match():
    conf = decode(NetConf, loads(
        '{"name":"n1","Name":"n2","ipam":{"type":"a","TYPE":"b","type":"c"},'
        '"cniVersion":"1.0.0","CNIVERSION":"0.4.0"}'))
    assert conf.name == "n2"
    assert conf.ipam.type == "c"
    assert conf.cni_version == "0.4.0"


def test_go_folding_rules():
    # KELVIN SIGN folds to k, LONG S to s (Go: bytes.EqualFold)
    assert lookup(loads('{"kind":"x","\\u212aind":"kelvin"}'), "kind") == "kelvin"
    assert lookup(loads('{"\\u017fubnet":"longs"}'), "subnet") == "longs"
    # dotless i and dotted I do not fold to i in Go
    assert lookup(loads('{"\\u0131ndex":"dotless"}'), "index") is None
    assert lookup(loads('{"\\u0130ndex":"dotted"}'), "index") is None
    assert fold("HostPort") == fold("hostport") == "hostport"


def test_maps_keep_keys_that_differ_in_case():
    """A map (dict-typed field) keeps its keys as they are, as a Go map does."""
    conf = decode(NetConf, loads('{"args":{"k":1,"K":2}}'))
    assert conf.args == {"k": 1, "K": 2}


def test_skel_name_and_version_last_match():
    code, out = run("ADD", b'{"cniVersion":"0.3.1","name":"first","Name":"second",'
                           b'"CniVersion":"1.0.0","type":"echo"}')
    assert code == 0, out
    assert Echo.seen.network_name == "second"
    assert Echo.seen.cni_version == "1.0.0"
    assert json.loads(out)["cniVersion"] == "1.0.0"


def test_prev_result_keys_any_case_last_wins():
    config = loads('{"cniVersion":"1.0.0","name":"n","PrevResult":{"cniVersion":"1.0.0",'
                   '"IPs":[{"Address":"10.0.0.1/24","address":"10.0.0.2/24"}]},'
                   '"prevResult":{"cniVersion":"1.0.0","ips":[{"ADDRESS":"10.0.0.3/24"}]}}')
    req = skel.Request("DEL", ENV, b"", config)
    req.cni_version = "1.0.0"
    assert [str(ip.address) for ip in req.prev_result.ips] == ["10.0.0.3/24"]
    result = parse_result(loads('{"CNIVERSION":"1.0.0","IPS":[{"Address":"10.0.0.1/24",'
                                '"address":"10.0.0.2/24","Gateway":"10.0.0.254"}],'
                                '"Routes":[{"DST":"0.0.0.0/0"}]}'), "0.4.0")
    assert result.cni_version == "1.0.0"
    assert [str(ip.address) for ip in result.ips] == ["10.0.0.2/24"]
    assert str(result.ips[0].gateway) == "10.0.0.254"
    assert [str(r.dst) for r in result.routes] == ["0.0.0.0/0"]


def test_valid_attachments_any_case():
    config = loads('{"cni.dev/valid-attachments":[{"containerID":"a","ifname":"e"}],'
                   '"CNI.dev/Valid-Attachments":[{"ContainerId":"b","IfName":"f"}]}')
    (att,) = skel.Request("GC", ENV, b"", config).valid_attachments
    assert (att.container_id, att.ifname) == ("b", "f")


def test_go_keys_view():
    view = GoKeys({"Dst": "a", "dst": "b", "GW": "c"})
    assert view.get("dst") == "b" and view["gw"] == "c" and "DST" in view
    assert view.get("mtu", 0) == 0
    with pytest.raises(KeyError):
        view["mtu"]


# --- finding 11: limits ----------------------------------------------------------

def test_nesting_up_to_10000_levels_is_accepted():
    """Regression: ~1,000 levels gave a bare 999 (RecursionError)."""
    for depth in (999, 1000, 5000, 10000):
        code, out = run("ADD", nested(depth).encode(), {"CNI_COMMAND": "ADD"})
        assert code == 0, (depth, out[:300])
        assert json.loads(out)["ips"] == [{"address": "10.0.0.9/24"}]


@pytest.mark.parametrize("depth", [10001, 20000, 200000])
def test_nesting_deeper_than_go_accepts_is_a_decoding_error(depth):
    code, out = run("ADD", nested(depth).encode())
    assert code == 1
    err = error_of(out)
    assert err["code"] == DECODING_FAILURE
    assert "max depth" in err["details"]


def test_deep_object_nesting_too():
    inner = '{"a":' * 9999 + "1" + "}" * 9999
    config = '{"cniVersion":"1.0.0","name":"deep","x":' + inner + "}"
    assert run("DEL", config.encode())[0] == 0
    inner = '{"a":' * 10000 + "1" + "}" * 10000
    config = '{"cniVersion":"1.0.0","name":"deep","x":' + inner + "}"
    code, out = run("DEL", config.encode())
    assert (code, error_of(out)["code"]) == (1, DECODING_FAILURE)


def test_deep_config_survives_later_walks(tmp_path):
    """The config is dumped again (debug log); that must work at 10,000."""
    logs = tmp_path / "logs"
    logs.mkdir()
    logs.chmod(0o755)
    data = nested(10000).replace('"type":"echo"', '"type":"echo","logLevel":"debug"')
    code, out = run("ADD", data.encode(), {"PYCNI_LOG_DIR": str(logs)})
    assert code == 0, out[:300]
    line = (logs / "pycni.log").read_text()
    config = json.loads(line.split(" config=", 1)[1].split(" result=", 1)[0])
    assert config["name"] == "deep"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_non_json_numbers_are_decoding_errors(literal):
    """Go refuses NaN/Infinity (not JSON) and numbers beyond float64."""
    data = b'{"cniVersion":"1.0.0","name":"n","x":' + literal.encode() + b"}"
    code, out = run("ADD", data)
    assert code == 1
    assert error_of(out)["code"] == DECODING_FAILURE


def test_huge_integer_literal_is_a_decoding_error():
    data = b'{"cniVersion":"1.0.0","name":"n","x":' + b"9" * 5000 + b"}"
    code, out = run("ADD", data)
    assert (code, error_of(out)["code"]) == (1, DECODING_FAILURE)


@pytest.mark.parametrize("value", [1 << 63, -(1 << 63) - 1, 10 ** 40, 1e30])
def test_integer_field_beyond_int64_is_a_config_error(value):
    from dataclasses import dataclass

    @dataclass
    class Conf:
        mtu: int = 0

    with pytest.raises(CNIError) as info:
        decode(Conf, {"mtu": value})
    assert info.value.code == INVALID_NETWORK_CONFIG
    assert decode(Conf, {"mtu": (1 << 63) - 1}).mtu == (1 << 63) - 1


def test_invalid_utf8_becomes_replacement_characters_as_in_go():
    value = loads(b'{"kind":"\xe2\x82a\xff"}')
    assert value == {"kind": "\ufffd\ufffda\ufffd"}        # Go's result
    code, out = run("ADD", b'{"cniVersion":"1.0.0","name":"n","x":"\xff\xfe"}')
    assert code == 0, out


def test_invalid_utf8_outside_strings_is_a_decoding_error():
    code, out = run("ADD", b'{"cniVersion":"1.0.0","name":"n"\xff}')
    assert (code, error_of(out)["code"]) == (1, DECODING_FAILURE)


def test_lone_surrogates_become_replacement_characters_as_in_go():
    assert loads('{"kind":"\\ud800x"}') == {"kind": "\ufffdx"}
    assert loads('{"k\\udc00":["\\udbff"]}') == {"k\ufffd": ["\ufffd"]}
    assert loads('"\\ud83d\\ude00"') == "\U0001F600"          # a pair stays
    # and nothing downstream trips over them: the result is plain UTF-8
    code, out = run("ADD", b'{"cniVersion":"1.0.0","name":"n","ipam":{"type":"\\ud800"}}')
    assert code == 0, out
    assert Echo.seen.config["ipam"]["type"].encode() == "\ufffd".encode()


@pytest.mark.parametrize("data", [
    b"\xef\xbb\xbf{\"name\":\"n\"}",                    # BOM: Go refuses it
    b"\xff\xfe{\x00}\x00",                               # UTF-16
    b'{"name":"n"} {}', b"", b"[", b'{"name":"n",}',
])
def test_other_non_json_is_a_decoding_error(data):
    code, out = run("ADD", data)
    assert (code, error_of(out)["code"]) == (1, DECODING_FAILURE)


@pytest.mark.parametrize("config, code", [
    ({"cniVersion": 1, "name": "n"}, DECODING_FAILURE),
    ({"cniVersion": "1.0.0", "name": 5}, INVALID_NETWORK_CONFIG),
    ({"cniVersion": "1.0.0", "name": ["n"]}, INVALID_NETWORK_CONFIG),
    ({"cniVersion": "1.0.0", "name": "n", "prevResult": "x"}, DECODING_FAILURE),
    ({"cniVersion": "1.0.0", "name": "n", "prevResult": {"ips": "x"}}, DECODING_FAILURE),
    ({"cniVersion": "1.1.0", "name": "n", "cni.dev/valid-attachments": "x"},
     INVALID_NETWORK_CONFIG),
    ({"cniVersion": "1.1.0", "name": "n", "cni.dev/valid-attachments": [{"ifname": 3}]},
     INVALID_NETWORK_CONFIG),
])
def test_wrong_types_are_clear_errors_never_999(config, code):
    class Reader(Echo):
        def delete(self, req):
            req.prev_result
            if req.command == "GC":
                req.valid_attachments

        gc = delete

    for command in ("DEL", "GC"):
        out = io.StringIO()
        env = {"CNI_COMMAND": command, **ENV}
        rc = skel.run(Reader(), env, io.BytesIO(json.dumps(config).encode()), out)
        if rc == 0:
            continue
        assert error_of(out.getvalue())["code"] == code, out.getvalue()
        break
    else:
        pytest.fail("no command refused the config")


def test_stack_limit_caps_depth_instead_of_crashing(monkeypatch):
    """Where the stack cannot hold 10,000 levels, deeper input is a
    decoding error, never a segfault."""
    import resource
    monkeypatch.setattr(resource, "getrlimit", lambda what: (1 << 20, 1 << 20))
    monkeypatch.setattr(resource, "setrlimit", lambda *a: None)
    allowed = decode_module.allow_depth(10000)
    assert 1000 < allowed < 10000


def test_log_keys_of_another_type_do_not_fail_the_operation():
    """The reference ignores logFile/logLevel; so must decoding."""
    conf = decode(NetConf, {"name": "n", "logFile": 5, "logLevel": ["x"]})
    assert conf.name == "n"


def test_float_field_with_integer_beyond_float64_is_a_config_error():
    from dataclasses import dataclass

    @dataclass
    class Conf:
        rate: float = 0.0

    with pytest.raises(CNIError) as info:
        decode(Conf, loads('{"rate":' + "9" * 400 + "}"))
    assert info.value.code == INVALID_NETWORK_CONFIG


def test_interface_name_not_utf8_is_an_environment_error():
    """os.environ keeps non-UTF-8 bytes as lone surrogates: was a bare 999."""
    code, out = run("ADD", b'{"cniVersion":"1.0.0","name":"n"}',
                    {"CNI_IFNAME": "e\udcff0"})
    assert code == 1
    err = error_of(out)
    assert err["code"] == 4 and "UTF-8" in err["msg"]


def test_null_after_a_value_keeps_the_value_as_in_go():
    """Go: a later null leaves a non-pointer field as an earlier key set it;
    it clears a pointer (an optional field)."""
    from dataclasses import dataclass

    @dataclass
    class Conf:
        bridge: str = "cni0"
        mtu: int = 0
        p: str | None = None

    assert decode(Conf, loads('{"Bridge":"br1","bridge":null}')).bridge == "br1"
    assert decode(Conf, loads('{"mtu":5,"MTU":null}')).mtu == 5
    assert decode(Conf, loads('{"bridge":null}')).bridge == "cni0"
    assert decode(Conf, loads('{"p":"x","P":null}')).p is None


def test_objects_under_keys_that_differ_in_case_merge_as_in_go():
    """Go decodes a later object into the struct (or map) an earlier key
    filled: fields the later one does not name keep their values."""
    from pycni.plugins.bridge.config import BridgeConf  # noqa: F401  (real model)
    conf = decode(NetConf, loads(
        '{"ipam":{"type":"host-local"},"IPAM":{"Type":null},'
        '"args":{"a":1,"b":2},"Args":{"b":3},'
        '"dns":{"nameservers":["1.1.1.1"],"domain":"x"},"DNS":{"Domain":"y"}}'))
    assert conf.ipam.type == "host-local"
    assert conf.args == {"a": 1, "b": 3}
    assert conf.dns.nameservers == ["1.1.1.1"] and conf.dns.domain == "y"
    # a list is replaced, not merged
    conf = decode(NetConf, loads('{"dns":{"search":["a","b"]},"Dns":{"search":["c"]}}'))
    assert conf.dns.search == ["c"]


def test_pointer_to_struct_merges_until_null_as_in_go():
    from dataclasses import dataclass

    @dataclass
    class Inner:
        type: str = ""

    @dataclass
    class Conf:
        p: Inner | None = None

    assert decode(Conf, loads('{"p":{"type":"a"},"P":{}}')).p == Inner("a")
    assert decode(Conf, loads('{"p":{"type":"a"},"P":null,"p":{}}')).p == Inner("")
    assert decode(Conf, loads('{"p":{"type":"a"},"P":null}')).p is None
