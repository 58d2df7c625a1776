"""bench/: which references the benchmarks compare against (refs.py), the
multi-reference table of scale.py, and build-reference.sh's refusal
without a source. Nothing here runs a plugin or builds Go."""

import os
import subprocess
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "bench")
sys.path.insert(0, BENCH)

import refs    # noqa: E402
import scale   # noqa: E402


def plugin_dir(path, info=None):
    (path / "bin").mkdir(parents=True)
    loopback = path / "bin" / "loopback"
    loopback.write_text("#!/bin/sh\n")
    loopback.chmod(0o755)
    if info:
        (path / "BUILD-INFO").write_text(info)
    return str(path / "bin")


def test_parse_keeps_order_and_names(tmp_path):
    a = plugin_dir(tmp_path / "a", "source: containernetworking/plugins v1.9.1 commit x\n")
    b = plugin_dir(tmp_path / "b")
    got = refs.parse([f"ref-v1.9={a}", f"other={b}"])
    assert list(got.items()) == [("ref-v1.9", a), ("other", b)]
    assert refs.describe(a) == "containernetworking/plugins v1.9.1 commit x"
    assert refs.describe(b) == b
    assert refs.short("ref-v1.9") == "v1.9" and refs.short("other") == "other"


@pytest.mark.parametrize("spec", ["noequals", "=dir", "x=", "pycni=/usr/lib/cni"])
def test_parse_refuses_malformed(spec):
    with pytest.raises(SystemExit):
        refs.parse([spec])


def test_parse_refuses_duplicates_and_empty_dirs(tmp_path):
    a = plugin_dir(tmp_path / "a")
    with pytest.raises(SystemExit):
        refs.parse([f"x={a}", f"x={a}"])
    with pytest.raises(SystemExit, match="build-reference.sh"):
        refs.parse([f"y={tmp_path}"])


def test_defaults_add_v19_only_when_built(tmp_path, monkeypatch):
    monkeypatch.setattr(refs, "DEBIAN_DIR", plugin_dir(tmp_path / "deb"))
    monkeypatch.setattr(refs, "V19_DIR", str(tmp_path / "missing" / "bin"))
    assert [s.split("=")[0] for s in refs.default_refs()] == ["ref-v1.1"]
    monkeypatch.setattr(refs, "V19_DIR", plugin_dir(tmp_path / "v19"))
    assert [s.split("=")[0] for s in refs.default_refs()] == ["ref-v1.1", "ref-v1.9"]


def test_rows_table_has_a_ratio_per_reference(monkeypatch):
    monkeypatch.setattr(scale, "REFS", ["ref-v1.1", "ref-v1.9"])
    store = {}
    for impl, wall in (("pycni", 30.0), ("ref-v1.1", 10.0), ("ref-v1.9", 20.0)):
        scale.record(store, "loopback VERSION", impl, scale.Run(0, b"", b"", wall, wall, 4.0))
    scale.record(store, "tap VERSION", "pycni", scale.Run(0, b"", b"", 5.0, 5.0, 4.0))
    text = scale.rows_table("t", list(store.items()))
    lines = text.splitlines()
    assert "| pycni ms | v1.1 ms | × v1.1 | v1.9 ms | × v1.9 |" in lines[2]
    assert lines[4].startswith("| loopback VERSION | 30.0 | 10.0 | 3.00 | 20.0 | 1.50 |")
    # a reference without the plugin: "-", not nan
    assert lines[5].startswith("| tap VERSION | 5.0 | - | - | - | - |")


def test_alternate_rotates_every_implementation_through_every_place():
    names = ["pycni", "ref-v1.1", "ref-v1.9"]
    orders = [refs.alternate(i, names) for i in range(3)]
    for k in range(3):
        assert sorted(order[k] for order in orders) == sorted(names)
    assert refs.alternate(1, ["a", "b"]) == ["b", "a"]


def test_build_reference_without_source_says_how_to_get_it():
    env = {k: v for k, v in os.environ.items() if k != "PYCNI_REF_SOURCE"}
    proc = subprocess.run(["bash", os.path.join(BENCH, "build-reference.sh")],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2
    assert "no source given" in proc.stderr and "git clone --mirror" in proc.stderr
