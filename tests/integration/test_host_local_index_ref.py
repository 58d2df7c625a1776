"""Our host-local and the reference Go host-local (/usr/lib/cni) taking
turns on one store: our index catches up with the reference's writes
from its round-robin cursors (store.py docstring), and every answer stays
what the files say: no duplicate address, DEL releases exactly the
container's files, CHECK and the duplicate rule see the reference's
allocations, also for the same container ID and for a name the reference
handed out again."""

import os
import random

import pytest

pytestmark = pytest.mark.netns

NETWORK = "hlidx"


@pytest.fixture
def setup(world, plugin_dir, ref_dir, tmp_path):
    ctr = world.container()

    class Setup:
        data_dir = tmp_path / "data"
        net_dir = tmp_path / "data" / NETWORK

        @staticmethod
        def conf(subnet="10.78.0.0/24"):
            return {"cniVersion": "1.0.0", "name": NETWORK, "type": "bridge",
                    "ipam": {"type": "host-local", "dataDir": str(tmp_path / "data"),
                             "subnet": subnet}}

        @staticmethod
        def run(command, conf, cid, impl="ours", ifname="eth0"):
            cni_path = plugin_dir if impl == "ours" else ref_dir
            return world.run_plugin(cni_path, "host-local", command, conf, ctr,
                                    container_id=cid, ifname=ifname)

        @classmethod
        def allocations(cls):
            if not cls.net_dir.exists():
                return {}
            return {n: (cls.net_dir / n).read_bytes().decode() for n in os.listdir(cls.net_dir)
                    if n != "lock" and not n.startswith("last_reserved_ip.")}

    return Setup


def address(run):
    assert run.ok, run.stdout + run.stderr
    return run.json["ips"][0]["address"].split("/")[0]


def owner(cid):
    return f"{cid}\r\neth0"


def test_reference_add_and_del_between_our_calls(setup):
    conf = setup.conf()
    assert address(setup.run("ADD", conf, "a")) == "10.78.0.2"
    assert address(setup.run("ADD", conf, "b", impl="reference")) == "10.78.0.3"
    assert setup.run("DEL", conf, "b", impl="reference").ok
    assert address(setup.run("ADD", conf, "c", impl="reference")) == "10.78.0.4"
    # ours sees c's address: CHECK passes, a second ADD is a duplicate
    assert setup.run("CHECK", conf, "c").ok
    dup = setup.run("ADD", conf, "c")
    assert not dup.ok and dup.json["msg"] == \
        "failed to allocate for range 0: 10.78.0.4 has been allocated to c, " \
        "duplicate allocation is not allowed"
    assert not setup.run("CHECK", conf, "b").ok
    assert setup.run("DEL", conf, "b").ok
    assert address(setup.run("ADD", conf, "d")) == "10.78.0.5"
    assert setup.allocations() == {"10.78.0.2": owner("a"), "10.78.0.4": owner("c"),
                                   "10.78.0.5": owner("d")}
    assert setup.run("DEL", conf, "c").ok
    assert setup.allocations() == {"10.78.0.2": owner("a"), "10.78.0.5": owner("d")}
    assert not setup.run("CHECK", conf, "c", impl="reference").ok


@pytest.mark.parametrize("first", ["reference", "ours"])
def test_same_container_id_by_both(setup, first):
    conf = setup.conf()
    second = "ours" if first == "reference" else "reference"
    assert address(setup.run("ADD", conf, "x", impl=first)) == "10.78.0.2"
    dup = setup.run("ADD", conf, "x", impl=second)
    assert not dup.ok and "duplicate allocation is not allowed" in dup.json["msg"]
    assert setup.run("CHECK", conf, "x", impl=second).ok
    # the other container after it gets the next address from either
    assert address(setup.run("ADD", conf, "y", impl=second)) == "10.78.0.3"
    assert setup.run("DEL", conf, "x", impl=second).ok
    assert setup.allocations() == {"10.78.0.3": owner("y")}
    assert not setup.run("CHECK", conf, "x", impl=first).ok
    assert not setup.run("CHECK", conf, "x", impl=second).ok
    # and x may come back through the first one
    assert address(setup.run("ADD", conf, "x", impl=first)) == "10.78.0.4"
    assert setup.run("CHECK", conf, "x", impl=second).ok


def test_reference_hands_out_a_released_name_again(setup):
    """Our index gave 10.78.0.3 to b; the reference releases b and, going
    round the full range, reserves 10.78.0.3 again for x."""
    conf = setup.conf("10.78.0.0/29")        # .2-.6
    for cid, ip in zip("abcde", range(2, 7)):
        assert address(setup.run("ADD", conf, cid)) == f"10.78.0.{ip}"
    assert setup.run("DEL", conf, "b", impl="reference").ok
    assert address(setup.run("ADD", conf, "x", impl="reference")) == "10.78.0.3"
    dup = setup.run("ADD", conf, "x")
    assert not dup.ok and "10.78.0.3 has been allocated to x" in dup.json["msg"]
    assert setup.run("CHECK", conf, "x").ok
    assert not setup.run("CHECK", conf, "b").ok
    assert setup.run("DEL", conf, "b").ok                    # not b's any more
    assert setup.allocations()["10.78.0.3"] == owner("x")
    full = setup.run("ADD", conf, "f")
    assert not full.ok and "no IP addresses available" in full.json["msg"]
    assert setup.run("DEL", conf, "x").ok
    assert "10.78.0.3" not in setup.allocations()
    assert address(setup.run("ADD", conf, "f")) == "10.78.0.3"


def test_admin_rm_between_our_calls(setup):
    conf = setup.conf()
    assert address(setup.run("ADD", conf, "a")) == "10.78.0.2"
    assert address(setup.run("ADD", conf, "b")) == "10.78.0.3"
    (setup.net_dir / "10.78.0.2").unlink()
    assert not setup.run("CHECK", conf, "a").ok
    assert setup.run("DEL", conf, "a").ok
    assert setup.allocations() == {"10.78.0.3": owner("b")}
    # no stale duplicate: a gets a new address
    assert address(setup.run("ADD", conf, "a")) == "10.78.0.4"
    assert setup.run("CHECK", conf, "b").ok
    assert setup.run("DEL", conf, "b").ok
    assert setup.allocations() == {"10.78.0.4": owner("a")}


def test_file_rewritten_in_place(setup):
    """Changes no time of the directory: the read back before each decision
    catches it, the index is rebuilt from the files."""
    conf = setup.conf()
    assert address(setup.run("ADD", conf, "a")) == "10.78.0.2"
    assert address(setup.run("ADD", conf, "c")) == "10.78.0.3"
    with open(setup.net_dir / "10.78.0.2", "r+b") as f:
        f.truncate(0)
        f.write(owner("b").encode())
    assert not setup.run("CHECK", conf, "a").ok
    assert address(setup.run("ADD", conf, "a")) == "10.78.0.4"     # no duplicate
    assert setup.run("CHECK", conf, "b").ok
    assert setup.run("DEL", conf, "a").ok
    assert setup.allocations() == {"10.78.0.2": owner("b"), "10.78.0.3": owner("c")}
    assert setup.run("DEL", conf, "b").ok
    assert setup.allocations() == {"10.78.0.3": owner("c")}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_turns_answer_what_the_files_say(setup, seed):
    """Random ADD, CHECK, DEL of a few containers by either implementation,
    and an admin's rm, on a small range that wraps often (names handed out
    again): each answer of each is what the files before it imply."""
    rng = random.Random(seed)
    conf = setup.conf("10.78.0.0/28")        # .2-.14: 13 addresses
    cids = [f"r{i}" for i in range(16)]
    for step in range(70):
        before = setup.allocations()
        held = {c: sorted(n for n, o in before.items() if o == owner(c)) for c in cids}
        impl = rng.choice(["ours", "reference"])
        cid = rng.choice(cids)
        op = rng.choice(["ADD", "ADD", "DEL", "CHECK", "rm"])
        what = f"step {step}: {impl} {op} {cid}, before {before}"
        if op == "rm":
            if before:
                os.unlink(setup.net_dir / rng.choice(sorted(before)))
            continue
        run = setup.run(op, conf, cid, impl=impl)
        after = setup.allocations()
        if op == "ADD":
            if held[cid]:
                assert not run.ok and "duplicate allocation" in run.json["msg"], what
                assert after == before, what
            elif len(before) == 13:
                assert not run.ok and "no IP addresses available" in run.json["msg"], what
                assert after == before, what
            else:
                ip = address(run)
                assert ip not in before, what
                assert after == {**before, ip: owner(cid)}, what
        elif op == "DEL":
            assert run.ok, what + run.stdout
            assert after == {n: o for n, o in before.items() if o != owner(cid)}, what
        else:
            assert run.ok == bool(held[cid]), what + run.stdout
            assert after == before, what
