"""ipmasq setup/teardown begun and finished (#12): the iptables one-batch
exec runs (spawn.start) while bridge does its netlink work; `finish()`
waits for it and runs the save-based path for a refused batch, exactly
as the synchronous setup/teardown do; on every other path `reap()` waits
for it, and `undo_setup` removes what a started setup left.

The restore tools are shell scripts on PATH (real children, so reaping is
real); the save-based fallback's read and restore are replaced, as in
test_fwtools_backends.
"""

import os

import pytest

from pycni import fwtools, ipmasq
from pycni.errors import CNIError
from pycni.ipmasq import iptables, nftables

V4, V6 = "10.1.2.3/24", "fd00::3/64"
RESTORE = """#!/bin/sh
d=$(dirname "$0")
tool=$(basename "$0")
[ -p "$d/hold-$tool" ] && /usr/bin/timeout 20 sh -c "read x < '$d/hold-$tool'"
{ echo "== $tool $*"; cat; } >> "$d/log"
if [ -e "$d/refuse-$tool" ]; then echo "$tool: refused" >&2; exit 1; fi
"""


@pytest.fixture
def tools(tmp_path, monkeypatch):
    """Fake iptables tools; the fallback's save and restore recorded (run
    once, without the namespace lock)."""
    d = tmp_path / "bin"
    d.mkdir()
    for name in ("iptables-restore", "ip6tables-restore", "iptables-save", "ip6tables-save"):
        (d / name).write_text(RESTORE)
        (d / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(d))
    monkeypatch.setattr(fwtools, "FALLBACK_DIRS", ())
    monkeypatch.setattr(nftables, "available", lambda: False)
    monkeypatch.setattr(iptables, "retrying", lambda step: step())    # no lock, one attempt
    fallback = []

    def save_nat(family):
        fallback.append(("save", family))
        return iptables.parse_saved("*nat\nCOMMIT\n")

    def restore(family, script):
        fallback.append(("restore", family))
    monkeypatch.setattr(iptables, "save_nat", save_nat)
    monkeypatch.setattr(iptables, "restore", restore)
    return d, fallback


def log(d) -> list[str]:
    path = d / "log"
    return [l for l in path.read_text().splitlines() if l.startswith("== ")] if path.exists() else []


def batches_running(started) -> list:
    return [c for c in started.batches._children.values() if c is not None and not c.done]


def test_start_setup_returns_while_the_batch_runs(tools):
    d, fallback = tools
    os.mkfifo(d / "hold-iptables-restore")
    started = ipmasq.start_setup("iptables", [V4], "net", "eth0", "cid")
    assert len(batches_running(started)) == 1      # still waiting for the fifo
    with open(d / "hold-iptables-restore", "w") as f:
        f.write("go\n")
    started.finish()
    assert log(d) == ["== iptables-restore --noflush -w"]
    assert f"-N {ipmasq.chain_name('net', 'cid')}" in (d / "log").read_text()
    assert fallback == [] and batches_running(started) == []


def test_finish_falls_back_when_the_batch_is_refused(tools):
    d, fallback = tools
    (d / "refuse-iptables-restore").touch()
    started = ipmasq.start_setup("iptables", [V4, V6], "net", "eth0", "cid")
    started.finish()
    assert sorted(log(d)) == ["== ip6tables-restore --noflush -w",
                              "== iptables-restore --noflush -w"]
    assert fallback == [("save", 4), ("restore", 4)]       # v6 was accepted


def test_sync_setup_is_start_plus_finish_one_family_at_a_time(tools, monkeypatch):
    d, fallback = tools
    started = []
    real = iptables._Batches.start
    monkeypatch.setattr(iptables._Batches, "start", lambda self: started.append(self) or real(self))
    iptables.setup([V4, V6], "net", "eth0", "cid")
    iptables.teardown([V4, V6], "net", "eth0", "cid")
    assert started == []          # nothing spawned early: the old sequence
    assert log(d) == ["== iptables-restore --noflush -w", "== ip6tables-restore --noflush -w"] * 2


def test_reap_without_finish_waits_and_tells_what_applied(tools):
    d, _ = tools
    started = ipmasq.start_setup("iptables", [V4], "net", "eth0", "cid")
    assert started.reap() is True and batches_running(started) == []
    (d / "refuse-iptables-restore").touch()
    refused = ipmasq.start_setup("iptables", [V4], "net", "eth0", "cid")
    assert refused.reap() is False


def test_undo_setup_removes_only_what_applied(tools, monkeypatch):
    d, _ = tools
    removed = []
    monkeypatch.setattr(ipmasq, "teardown", lambda *args: removed.append(args))
    ipmasq.undo_setup(ipmasq.start_setup("iptables", [V4], "net", "eth0", "cid"),
                      [V4], "net", "eth0", "cid")
    assert removed == [([V4], "net", "eth0", "cid")]
    (d / "refuse-iptables-restore").touch()
    ipmasq.undo_setup(ipmasq.start_setup("iptables", [V4], "net", "eth0", "other"),
                      [V4], "net", "eth0", "other")
    assert len(removed) == 1      # refused: nothing of it exists


def test_undo_after_a_failed_fallback_still_removes_the_family_that_applied(tools, monkeypatch):
    """v6's batch applied, v4's was refused and its save-based path failed:
    finish raises as setup does, and the undo takes the v6 rules away."""
    d, _ = tools
    (d / "refuse-iptables-restore").touch()
    monkeypatch.setattr(iptables, "save_nat", lambda family: (_ for _ in ()).throw(
        fwtools.ToolError("iptables-save", 1, "broken")))
    removed = []
    monkeypatch.setattr(ipmasq, "teardown", lambda *args: removed.append(args))
    started = ipmasq.start_setup("iptables", [V4, V6], "net", "eth0", "cid")
    with pytest.raises(CNIError, match="iptables-save failed"):
        started.finish()
    ipmasq.undo_setup(started, [V4, V6], "net", "eth0", "cid")
    assert removed == [([V4, V6], "net", "eth0", "cid")]


def test_a_missing_tool_is_reported_by_finish_as_before(tools):
    d, _ = tools
    (d / "iptables-restore").unlink()
    started = ipmasq.start_setup("iptables", [V4], "net", "eth0", "cid")   # no error yet
    with pytest.raises(CNIError, match="iptables-restore not found"):
        started.finish()
    assert started.reap() is False


def test_start_teardown_runs_the_exact_batch_and_falls_back(tools):
    d, fallback = tools
    started = ipmasq.start_teardown([V4], "net", "eth0", "cid")
    started.finish()
    assert log(d) == ["== iptables-restore --noflush -w"] and fallback == []
    assert f"-X {ipmasq.chain_name('net', 'cid')}" in (d / "log").read_text()
    (d / "refuse-iptables-restore").touch()
    started = ipmasq.start_teardown([V4], "net", "eth0", "cid")
    started.finish()
    assert fallback == [("save", 4)]     # nothing of the chain left: no restore


def test_teardown_without_addresses_starts_nothing_and_reads_both_families(tools):
    d, fallback = tools
    started = ipmasq.start_teardown([], "net", "eth0", "cid")
    assert batches_running(started._started[iptables]) == []
    started.finish()
    assert log(d) == [] and fallback == [("save", 4), ("save", 6)]


def test_teardown_errors_are_strict_for_the_families_of_the_addresses(tools, monkeypatch):
    d, _ = tools
    (d / "refuse-iptables-restore").touch()
    monkeypatch.setattr(iptables, "save_nat", lambda family: (_ for _ in ()).throw(
        fwtools.ToolError("iptables-save", 1, "broken")))
    started = ipmasq.start_teardown([V4], "net", "eth0", "cid")
    with pytest.raises(CNIError) as err:
        started.finish()
    with pytest.raises(CNIError) as sync_err:
        ipmasq.teardown([V4], "net", "eth0", "cid")
    assert (err.value.code, err.value.msg, err.value.details) == \
        (sync_err.value.code, sync_err.value.msg, sync_err.value.details)
    assert err.value.msg == ("failed to tear down IP masquerading: "
                             "iptables-save failed (exit 1); broken")
    ipmasq.start_teardown([], "net", "eth0", "cid").finish()    # lenient: no addresses


def test_nftables_work_is_done_in_finish(tools, monkeypatch):
    """nftables has nothing to start early: setup and teardown run at
    finish(), where the synchronous calls ran them."""
    d, _ = tools
    calls = []
    monkeypatch.setattr(nftables, "available", lambda: True)
    monkeypatch.setattr(nftables, "setup", lambda *a: calls.append(("setup", a)))
    monkeypatch.setattr(nftables, "teardown", lambda *a: calls.append(("teardown", a)))
    started = ipmasq.start_setup("nftables", [V4], "net", "eth0", "cid")
    assert calls == [] and started.reap() is False
    started.finish()
    assert calls == [("setup", ([V4], "net", "eth0", "cid"))] and started.reap() is True
    torn = ipmasq.start_teardown([V4], "net", "eth0", "cid")
    assert calls[1:] == []
    torn.finish()
    assert calls[1:] == [("teardown", ([V4], "net", "eth0", "cid"))]
    assert log(d) == ["== iptables-restore --noflush -w"]   # the iptables half as well


def test_both_backends_offer_start_setup_and_start_teardown():
    import inspect
    for module in (iptables, nftables):
        for name in ("start_setup", "start_teardown"):
            params = list(inspect.signature(getattr(module, name)).parameters)
            assert params == ["ips", "network", "ifname", "container_id"], (module, name)
