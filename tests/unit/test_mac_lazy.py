"""pycni.mac loads on a macvlan or tap ADD/CHECK only when a MAC is
actually asked for (config `mac`, runtimeConfig.mac, args.cni.mac or
CNI_ARGS MAC=): reading the candidates is pycni.args's. Each case runs
the plugin's launcher as tests/unit/test_import_sets.py does (a netns that
does not exist: the call stops after the config was loaded, nothing is
touched)."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_import_sets as sets                  # noqa: E402
from test_import_sets import installed           # noqa: E402,F401  (the fixture)

MAC = "02:00:5e:10:00:01"


def config(plugin: str, tmp: str, **keys) -> dict:
    return {**sets.case_config(plugin, "ADD", tmp), **keys}


def loaded(installed, tmp_path, plugin, command, conf, cni_args=""):   # noqa: F811
    cni_path, _floor = installed
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command,
           "PYCNI_STATE_DIRS": str(tmp_path), "CNI_CONTAINERID": sets.CONTAINER_ID,
           "CNI_IFNAME": "eth0", "CNI_PATH": cni_path, "CNI_NETNS": sets.MISSING_NETNS}
    if cni_args:
        env["CNI_ARGS"] = cni_args
    code, out, err, modules = sets._run(sets.launcher_text(plugin, cni_path), env,
                                        json.dumps(conf).encode())
    assert modules is not None, err
    return code, json.loads(out), modules


@pytest.mark.parametrize("plugin", ["macvlan", "tap"])
@pytest.mark.parametrize("command", ["ADD", "CHECK"])
def test_no_mac_no_pycni_mac(installed, tmp_path, plugin, command):   # noqa: F811
    code, out, modules = loaded(installed, tmp_path, plugin, command,
                                config(plugin, str(tmp_path)))
    assert code == 1 and out["code"] != 7, out     # past the config, stopped at the netns
    assert "pycni.mac" not in modules


@pytest.mark.parametrize("plugin", ["macvlan", "tap"])
@pytest.mark.parametrize("how", ["mac", "runtimeConfig", "CNI_ARGS"])
def test_a_mac_loads_it_and_is_checked(installed, tmp_path, plugin, how):   # noqa: F811
    keys = {"mac": {"mac": MAC}, "runtimeConfig": {"runtimeConfig": {"mac": MAC}},
            "CNI_ARGS": {}}[how]
    args = f"MAC={MAC}" if how == "CNI_ARGS" else ""
    code, out, modules = loaded(installed, tmp_path, plugin, "ADD",
                                config(plugin, str(tmp_path), **keys), args)
    assert code == 1 and out["code"] != 7, out
    assert "pycni.mac" in modules
    bad = {"mac": "01:00:5e:10:00:01"} if how != "CNI_ARGS" else {}
    args = "MAC=01:00:5e:10:00:01" if how == "CNI_ARGS" else ""
    if how == "runtimeConfig":
        bad = {"runtimeConfig": {"mac": "01:00:5e:10:00:01"}}
    code, out, modules = loaded(installed, tmp_path, plugin, "ADD",
                                config(plugin, str(tmp_path), **bad), args)
    assert (code, out["code"]) == (1, 7)
    assert "multicast" in out["msg"]


def test_macvlan_args_cni_mac_loads_it(installed, tmp_path):   # noqa: F811
    conf = config("macvlan", str(tmp_path), args={"cni": {"mac": MAC}})
    code, out, modules = loaded(installed, tmp_path, "macvlan", "ADD", conf)
    assert code == 1 and out["code"] != 7, out
    assert "pycni.mac" in modules
