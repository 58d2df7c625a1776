"""Configs the reference accepts are accepted here too (issue #13), with
the same result and kernel state as the upstream v1.9 build
(/var/cache/pycni-bench/ref-v1.9/bin) and a warning on stderr; what both
refuse is refused, ours before anything changed."""

import os

import pytest

REF19_DIR = "/var/cache/pycni-bench/ref-v1.9/bin"


@pytest.fixture(scope="module")
def ref19():
    if not os.access(os.path.join(REF19_DIR, "bridge"), os.X_OK):
        from pytest_netns import missing_prerequisite
        missing_prerequisite(f"the upstream v1.9 reference build is not in {REF19_DIR}")
    return [REF19_DIR]


def host_local(data_dir, **rng) -> dict:
    return {"type": "host-local", "dataDir": data_dir,
            "ranges": [[{"subnet": "10.97.0.0/24", **rng}]]}


def ok(run):
    assert run.returncode == 0, f"{run.stdout} {run.stderr}"
    return run


@pytest.mark.netns
@pytest.mark.parametrize("gateway", ["10.96.0.1", "fd96::1"])
def test_host_local_gateway_outside_the_subnet(world, ref19, plugin_dir, tmp_path, gateway):
    ctr = world.container("iopc")
    results = {}
    for who, path in (("ours", [plugin_dir]), ("ref", ref19)):
        conf = {"cniVersion": "1.0.0", "name": "iopnet", "type": "host-local",
                "ipam": host_local(str(tmp_path / who), gateway=gateway)}
        run = ok(world.run_plugin(path, "host-local", "ADD", conf, ctr))
        results[who] = run.json
        if who == "ours":
            assert f"gateway {gateway} is not in network 10.97.0.0/24" in run.stderr
        ok(world.run_plugin(path, "host-local", "DEL", conf, ctr))
    assert results["ours"] == results["ref"]
    assert results["ours"]["ips"] == [{"address": "10.97.0.1/24", "gateway": gateway}]


def link(ns, name) -> dict:
    return ns.link(name)


@pytest.mark.netns
def test_bridge_negative_mtu_is_the_kernels_default(world, ref19, plugin_dir, tmp_path):
    states = {}
    for who, path, bridge in (("ours", [plugin_dir], "iopbr0"), ("ref", ref19, "iopbr1")):
        ctr = world.container(f"iop{who}")
        conf = {"cniVersion": "1.0.0", "name": f"iop{who}", "type": "bridge", "bridge": bridge,
                "mtu": -1, "ipam": host_local(str(tmp_path / who))}
        run = ok(world.run_plugin(path, "bridge", "ADD", conf, ctr))
        if who == "ours":
            assert "mtu -1 is negative" in run.stderr
        states[who] = (world.host.link(bridge)["mtu"], ctr.link("eth0")["mtu"],
                       [i["address"] for i in run.json["ips"]])
        ok(world.run_plugin(path, "bridge", "CHECK", {**conf, "prevResult": run.json}, ctr))
        ok(world.run_plugin(path, "bridge", "DEL", conf, ctr))
    assert states["ours"] == states["ref"] == (1500, 1500, ["10.97.0.2/24"])


@pytest.mark.netns
def test_bridge_unknown_ipmasq_backend(world, ref19, plugin_dir, tmp_path):
    """Read by neither without ipMasq: accepted (ours warns); with ipMasq
    both fail ADD, ours before anything was made."""
    ctr = world.container("iopc")
    conf = {"cniVersion": "1.0.0", "name": "iopnet", "type": "bridge", "bridge": "iopbr0",
            "ipMasqBackend": "pf", "ipam": host_local(str(tmp_path / "ours"))}
    for path in ([plugin_dir], ref19):
        ok(world.run_plugin(path, "bridge", "ADD", conf, ctr))
        ok(world.run_plugin(path, "bridge", "DEL", conf, ctr))
    world.host.run("ip", "link", "del", "iopbr0")
    bad = world.run_plugin([plugin_dir], "bridge", "ADD", {**conf, "ipMasq": True}, ctr)
    assert bad.returncode == 1 and bad.json["code"] == 7 and "ipmasq backend" in bad.json["msg"]
    assert world.host.link("iopbr0") is None and ctr.link("eth0") is None
    assert [f for f in os.listdir(tmp_path / "ours" / "iopnet") if f.startswith("10.")] == []
    ref = world.run_plugin(ref19, "bridge", "ADD", {**conf, "ipMasq": True}, ctr)
    assert ref.returncode != 0 and "unknown ipmasq backend" in ref.stdout


def filter_rules(ns) -> list[str]:
    out = ns.run("iptables-save", "-t", "filter").stdout.decode()
    return sorted(l for l in out.splitlines() if l.startswith("-A "))


@pytest.mark.netns
def test_firewall_unknown_backend_falls_back_as_the_reference(world, ref19, plugin_dir):
    """Without firewalld, v1.9 takes iptables for a backend it does not
    know; ours too (iptables is installed), with the same rules."""
    ctr = world.container("iopc")
    prev = {"cniVersion": "1.0.0", "interfaces": [{"name": "iopbr0"},
                                                  {"name": "eth0", "sandbox": ctr.path}],
            "ips": [{"address": "10.97.0.5/24", "interface": 1}]}
    conf = {"cniVersion": "1.0.0", "name": "iopnet", "type": "firewall", "backend": "ebtables",
            "prevResult": prev}
    rules = {}
    for who, path in (("ours", [plugin_dir]), ("ref", ref19)):
        run = ok(world.run_plugin(path, "firewall", "ADD", conf, ctr))
        if who == "ours":
            assert 'unknown backend "ebtables"' in run.stderr
        rules[who] = filter_rules(world.host)
        assert any("10.97.0.5" in r for r in rules[who])
        ok(world.run_plugin(path, "firewall", "DEL", conf, ctr))
        assert not any("10.97.0.5" in r for r in filter_rules(world.host))
    assert rules["ours"] == rules["ref"]


@pytest.mark.netns
@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_portmap_host_ip_that_is_no_address(world, ref19, plugin_dir, backend):
    """IPv4 container: both skip that mapping and make the others' rules;
    an IPv6 container: ours refuses (code 7) before any rule."""
    ctr = world.container("iopc")
    maps = [{"hostPort": 18300, "containerPort": 80, "protocol": "tcp", "hostIP": "nope"},
            {"hostPort": 18301, "containerPort": 81, "protocol": "tcp"}]
    prev = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": ctr.path}],
            "ips": [{"address": "10.97.0.5/24", "interface": 0}]}
    conf = {"cniVersion": "1.0.0", "name": "iopnet", "type": "portmap", "backend": backend,
            "snat": False, "runtimeConfig": {"portMappings": maps}, "prevResult": prev}

    def state():
        if backend == "iptables":
            out = world.host.run("iptables-save", "-t", "nat").stdout.decode()
            return [l for l in out.splitlines() if "DNAT" in l and "--to-destination" in l]
        out = world.host.run("nft", "list", "ruleset").stdout.decode()
        return [l.strip() for l in out.splitlines() if "dnat to" in l]

    for who, path in (("ours", [plugin_dir]), ("ref", ref19)):
        run = ok(world.run_plugin(path, "portmap", "ADD", conf, ctr, container_id=f"iop{who}"))
        if who == "ours":
            assert 'hostIP "nope" is not an IP address' in run.stderr
        got = state()
        assert len(got) == 1 and "18301" in got[0], got
        ok(world.run_plugin(path, "portmap", "DEL", conf, ctr, container_id=f"iop{who}"))
        assert state() == []
    v6 = {**conf, "prevResult": {**prev, "ips": prev["ips"] + [
        {"address": "fd97::5/64", "interface": 0}]}}
    bad = world.run_plugin([plugin_dir], "portmap", "ADD", v6, ctr, container_id="iopours")
    assert bad.returncode == 1 and bad.json["code"] == 7 and "nope" in bad.json["msg"]
    assert state() == []


@pytest.mark.netns
def test_bridge_bad_mac_fails_add_only(world, ref19, plugin_dir, tmp_path):
    """A MAC the kernel can not set fails ADD in both (ours before any
    change); DEL of that config, as a runtime sends it after the failed
    ADD, succeeds in both."""
    ctr = world.container("iopc")
    conf = {"cniVersion": "1.0.0", "name": "iopnet", "type": "bridge", "bridge": "iopbr0",
            "runtimeConfig": {"mac": "01:00:5e:00:00:01"},
            "ipam": host_local(str(tmp_path / "s"))}
    bad = world.run_plugin([plugin_dir], "bridge", "ADD", conf, ctr)
    assert bad.returncode == 1 and bad.json["code"] == 7 and "multicast" in bad.json["msg"]
    assert world.host.link("iopbr0") is None
    ref = world.run_plugin(ref19, "bridge", "ADD", conf, ctr)
    assert ref.returncode != 0
    for path in ([plugin_dir], ref19):
        ok(world.run_plugin(path, "bridge", "DEL", conf, ctr))
    assert ctr.link("eth0") is None
