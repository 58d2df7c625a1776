"""extra-routes on the real kernel (root): chained after pycni's bridge in
a test world. The `world` and `plugin_dir` fixtures come from pycni's
pytest plugin (installed with pycni); extra-routes itself runs in-process
through pycni.testing inside the world's host namespace, so these tests
need no launcher of it."""

import json

import pytest

from pycni import testing

from pycni_extra_routes.plugin import ExtraRoutes

NET = {"cniVersion": "1.0.0", "name": "xr-net"}


def bridge_conf(tmp_path, world):
    return {**NET, "type": "bridge", "bridge": "xr0", "isGateway": True,
            "ipam": {"type": "host-local", "subnet": "10.77.0.0/24",
                     "dataDir": str(tmp_path / "ipam")}}


def routes_of(ns):
    return {(r["dst"], r.get("gateway")) for r in
            json.loads(ns.run("ip", "-j", "route", "show").stdout or b"[]")}


@pytest.mark.netns
def test_add_check_del_after_bridge(world, plugin_dir, tmp_path):
    ctr = world.container()
    bridge = world.run_plugin(plugin_dir, "bridge", "ADD", bridge_conf(tmp_path, world), ctr)
    assert bridge.ok, bridge.stdout
    conf = {**NET, "type": "extra-routes", "prevResult": bridge.json,
            "routes": [{"dst": "10.99.0.0/16"}, {"dst": "192.168.99.0/24", "priority": 7}]}
    kw = {"netns": ctr.path, "ifname": "eth0", "container_id": "xr1",
          "host_netns": world.host.path}

    add = testing.run(ExtraRoutes(), "ADD", conf, **kw)
    assert add.ok, add.stdout + add.stderr
    assert {"dst": "10.99.0.0/16", "gw": "10.77.0.1"} in add.json["routes"]
    assert {("10.99.0.0/16", "10.77.0.1"), ("192.168.99.0/24", "10.77.0.1")} <= routes_of(ctr)

    conf["prevResult"] = add.json
    assert testing.run(ExtraRoutes(), "CHECK", conf, **kw).ok
    ctr.run("ip", "route", "del", "10.99.0.0/16")
    check = testing.run(ExtraRoutes(), "CHECK", conf, **kw)
    assert not check.ok and "10.99.0.0/16" in check.error.msg

    for _ in range(2):   # DEL is idempotent
        assert testing.run(ExtraRoutes(), "DEL", conf, **kw).ok, "DEL failed"
    assert not {r for r in routes_of(ctr) if r[0] in ("10.99.0.0/16", "192.168.99.0/24")}
    assert world.run_plugin(plugin_dir, "bridge", "DEL", bridge_conf(tmp_path, world), ctr).ok


@pytest.mark.netns
def test_failed_add_leaves_nothing(world, plugin_dir, tmp_path):
    """The second route's gateway is not on any link: ADD fails, and the
    first route, already added, is gone again."""
    ctr = world.container()
    bridge = world.run_plugin(plugin_dir, "bridge", "ADD", bridge_conf(tmp_path, world), ctr)
    assert bridge.ok, bridge.stdout
    before = routes_of(ctr)
    conf = {**NET, "type": "extra-routes", "prevResult": bridge.json,
            "routes": [{"dst": "10.99.0.0/16"}, {"dst": "10.98.0.0/16", "gw": "10.55.0.1"}]}
    add = testing.run(ExtraRoutes(), "ADD", conf, netns=ctr.path, host_netns=world.host.path)
    assert not add.ok and "10.98.0.0/16" in add.error.msg
    assert routes_of(ctr) == before
    assert world.run_plugin(plugin_dir, "bridge", "DEL", bridge_conf(tmp_path, world), ctr).ok
