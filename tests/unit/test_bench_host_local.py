"""bench/bench_host_local.py: its in-process table (our host-local's ADD and
DEL run through skel.run in the bench's own process) runs to the end. It
used to fail with code 7: the in-process environment lacked the
PYCNI_STATE_DIRS that lets the bench's temporary store through. host-local
only writes files below the bench's temporary directory; no network."""

import os
import sys

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "bench")
sys.path.insert(0, BENCH)

import bench_host_local   # noqa: E402


def test_plugin_env_allows_the_work_directory(monkeypatch):
    monkeypatch.delenv("PYCNI_STATE_DIRS", raising=False)
    env = bench_host_local.plugin_env("ADD", "c1", "/opt/cni/bin", "/tmp/work")
    assert env["PYCNI_STATE_DIRS"] == "/tmp/work"
    assert env["CNI_COMMAND"] == "ADD" and env["CNI_CONTAINERID"] == "c1"
    assert env["CNI_PATH"] == "/opt/cni/bin"
    monkeypatch.setenv("PYCNI_STATE_DIRS", "/srv/a")
    env = bench_host_local.plugin_env("DEL", "c1", "/opt/cni/bin", "/tmp/work")
    assert env["PYCNI_STATE_DIRS"] == "/srv/a:/tmp/work"


def test_in_process_table_runs_without_state_dirs_set(tmp_path, monkeypatch):
    monkeypatch.delenv("PYCNI_STATE_DIRS", raising=False)
    got = bench_host_local.measure_in_process(10, 3, str(tmp_path))
    assert len(got["add"]) == 3 and len(got["del"]) == 3
    assert got["cold_add"] >= 0
    store = tmp_path / "data-inprocess" / bench_host_local.NETWORK
    # every ADD was undone: only the 10 prefilled allocations are left
    left = sorted(p.name for p in store.iterdir()
                  if p.name[0].isdigit() and not p.name.startswith("last_"))
    assert len(left) == 10
