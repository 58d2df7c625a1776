"""pycni install-cni (lib/installcni.py) on a fake bundle in temporary
directories: what it copies, what it leaves alone, what it refuses, and
that nothing planted in the host directories is followed."""

import io
import json
import os
import stat

import pytest

from pycni import installcni as ic

VERSION_OK = "#!/bin/sh\necho '{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"1.0.0\",\"1.1.0\"]}'\n"
TEMPLATE = json.dumps({
    "cniVersion": "1.0.0", "name": "k8s-pod-network",
    "plugins": [{"type": "bridge", "ipam": {"type": "host-local",
                                            "ranges": [[{"subnet": "__POD_CIDR__"}]]}},
                {"type": "portmap", "node": "__NODE_NAME__"}]})


def make_bundle(path, body=VERSION_OK, extra=""):
    """A bundle like ./build.sh's: executables plus a hidden support tree."""
    os.makedirs(os.path.join(path, ".pycni", "lib"), exist_ok=True)
    for name in ("bridge", "host-local", "portmap"):
        with open(os.path.join(path, name), "w") as f:
            f.write(body)
        os.chmod(os.path.join(path, name), 0o755)
    with open(os.path.join(path, ".pycni", "lib", "mod.pyc"), "w") as f:
        f.write("module" + extra)
    os.symlink("lib/mod.pyc", os.path.join(path, ".pycni", "link"))
    return str(path)


@pytest.fixture
def dirs(tmp_path):
    src = make_bundle(tmp_path / "bundle")
    template = tmp_path / "template"
    template.write_text(TEMPLATE)
    host = tmp_path / "host"
    return {"src": src, "bin": str(host / "opt/cni/bin"), "net": str(host / "etc/cni/net.d"),
            "template": str(template), "tmp": tmp_path}


def run(dirs, *flags, env=None, src=None):
    argv = ["--source", src or dirs["src"], "--bin-dir", dirs["bin"], "--net-dir", dirs["net"],
            "--template", dirs["template"], *flags]
    out = io.StringIO()
    try:
        code = ic.install_cni(ic.options_from(argv, env or {}), out=out)
    except ic.InstallError as err:
        return 1, out.getvalue() + f"ERROR {err}"
    return code, out.getvalue()


def tree(path):
    """Every entry below `path` (lstat'ed), for before/after comparisons."""
    found = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(root, name)
            st = os.lstat(full)
            data = os.readlink(full) if stat.S_ISLNK(st.st_mode) else (
                open(full, "rb").read() if stat.S_ISREG(st.st_mode) else None)
            found[os.path.relpath(full, path)] = (stat.S_IFMT(st.st_mode), st.st_ino, data)
    return found


# --- templates and values -------------------------------------------------

def test_template_placeholders_are_filled():
    out = ic.render_template(TEMPLATE, {"__POD_CIDR__": "10.244.1.0/24",
                                        "__NODE_NAME__": "node-1"})
    doc = json.loads(out)
    assert doc["plugins"][0]["ipam"]["ranges"] == [[{"subnet": "10.244.1.0/24"}]]
    assert doc["plugins"][1]["node"] == "node-1"


def test_template_without_a_pod_cidr_is_none_and_other_missing_values_are_refused():
    assert ic.render_template(TEMPLATE, {"__NODE_NAME__": "n"}) is None
    with pytest.raises(ic.InstallError, match="needs __NODE_NAME__: give --node-name or set "
                                               "KUBERNETES_NODE_NAME"):
        ic.render_template(TEMPLATE, {"__POD_CIDR__": "10.244.1.0/24"})


def test_unknown_placeholders_and_non_conflists_are_refused():
    with pytest.raises(ic.InstallError, match="unknown placeholder.*__MTU__"):
        ic.render_template('{"mtu": "__MTU__"}', {})
    for text, why in (("[1]", "not a JSON object"), ("{", "not JSON"),
                      ('{"cniVersion": "1.0.0", "plugins": [{"type": "x"}]}', "no name"),
                      ('{"name": "n", "plugins": [{"type": "x"}]}', "no cniVersion"),
                      ('{"name": "n", "cniVersion": "1.0.0", "plugins": []}', "no plugins"),
                      ('{"name": "n", "cniVersion": "1.0.0", "plugins": [{}]}', "needs a type")):
        with pytest.raises(ic.InstallError, match=why):
            ic.render_template(text, {})


def test_values_are_json_escaped_and_checked():
    # A value cannot break out of its JSON string: a node name is checked,
    # and even so it is inserted escaped.
    with pytest.raises(ic.InstallError, match="not a Kubernetes node name"):
        ic.check_values({"__NODE_NAME__": 'n", "type": "evil'})
    with pytest.raises(ic.InstallError, match="not a network"):
        ic.check_values({"__POD_CIDR__": "10.244.1.0/33"})
    with pytest.raises(ic.InstallError, match="host bits set"):
        ic.check_values({"__POD_CIDR__": "10.244.1.7/24"})
    with pytest.raises(ic.InstallError, match=r"not in canonical form \(fd00:10:244:1::/64\)"):
        ic.check_values({"__POD_CIDR__": "fd00:10:244:1:0::/64"})
    ic.check_values({"__POD_CIDR__": "fd00:10:244:1::/64", "__NODE_NAME__": "a.b-c"})
    out = ic.render_template('{"name": "__NODE_NAME__", "cniVersion": "1.0.0", '
                             '"plugins": [{"type": "x"}]}', {"__NODE_NAME__": 'a"b\\'})
    assert json.loads(out)["name"] == 'a"b\\'


@pytest.mark.parametrize("name", ["", "../x.conflist", "a/b.conflist", ".hidden.conflist",
                                  "10-pycni.txt", "bad\n.conflist"])
def test_config_names_are_plain_file_names(name):
    with pytest.raises(ic.InstallError, match="plain file name"):
        ic.check_conf_name(name)


def test_flags_win_over_the_environment_and_booleans_are_strict():
    opts = ic.options_from(["--bin-dir", "/a"], {"PYCNI_BIN_DIR": "/b", "PYCNI_NET_DIR": "/n",
                                                 "PYCNI_FORCE": "true",
                                                 "PYCNI_SKIP_BINARIES": "tuning, bridge"})
    assert (opts.bin_dir, opts.net_dir, opts.force) == ("/a", "/n", True)
    assert opts.skip_binaries == {"tuning", "bridge"}
    defaults = ic.options_from([], {})
    assert (defaults.bin_dir, defaults.net_dir, defaults.conf_name) == \
        ("/host/opt/cni/bin", "/host/etc/cni/net.d", "10-pycni.conflist")
    with pytest.raises(ic.InstallError, match="PYCNI_FORCE='maybe': expected true or false"):
        ic.options_from([], {"PYCNI_FORCE": "maybe"})


# --- installing -------------------------------------------------------------

def test_install_then_nothing_changes_on_the_second_run(dirs):
    code, out = run(dirs, "--pod-cidr", "10.244.1.0/24", "--node-name", "node-1")
    assert code == 0, out
    names = sorted(os.listdir(dirs["bin"]))
    digest = [n for n in names if n.startswith(".pycni.")]
    assert len(digest) == 1
    assert names == sorted([".pycni", digest[0], ic.MANIFEST, "bridge", "host-local", "portmap"])
    assert os.readlink(os.path.join(dirs["bin"], ".pycni")) == digest[0]
    for name in ("bridge", "host-local", "portmap"):
        path = os.path.join(dirs["bin"], name)
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o755
        assert open(path).read() == VERSION_OK
        assert f"checked {name}: answers VERSION (1.0.0, 1.1.0)" in out
    assert os.readlink(os.path.join(dirs["bin"], ".pycni", "link")) == "lib/mod.pyc"
    conf = os.path.join(dirs["net"], "10-pycni.conflist")
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o644
    assert json.load(open(conf))["plugins"][1]["node"] == "node-1"
    assert f"wrote {conf}" in out
    manifest = json.load(open(os.path.join(dirs["bin"], ic.MANIFEST)))
    assert sorted(manifest["files"]) == ["bridge", "host-local", "portmap"]

    before = tree(dirs["tmp"] / "host")
    code, out = run(dirs, "--pod-cidr", "10.244.1.0/24", "--node-name", "node-1")
    assert code == 0, out
    assert tree(dirs["tmp"] / "host") == before, "a second run changed something"
    assert "installed" not in out and "wrote" not in out
    assert f"unchanged {conf}" in out and "unchanged" in out


def test_an_upgrade_keeps_the_previous_support_tree_and_removes_older_ones(dirs, tmp_path):
    assert run(dirs, "--no-config")[0] == 0
    first = os.readlink(os.path.join(dirs["bin"], ".pycni"))
    v2 = make_bundle(tmp_path / "v2", body=VERSION_OK + "# v2\n", extra="2")
    code, out = run(dirs, "--no-config", src=v2)
    assert code == 0, out
    second = os.readlink(os.path.join(dirs["bin"], ".pycni"))
    assert second != first and os.path.isdir(os.path.join(dirs["bin"], first))
    assert open(os.path.join(dirs["bin"], "bridge")).read().endswith("# v2\n")
    assert f"installed {dirs['bin']}/bridge" in out
    v3 = make_bundle(tmp_path / "v3", body=VERSION_OK + "# v3\n", extra="3")
    code, out = run(dirs, "--no-config", src=v3)
    assert code == 0, out
    trees = sorted(n for n in os.listdir(dirs["bin"]) if n.startswith(".pycni."))
    assert first not in trees and second in trees and len(trees) == 2
    assert f"removed {dirs['bin']}/{first}" in out
    assert not [n for n in os.listdir(dirs["bin"]) if n.startswith(ic.TMP_MARK)]


def test_a_copied_bundle_directory_becomes_the_symlinked_layout(dirs):
    """A node installed with `cp -a dist/cni-bin/. /opt/cni/bin/` has a real
    .pycni directory: swapped for the symlink, kept for one more run."""
    import shutil
    shutil.copytree(dirs["src"], dirs["bin"], symlinks=True)
    with open(os.path.join(dirs["bin"], "bridge"), "a") as f:
        f.write("# older\n")
    code, out = run(dirs, "--no-config", "--force")
    assert code == 0, out
    assert os.path.islink(os.path.join(dirs["bin"], ".pycni"))
    kept = [n for n in os.listdir(dirs["bin"]) if ic.SUPPORT_NAME.fullmatch(n)]
    assert len(kept) == 2


def test_a_foreign_executable_stops_the_run_before_anything_changes(dirs):
    os.makedirs(dirs["bin"])
    reference = os.path.join(dirs["bin"], "bridge")
    with open(reference, "w") as f:
        f.write("#!/bin/sh\necho reference bridge\n")
    os.chmod(reference, 0o755)
    before = tree(dirs["bin"])
    code, out = run(dirs, "--pod-cidr", "10.244.1.0/24", "--node-name", "n")
    assert code == 1
    assert "bridge in " in out and "is not pycni's" in out and "--force" in out
    assert tree(dirs["bin"]) == before
    assert not os.path.exists(dirs["net"])
    code, out = run(dirs, "--no-config", "--skip-binaries", "bridge,brigde")
    assert code == 0, out
    assert "warning: --skip-binaries names brigde, not in the bundle" in out
    assert open(reference).read() == "#!/bin/sh\necho reference bridge\n"
    assert f"skipped {reference} (--skip-binaries)" in out
    code, out = run(dirs, "--no-config", "--force")
    assert code == 0, out
    assert open(reference).read() == VERSION_OK


def test_skip_existing_binaries_and_config(dirs):
    os.makedirs(dirs["bin"])
    os.makedirs(dirs["net"])
    mine = os.path.join(dirs["bin"], "portmap")
    with open(mine, "w") as f:
        f.write("#!/bin/sh\necho mine\n")
    conf = os.path.join(dirs["net"], "10-pycni.conflist")
    with open(conf, "w") as f:
        f.write("edited by the operator")
    code, out = run(dirs, "--pod-cidr", "10.244.1.0/24", "--node-name", "n",
                    "--skip-existing-binaries", "--skip-existing-config")
    assert code == 0, out
    assert open(mine).read() == "#!/bin/sh\necho mine\n"
    assert open(conf).read() == "edited by the operator"
    assert f"skipped {mine} (exists; --skip-existing-binaries)" in out
    assert f"skipped {conf} (exists; --skip-existing-config)" in out


def test_planted_symlinks_are_replaced_never_followed(dirs, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim"
    victim.write_text("precious")
    os.makedirs(dirs["bin"])
    os.makedirs(dirs["net"])
    os.symlink(str(victim), os.path.join(dirs["net"], "10-pycni.conflist"))
    os.symlink(str(victim), os.path.join(dirs["bin"], "bridge"))
    os.symlink(str(outside), os.path.join(dirs["bin"], ".pycni"))
    # A planted directory under the name the support tree will have.
    digest = ic.tree_digest(ic.read_tree(os.path.join(dirs["src"], ".pycni")))
    os.symlink(str(outside), os.path.join(dirs["bin"], f".pycni.{digest}"))
    code, out = run(dirs, "--pod-cidr", "10.244.1.0/24", "--node-name", "n")
    assert code == 1 and "bridge in" in out          # a symlink is not ours
    code, out = run(dirs, "--pod-cidr", "10.244.1.0/24", "--node-name", "n", "--force")
    assert code == 0, out
    assert victim.read_text() == "precious" and sorted(os.listdir(outside)) == ["victim"]
    for path in (os.path.join(dirs["net"], "10-pycni.conflist"),
                 os.path.join(dirs["bin"], "bridge"), os.path.join(dirs["bin"], f".pycni.{digest}")):
        assert not os.path.islink(path)
    assert os.readlink(os.path.join(dirs["bin"], ".pycni")) == f".pycni.{digest}"


def test_a_symlink_on_the_way_to_a_host_directory_is_refused(dirs, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    os.makedirs(os.path.dirname(dirs["bin"]))
    os.symlink(str(real), dirs["bin"])
    code, out = run(dirs, "--no-config")
    assert code == 1
    assert f"{dirs['bin']} is a symbolic link: refusing to go through it" in out
    assert os.listdir(real) == []


def test_a_plugin_that_does_not_answer_version_fails_the_run_and_writes_no_config(dirs, tmp_path):
    broken = make_bundle(tmp_path / "broken", body="#!/bin/sh\necho oops >&2\nexit 3\n")
    code, out = run(dirs, "--pod-cidr", "10.244.1.0/24", "--node-name", "n", src=broken)
    assert code == 1
    assert "does not answer VERSION (exit 3): oops" in out
    assert not os.path.exists(os.path.join(dirs["net"], "10-pycni.conflist"))


def test_without_a_pod_cidr_the_run_fails_unless_told_to_skip_the_config(dirs):
    code, out = run(dirs, "--node-name", "n")
    assert code == 1 and "needs __POD_CIDR__" in out
    assert not os.path.exists(dirs["bin"]), "refused before anything changed"
    code, out = run(dirs, "--node-name", "n", "--skip-config-without-pod-cidr")
    assert code == 0, out
    assert "no conflist written" in out
    assert os.path.exists(os.path.join(dirs["bin"], "bridge"))
    assert not os.path.exists(os.path.join(dirs["net"], "10-pycni.conflist"))


def test_warnings_name_missing_plugins_and_configs_that_sort_first(dirs):
    os.makedirs(dirs["net"])
    open(os.path.join(dirs["net"], "05-other.conflist"), "w").close()
    code, out = run(dirs, "--pod-cidr", "10.244.1.0/24", "--node-name", "n",
                    "--skip-binaries", "portmap")
    assert code == 0, out
    assert "warning: the conflist runs portmap, not in" in out
    assert "05-other.conflist sorts before 10-pycni.conflist" in out


def test_main_reports_errors_on_stderr(dirs, capsys):
    code = ic.main(["--source", str(dirs["tmp"] / "nowhere"), "--bin-dir", dirs["bin"],
                    "--no-config"], env={})
    assert code == 1
    assert "pycni install-cni: cannot read the bundle" in capsys.readouterr().err


def test_image_entry_point_commands(capsys):
    assert ic.image_main(["version"]) == 0
    assert capsys.readouterr().out.startswith("pycni ")
    assert ic.image_main(["bogus"]) == 2
    assert "unknown command 'bogus'" in capsys.readouterr().err


def test_pycni_cli_hands_install_cni_its_arguments(dirs, capsys):
    from pycni import cli
    with pytest.raises(SystemExit) as exit_:
        cli.main(["install-cni", "--help"])
    assert exit_.value.code == 0
    assert "--skip-existing-config" in capsys.readouterr().out
    code = cli.main(["install-cni", "--source", dirs["src"], "--bin-dir", dirs["bin"],
                     "--no-config", "--no-check"])
    assert code == 0
    assert f"installed {dirs['bin']}/bridge" in capsys.readouterr().out


def test_without_renameat2_a_copied_bundle_directory_is_still_replaced(dirs, monkeypatch):
    """A static bundle's interpreter has no ctypes: the swap falls back to
    two renames (a moment without .pycni), with the same result."""
    import shutil
    monkeypatch.setattr(ic, "exchange_at", lambda *a: False)
    shutil.copytree(dirs["src"], dirs["bin"], symlinks=True)
    code, out = run(dirs, "--no-config")
    assert code == 0, out
    assert ic.SUPPORT_NAME.fullmatch(os.readlink(os.path.join(dirs["bin"], ".pycni")))
    assert len([n for n in os.listdir(dirs["bin"]) if ic.SUPPORT_NAME.fullmatch(n)]) == 2


def test_python_dash_m_runs_the_image_entry_point():
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-m", "pycni.installcni", "version"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"pycni {ic.pycni_version()}\n"


def test_temporary_names_are_never_config_names_and_stale_ones_go(dirs):
    """libcni loads every *.conf/*.conflist/*.json of net.d, hidden files
    too: a half-written temporary (or one a killed run left) must not be
    one, and the next run removes what a killed run left."""
    name = ic.tmp_name("10-pycni.conflist")
    assert name.startswith(ic.TMP_MARK) and not name.endswith((".conf", ".conflist", ".json"))
    os.makedirs(dirs["net"])
    stale = os.path.join(dirs["net"], ic.tmp_name("10-pycni.conflist"))
    open(stale, "w").close()
    other = os.path.join(dirs["net"], ic.tmp_name("99-other.conflist"))
    open(other, "w").close()
    code, out = run(dirs, "--pod-cidr", "10.244.1.0/24", "--node-name", "n")
    assert code == 0, out
    assert not os.path.exists(stale) and os.path.exists(other)


def test_a_fifo_or_device_at_a_name_is_replaced_without_opening_it(dirs):
    os.makedirs(dirs["net"])
    fifo = os.path.join(dirs["net"], "10-pycni.conflist")
    os.mkfifo(fifo)
    code, out = run(dirs, "--pod-cidr", "10.244.1.0/24", "--node-name", "n")
    assert code == 0, out
    assert stat.S_ISREG(os.lstat(fifo).st_mode)
    dev = os.open("/dev", os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert ic.read_regular_at(dev, "null", 10) is None
    finally:
        os.close(dev)
