"""cnitool configuration loading: libcni's file order, wrapping, booleans,
cniVersions and errors."""

import json

import pytest

from pycni.cnitool import conf
from pycni.cnitool.conf import ConfError, load_network, parse_list, pick_version, wrap_single


def write(directory, name, obj):
    path = directory / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def conflist(name, *plugins, **top):
    return {"cniVersion": "1.0.0", "name": name,
            "plugins": list(plugins) or [{"type": "loopback"}], **top}


# --- file order and wrapping -------------------------------------------------

def test_first_matching_conflist_in_lexical_order_wins(tmp_path):
    write(tmp_path, "20-b.conflist", conflist("net", {"type": "second"}))
    write(tmp_path, "10-a.conflist", conflist("net", {"type": "first"}))
    write(tmp_path, "05-other.conflist", conflist("other"))
    assert load_network(str(tmp_path), "net").plugins == [{"type": "first"}]


def test_conflist_preferred_over_single_conf(tmp_path):
    write(tmp_path, "01-net.conf", {"cniVersion": "0.4.0", "name": "net", "type": "single"})
    write(tmp_path, "99-net.conflist", conflist("net", {"type": "listed"}))
    assert load_network(str(tmp_path), "net").plugins == [{"type": "listed"}]


def test_single_conf_and_json_are_wrapped(tmp_path):
    write(tmp_path, "10-x.conf", {"cniVersion": "0.3.1", "name": "x", "type": "bridge",
                                  "capabilities": {"mac": True}})
    write(tmp_path, "20-y.json", {"cniVersion": "1.0.0", "name": "y", "type": "ptp"})
    x = load_network(str(tmp_path), "x")
    assert (x.name, x.cni_version) == ("x", "0.3.1")
    assert x.plugins == [{"cniVersion": "0.3.1", "name": "x", "type": "bridge",
                          "capabilities": {"mac": True}}]
    # The cached config is the wrapped list as libcni encodes it.
    assert x.raw == (b'{"cniVersion":"0.3.1","name":"x","plugins":[{"capabilities":'
                     b'{"mac":true},"cniVersion":"0.3.1","name":"x","type":"bridge"}]}')
    assert load_network(str(tmp_path), "y").plugins[0]["type"] == "ptp"


def test_wrap_single_without_version_keeps_empty_version():
    name, data = wrap_single(b'{"name":"n","type":"t"}')
    assert name == "n"
    assert json.loads(data) == {"cniVersion": "", "name": "n",
                                "plugins": [{"name": "n", "type": "t"}]}


def test_other_extensions_and_directories_are_ignored(tmp_path):
    write(tmp_path, "10-net.conflist.bak", conflist("net", {"type": "bak"}))
    (tmp_path / "20-dir.conflist").mkdir()
    write(tmp_path, "30-net.conflist", conflist("net", {"type": "real"}))
    assert load_network(str(tmp_path), "net").plugins == [{"type": "real"}]


def test_conflist_raw_bytes_are_the_file_bytes(tmp_path):
    text = '{\n  "cniVersion": "1.0.0", "name": "net",\n  "plugins": [{"type": "lo"}]\n}\n'
    write(tmp_path, "10.conflist", text)
    assert load_network(str(tmp_path), "net").raw == text.encode()


def test_side_directory_plugins_are_appended(tmp_path):
    write(tmp_path, "10.conflist", conflist("net", {"type": "inline"}))
    side = tmp_path / "net"
    side.mkdir()
    write(side, "20-b.conf", {"type": "b"})
    write(side, "10-a.conf", {"type": "a"})
    write(side, "30-c.json", {"type": "ignored"})
    assert [p["type"] for p in load_network(str(tmp_path), "net").plugins] == \
        ["inline", "a", "b"]


def test_side_directory_only_list(tmp_path):
    write(tmp_path, "10.conflist", {"cniVersion": "1.1.0", "name": "net"})
    (tmp_path / "net").mkdir()
    write(tmp_path / "net", "10.conf", {"type": "a"})
    assert load_network(str(tmp_path), "net").plugins == [{"type": "a"}]


def test_load_only_inlined_plugins_skips_side_directory(tmp_path):
    write(tmp_path, "10.conflist", conflist("net", {"type": "inline"},
                                            loadOnlyInlinedPlugins="True"))
    (tmp_path / "net").mkdir()
    write(tmp_path / "net", "10.conf", {"type": "a"})
    assert load_network(str(tmp_path), "net").plugins == [{"type": "inline"}]


def test_side_directory_plugin_needs_type(tmp_path):
    write(tmp_path, "10.conflist", conflist("net"))
    (tmp_path / "net").mkdir()
    write(tmp_path / "net", "10.conf", {"name": "x"})
    with pytest.raises(ConfError, match="missing 'type'"):
        load_network(str(tmp_path), "net")


# --- errors ------------------------------------------------------------------

def test_no_configs(tmp_path):
    with pytest.raises(ConfError, match="no net configurations found in"):
        load_network(str(tmp_path), "net")
    with pytest.raises(ConfError, match="no net configurations found in"):
        load_network(str(tmp_path / "missing"), "net")


def test_not_found(tmp_path):
    write(tmp_path, "10.conflist", conflist("other"))
    with pytest.raises(ConfError, match='no net configuration with name "net" in'):
        load_network(str(tmp_path), "net")
    write(tmp_path, "20.conf", {"name": "other2", "type": "x"})
    with pytest.raises(ConfError, match='no net configuration with name "net" in'):
        load_network(str(tmp_path), "net")


def test_broken_conflist_aborts_search(tmp_path):
    write(tmp_path, "10-broken.conflist", "{not json")
    write(tmp_path, "20-good.conflist", conflist("net"))
    with pytest.raises(ConfError, match="error parsing configuration list"):
        load_network(str(tmp_path), "net")


def test_list_without_plugins_anywhere(tmp_path):
    write(tmp_path, "10.conflist", {"cniVersion": "1.0.0", "name": "net"})
    with pytest.raises(ConfError, match="no plugin configs found"):
        load_network(str(tmp_path), "net")


@pytest.mark.parametrize("raw, message", [
    ({"cniVersion": "1.0.0", "plugins": [{"type": "x"}]}, "no name"),
    ({"name": 5, "plugins": [{"type": "x"}]}, "invalid name type float64"),
    ({"name": "n", "cniVersion": 1, "plugins": [{"type": "x"}]}, "invalid cniVersion type"),
    ({"name": "n", "plugins": []}, "no plugins in list"),
    ({"name": "n", "plugins": {"type": "x"}}, "invalid 'plugins' type"),
    ({"name": "n", "plugins": "x"}, "invalid 'plugins' type string"),
    ({"name": "n", "plugins": [{"name": "x"}]}, "failed to parse plugin config 0.*missing 'type'"),
    ({"name": "n", "plugins": [{"type": ""}]}, "missing 'type'"),
    ({"name": "n", "plugins": [{"type": 3}]}, "'type' must be a string"),
    ({"name": "n", "plugins": [5]}, "not a JSON object"),
    ({"name": "n", "plugins": [{"type": "x", "capabilities": {"mac": "yes"}}]},
     "'capabilities' must be an object of booleans"),
    ({"name": "n", "loadOnlyInlinedPlugins": True}, "`loadOnlyInlinedPlugins` is true"),
    ({"name": "n", "disableCheck": "yes", "plugins": [{"type": "x"}]},
     'invalid value "yes" for disableCheck'),
    ({"name": "n", "disableGC": 1, "plugins": [{"type": "x"}]},
     "invalid type float64 for disableGC"),
])
def test_list_errors(raw, message):
    with pytest.raises(ConfError, match=message):
        parse_list(json.dumps(raw).encode())


def test_not_json():
    with pytest.raises(ConfError, match="error parsing configuration list"):
        parse_list(b"[1, 2]")
    with pytest.raises(ConfError, match="error parsing configuration list"):
        parse_list(b"")


# --- booleans and versions -----------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (True, True), (False, False), ("true", True), ("TRUE", True), ("False", False),
    ("fAlSe", False)])
def test_string_or_bool_flags(value, expected):
    netlist = parse_list(json.dumps({
        "name": "n", "disableCheck": value, "disableGC": value,
        "loadOnlyInlinedPlugins": value, "plugins": [{"type": "x"}]}).encode())
    assert netlist.disable_check is expected
    assert netlist.disable_gc is expected
    assert netlist.load_only_inlined_plugins is expected


def test_flags_default_false():
    netlist = parse_list(b'{"name":"n","plugins":[{"type":"x"}]}')
    assert not (netlist.disable_check or netlist.disable_gc
                or netlist.load_only_inlined_plugins)
    assert netlist.cni_version == ""


@pytest.mark.parametrize("version, versions_list, expected", [
    ("0.4.0", ["1.0.0", "0.3.1"], "1.0.0"),
    ("1.0.0", ["0.4.0"], "1.0.0"),
    ("", ["0.3.1", "1.1.0", "2.0.0"], "1.1.0"),   # newer than ours: dropped
    ("", ["1.2.0"], ""),                          # nothing usable: unchanged
    ("1.0.0", [], "1.0.0"),
    ("0.4.0", ["0.10.0"], "0.10.0"),              # numeric, not lexical
    ("1.0", ["0.4.0"], "1.0"),                    # libcni accepts short versions
])
def test_cni_versions_picks_highest_supported(version, versions_list, expected):
    assert pick_version(version, versions_list) == expected


def test_cni_versions_in_list():
    netlist = parse_list(json.dumps({"cniVersion": "0.4.0", "cniVersions": ["1.0.0", "1.1.0"],
                                     "name": "n", "plugins": [{"type": "x"}]}).encode())
    assert netlist.cni_version == "1.1.0"


@pytest.mark.parametrize("versions_list, message", [
    ("1.0.0", "invalid type for cniVersions"),
    ([1], "invalid type for cniVersions index 0"),
    (["x.y.z"], "invalid cniVersions entry x.y.z at index 0"),
    (["1.0.0.0"], "too many parts"),
])
def test_cni_versions_errors(versions_list, message):
    with pytest.raises(ConfError, match=message):
        pick_version("", versions_list)


def test_go_json_matches_go_encoding():
    assert conf.go_json({"b": 1, "a": ["<&>", "é"]}) == \
        '{"a":["\\u003c\\u0026\\u003e","é"],"b":1}'.encode()
