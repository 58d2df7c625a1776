"""`pycni install` / `pycni uninstall`: how install knows a file is its own
(the manifest, the launcher marker), what it does with each name, and what
uninstall removes (issue #15). Pure decisions first, then both commands on
real files in a temporary directory (no kernel state involved)."""

import os
import pwd
import stat

import pytest

import pycni
from pycni import bundle, cli
from pycni.launcher import launcher_text

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root to chown files to nobody")
OWNERS = frozenset({0, os.geteuid()})
ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 200


def nobody() -> int:
    return pwd.getpwnam("nobody").pw_uid


class St:
    """Just what plan_file reads of a stat result."""

    def __init__(self, mode=0o100755, uid=0, nlink=1):
        self.st_mode, self.st_uid, self.st_nlink = mode, uid, nlink


def file_entry(data, **st):
    return cli.Entry("file", St(**st), data, data[:512])


LAUNCHER = launcher_text("bridge", "/opt/cni/bin").encode()


# ------------------------------------------------------------ looks_ours

def test_launchers_of_this_and_older_versions_look_ours():
    assert cli.looks_ours("bridge", LAUNCHER)
    older = (b"#!/usr/bin/python3 -ISB\n# pycni bridge plugin, written by `pycni install`; "
             b"reinstall after upgrading.\nimport sys\n")
    assert cli.looks_ours("bridge", older)
    third_party = (b"#!/opt/pycni/bin/python3 -ISB\n# pycni third-party plugin x (m), "
                   b"written by `pycni install`; reinstall after upgrading.\n")
    assert cli.looks_ours("x", third_party)


@pytest.mark.parametrize("head", [
    ELF,
    b"#!/bin/sh\necho '# pycni x plugin, written by `pycni install`'\n",     # marker on line 3
    b"# pycni x plugin, written by `pycni install`\n#!/bin/sh\n",            # no #! first
    b"#!/bin/sh\n# pycni x plugin\n",                                       # no marker
    b"#!/bin/sh\n# not pycni, written by `pycni install`\n",                # not '# pycni '
    b"",
], ids=["elf", "marker-line-3", "no-shebang", "no-marker", "other-comment", "empty"])
def test_other_files_do_not_look_ours(head):
    assert not cli.looks_ours("bridge", head)


def test_the_bundle_header_counts_for_the_bundle_name_only():
    head = bundle._MAGIC + b"\0" * 8
    assert cli.looks_ours(bundle.FILE_NAME, head)
    assert not cli.looks_ours("bridge", head)
    assert not cli.looks_ours(bundle.FILE_NAME, LAUNCHER)


# ------------------------------------------------------------ plan_file

def plan(entry, wanted=LAUNCHER, mode=0o755, recorded=None, force=False, name="bridge"):
    return cli.plan_file(name, entry, wanted, mode, recorded, OWNERS, force)


def test_a_missing_file_is_new():
    assert plan(cli.Entry("missing")) == ("write", "new")


def test_an_identical_file_is_left_alone():
    assert plan(file_entry(LAUNCHER)) == ("skip", "unchanged")


@pytest.mark.parametrize("st", [dict(mode=0o100775), dict(mode=0o100700), dict(uid=65534),
                                dict(nlink=2)], ids=["g+w", "0700", "other-owner", "hardlink"])
def test_identical_content_with_other_mode_owner_or_links_is_rewritten(st):
    if st.get("uid") in OWNERS:
        pytest.skip("running as that user")
    assert plan(file_entry(LAUNCHER, **st)) == ("write", "updated")


def test_a_changed_launcher_is_ours_by_its_marker():
    old = launcher_text("bridge", "/opt/cni/bin", python="/usr/bin/python3.9").encode()
    assert plan(file_entry(old)) == ("write", "updated")


def test_a_file_the_manifest_records_unchanged_is_ours():
    data = b"anything at all"
    assert plan(file_entry(data), recorded=cli.digest(data)) == ("write", "updated")


def test_a_recorded_file_changed_since_is_not_ours():
    data = ELF
    action, why = plan(file_entry(data), recorded=cli.digest(b"what install wrote"))
    assert action == "refuse"
    assert why == "is not pycni's (not recorded in .pycni-manifest, no pycni marker)"


def test_a_foreign_executable_is_refused_and_forced_replaced():
    assert plan(file_entry(ELF)) == (
        "refuse", "is not pycni's (not recorded in .pycni-manifest, no pycni marker)")
    assert plan(file_entry(ELF), force=True) == (
        "write", "replaced: it is not pycni's (not recorded in .pycni-manifest, no pycni marker)")


def test_a_symlink_is_refused_and_forced_replaced():
    link = cli.Entry("symlink", St(mode=0o120777))
    assert plan(link) == ("refuse", "is a symbolic link (install never follows one)")
    assert plan(link, force=True)[0] == "write"


def test_a_special_file_is_refused_and_forced_replaced():
    fifo = cli.Entry("special", St(mode=0o010644))
    assert plan(fifo) == ("refuse", "is not a regular file")
    assert plan(fifo, force=True)[0] == "write"


def test_a_directory_is_refused_even_with_force():
    d = cli.Entry("directory", St(mode=0o040755))
    assert plan(d) == ("refuse", "is a directory")
    assert plan(d, force=True) == ("refuse", "is a directory")


def test_a_file_too_large_to_read_is_judged_by_its_head():
    big = cli.Entry("file", St(), None, LAUNCHER[:512])
    assert plan(big) == ("write", "updated")
    assert plan(cli.Entry("file", St(), None, ELF), recorded="sha256:" + "0" * 64)[0] == "refuse"


# ------------------------------------------------------------ the manifest

def test_manifest_round_trip():
    entries = {"bridge": cli.digest(b"a"), ".pycni-bundle": cli.digest(b"b"),
               "host-local": cli.digest(b"c")}
    text = cli.manifest_text(entries)
    assert text.startswith(f"# pycni {pycni.__version__}: ")
    assert cli.parse_manifest(text) == entries
    body = [line for line in text.splitlines() if not line.startswith("#")]
    assert body == sorted(body, key=lambda line: line.split(" ", 1)[1])


@pytest.mark.parametrize("line, why", [
    ("sha256:" + "a" * 63 + " bridge", "no `sha256:HEX NAME`"),
    ("sha256:" + "A" * 64 + " bridge", "no `sha256:HEX NAME`"),
    ("md5:" + "a" * 64 + " bridge", "no `sha256:HEX NAME`"),
    ("sha256:" + "a" * 64, "no `sha256:HEX NAME`"),
    ("sha256:" + "a" * 64 + " ../etc/passwd", "not a file name"),
    ("sha256:" + "a" * 64 + " sub/bridge", "not a file name"),
    ("sha256:" + "a" * 64 + " ..", "not a file name"),
    ("sha256:" + "a" * 64 + " .pycni-manifest", "not a file name"),
    ("sha256:" + "a" * 64 + " bri dge", "not a file name"),
    ("sha256:" + "a" * 64 + " " + "x" * 256, "not a file name"),
])
def test_malformed_manifest_lines_are_refused(line, why):
    with pytest.raises(ValueError, match=why.replace("`", ".").replace("(", ".")):
        cli.parse_manifest(f"# header\n{line}\n")


def test_a_name_twice_is_refused():
    line = "sha256:" + "a" * 64 + " bridge\n"
    with pytest.raises(ValueError, match="named twice"):
        cli.parse_manifest(line + line)


def test_comments_and_blank_lines_are_ignored():
    assert cli.parse_manifest("# a\n\n# b\n") == {}


@pytest.mark.parametrize("entry, why", [
    (cli.Entry("symlink", St(mode=0o120777)), "is a symlink, not a regular file"),
    (cli.Entry("directory", St(mode=0o040755)), "is a directory, not a regular file"),
    (file_entry(b"", mode=0o100666), "is writable by group or others (mode 0666)"),
    (file_entry(b"", mode=0o100664), "is writable by group or others (mode 0664)"),
    (cli.Entry("file", St(mode=0o100644), None, b""), "is too large to be a manifest"),
])
def test_untrusted_manifests(entry, why):
    assert cli.manifest_problem(entry, OWNERS) == why


def test_a_manifest_owned_by_another_user_is_untrusted():
    entry = file_entry(b"", mode=0o100644, uid=12345)
    assert cli.manifest_problem(entry, frozenset({0})) == (
        "is owned by uid 12345, not by root or the installing user")
    assert cli.manifest_problem(file_entry(b"", mode=0o100644), frozenset({0})) is None


# ------------------------------------------------------------ read_entry

def dir_fd_of(path):
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY)


def test_read_entry_never_opens_a_fifo_or_follows_a_symlink(tmp_path):
    os.mkfifo(tmp_path / "fifo")              # opening it for reading would block
    (tmp_path / "target").write_bytes(b"secret")
    os.symlink(tmp_path / "target", tmp_path / "link")
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_bytes(b"content")
    fd = dir_fd_of(tmp_path)
    try:
        assert cli.read_entry(fd, "fifo").kind == "special"
        link = cli.read_entry(fd, "link")
        assert (link.kind, link.data) == ("symlink", None)
        assert cli.read_entry(fd, "dir").kind == "directory"
        assert cli.read_entry(fd, "missing").kind == "missing"
        f = cli.read_entry(fd, "file")
        assert (f.kind, f.data, f.head) == ("file", b"content", b"content")
    finally:
        os.close(fd)


def test_read_entry_reads_only_the_head_of_a_huge_file(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "MAX_READ", 1000)
    (tmp_path / "big").write_bytes(b"x" * 5000)
    fd = dir_fd_of(tmp_path)
    try:
        big = cli.read_entry(fd, "big")
    finally:
        os.close(fd)
    assert big.kind == "file" and big.data is None and big.head == b"x" * 512


# ------------------------------------------------------------ install and uninstall

def snapshot(directory):
    out = {}
    for name in sorted(os.listdir(directory)):
        st = os.lstat(os.path.join(directory, name))
        out[name] = (st.st_ino, st.st_mtime_ns, st.st_mode, st.st_size)
    return out


@pytest.fixture
def bin_dir(tmp_path):
    d = tmp_path / "bin"
    d.mkdir(mode=0o755)
    return d


def test_install_twice_changes_nothing(bin_dir):
    first, second = [], []
    cli.install(str(bin_dir), ["loopback", "host-local"], report=first)
    before = snapshot(bin_dir)
    assert sorted(before) == [".pycni-bundle", ".pycni-manifest", "host-local", "loopback"]
    assert [what for what, _ in first] == ["new", "new", "new", "written"]
    cli.install(str(bin_dir), ["loopback", "host-local"], report=second)
    assert snapshot(bin_dir) == before
    assert [what for what, _ in second] == ["unchanged"] * 4


def test_the_manifest_records_every_file_with_its_digest(bin_dir):
    cli.install(str(bin_dir), ["loopback"])
    recorded = cli.parse_manifest((bin_dir / ".pycni-manifest").read_text())
    assert sorted(recorded) == [".pycni-bundle", "loopback"]
    for name, dig in recorded.items():
        assert cli.digest((bin_dir / name).read_bytes()) == dig


def test_a_foreign_file_stops_install_before_anything_is_written(bin_dir):
    (bin_dir / "bridge").write_bytes(ELF)
    (bin_dir / "bridge").chmod(0o755)
    before = snapshot(bin_dir)
    with pytest.raises(cli.NotOurs) as err:
        cli.install(str(bin_dir), ["loopback", "bridge"])
    assert err.value.problems == [f"{bin_dir}/bridge is not pycni's (not recorded in "
                                  ".pycni-manifest, no pycni marker)"]
    assert snapshot(bin_dir) == before
    done = []
    cli.install(str(bin_dir), ["loopback", "bridge"], force=True, report=done)
    assert ("replaced", f"{bin_dir}/bridge") in done
    assert cli.looks_ours("bridge", (bin_dir / "bridge").read_bytes())


def test_a_launcher_from_before_manifests_is_replaced(bin_dir):
    old = launcher_text("loopback", str(bin_dir), python="/usr/bin/python3.9")
    (bin_dir / "loopback").write_text(old)
    done = []
    cli.install(str(bin_dir), ["loopback"], report=done)
    assert ("updated", f"{bin_dir}/loopback") in done


def test_a_directory_named_like_the_manifest_stops_install(bin_dir):
    (bin_dir / ".pycni-manifest").mkdir()
    with pytest.raises(cli.NotOurs) as err:
        cli.install(str(bin_dir), ["loopback"], force=True)
    assert err.value.problems == [f"{bin_dir}/.pycni-manifest is a directory"]
    assert sorted(os.listdir(bin_dir)) == [".pycni-manifest"]


def test_an_untrusted_manifest_is_ignored_and_rewritten(bin_dir, capsys):
    (bin_dir / "bridge").write_bytes(ELF)
    # a manifest anyone could have written claims the foreign bridge
    (bin_dir / ".pycni-manifest").write_text(f"{cli.digest(ELF)} bridge\n")
    (bin_dir / ".pycni-manifest").chmod(0o666)
    with pytest.raises(cli.NotOurs):
        cli.install(str(bin_dir), ["bridge"])
    assert "ignoring" in capsys.readouterr().err
    cli.install(str(bin_dir), ["loopback"])
    manifest = bin_dir / ".pycni-manifest"
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o644
    assert sorted(cli.parse_manifest(manifest.read_text())) == [".pycni-bundle", "loopback"]


def test_a_subset_install_keeps_what_an_earlier_one_recorded(bin_dir):
    cli.install(str(bin_dir), ["loopback", "host-local"])
    (bin_dir / "host-local").write_text("#!/bin/sh\n# edited by the admin\n")
    cli.install(str(bin_dir), ["bridge"])
    recorded = cli.parse_manifest((bin_dir / ".pycni-manifest").read_text())
    assert sorted(recorded) == [".pycni-bundle", "bridge", "loopback"]    # host-local changed


def test_a_failed_bundle_build_removes_only_our_old_bundle(bin_dir, monkeypatch, capsys):
    cli.install(str(bin_dir), ["loopback"])
    monkeypatch.setattr(bundle, "build_for", lambda python, package: None)
    done = []
    cli.install(str(bin_dir), ["loopback"], report=done)
    assert ("removed", f"{bin_dir}/.pycni-bundle") in done
    assert ".pycni-bundle" not in cli.parse_manifest((bin_dir / ".pycni-manifest").read_text())
    (bin_dir / ".pycni-bundle").write_bytes(b"someone else's")
    cli.install(str(bin_dir), ["loopback"])
    assert (bin_dir / ".pycni-bundle").read_bytes() == b"someone else's"


def test_uninstall_removes_exactly_what_install_wrote(bin_dir):
    (bin_dir / "vlan").write_bytes(ELF)          # the reference's, say
    (bin_dir / "vlan").chmod(0o755)
    (bin_dir / "notes.txt").write_text("mine\n")
    cli.install(str(bin_dir), ["loopback", "host-local"])
    done = []
    assert cli.uninstall(str(bin_dir), report=done) == []
    assert sorted(os.listdir(bin_dir)) == ["notes.txt", "vlan"]
    assert (bin_dir / "vlan").read_bytes() == ELF
    assert sorted(path for _, path in done) == sorted(
        f"{bin_dir}/{n}" for n in (".pycni-bundle", ".pycni-manifest", "host-local", "loopback"))
    # twice: nothing recorded any more, nothing done
    assert cli.uninstall(str(bin_dir), report=(again := [])) == [] and again == []


def test_uninstall_keeps_a_changed_or_replaced_file(bin_dir, tmp_path):
    cli.install(str(bin_dir), ["loopback", "host-local", "bridge"])
    (bin_dir / "loopback").write_text("#!/bin/sh\n# changed\n")
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    os.unlink(bin_dir / "host-local")
    os.symlink(victim, bin_dir / "host-local")
    os.unlink(bin_dir / "bridge")
    done = []
    kept = cli.uninstall(str(bin_dir), report=done)
    assert kept == [f"{bin_dir}/host-local is now a symlink: kept",
                    f"{bin_dir}/loopback changed since pycni installed it: kept"]
    assert ("gone", f"{bin_dir}/bridge") in done
    assert sorted(os.listdir(bin_dir)) == ["host-local", "loopback"]
    assert victim.read_text() == "keep me\n"


@pytest.mark.parametrize("how", ["o+w", "symlink", "malformed", "directory"])
def test_uninstall_refuses_an_untrusted_manifest(bin_dir, tmp_path, how):
    cli.install(str(bin_dir), ["loopback"])
    manifest = bin_dir / ".pycni-manifest"
    if how == "o+w":
        manifest.chmod(0o646)
    elif how == "symlink":
        real = tmp_path / "elsewhere"
        os.rename(manifest, real)
        os.symlink(real, manifest)
    elif how == "malformed":
        manifest.write_text(manifest.read_text() + "sha256:zz ../../etc/shadow\n")
    else:
        manifest.unlink()
        manifest.mkdir()
    before = snapshot(bin_dir)
    with pytest.raises(cli.InstallRefused) as err:
        cli.uninstall(str(bin_dir))
    assert err.value.problems[0].startswith(f"{manifest} ")
    assert snapshot(bin_dir) == before


@needs_root
def test_uninstall_refuses_a_manifest_another_user_owns(bin_dir):
    cli.install(str(bin_dir), ["loopback"])
    os.chown(bin_dir / ".pycni-manifest", nobody(), -1)
    with pytest.raises(cli.InstallRefused) as err:
        cli.uninstall(str(bin_dir))
    assert f"owned by uid {nobody()}" in err.value.problems[0]
    assert (bin_dir / "loopback").exists()


def test_uninstall_refuses_a_directory_others_can_write(bin_dir):
    cli.install(str(bin_dir), ["loopback"])
    bin_dir.chmod(0o777)
    try:
        with pytest.raises(cli.InstallRefused) as err:
            cli.uninstall(str(bin_dir))
    finally:
        bin_dir.chmod(0o755)
    assert "writable by group or others" in err.value.problems[0]
    assert (bin_dir / "loopback").exists()


def test_uninstall_of_a_missing_directory_is_refused(tmp_path):
    with pytest.raises(cli.InstallRefused) as err:
        cli.uninstall(str(tmp_path / "nope"))
    assert "does not exist" in err.value.problems[0]


# ------------------------------------------------------------ the command line

def test_main_install_reports_what_it_did(bin_dir, capsys):
    assert cli.main(["install", "--dir", str(bin_dir), "loopback"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"new       {bin_dir}/.pycni-bundle", f"new       {bin_dir}/loopback",
                   f"written   {bin_dir}/.pycni-manifest"]
    assert cli.main(["install", "--dir", str(bin_dir), "loopback"]) == 0
    assert all(line.startswith("unchanged ") for line in capsys.readouterr().out.splitlines())


def test_main_install_refuses_a_foreign_file_with_exit_1(bin_dir, capsys):
    (bin_dir / "loopback").write_bytes(ELF)
    assert cli.main(["install", "--dir", str(bin_dir), "loopback"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "refusing to replace what pycni did not install" in err and "--force" in err
    assert f"{bin_dir}/loopback is not pycni's" in err
    assert cli.main(["install", "--dir", str(bin_dir), "--force", "loopback"]) == 0
    assert f"replaced  {bin_dir}/loopback" in capsys.readouterr().out


def test_main_uninstall(bin_dir, capsys):
    cli.main(["install", "--dir", str(bin_dir), "loopback"])
    capsys.readouterr()
    assert cli.main(["uninstall", "--dir", str(bin_dir)]) == 0
    out, err = capsys.readouterr()
    assert f"removed   {bin_dir}/loopback" in out.splitlines()
    assert os.listdir(bin_dir) == []
    assert cli.main(["uninstall", "--dir", str(bin_dir)]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "nothing pycni installed there" in err
    (bin_dir / ".pycni-manifest").write_text("garbage\n")
    assert cli.main(["uninstall", "--dir", str(bin_dir)]) == 1
    assert "refusing to remove anything" in capsys.readouterr().err


# ------------------------------------------------------------ a killed install's leftovers

@pytest.mark.parametrize("name, temp", [
    (".bridge.pycni-tmp1234-0a1b2c3d", True),
    (".host-local.pycni-tmp1-ffffffff", True),
    (".pycni-manifest.pycni-tmp99-00000000", True),
    (".pycni-bundle.pycni-tmp99-00000000", True),
    ("bridge.pycni-tmp1234-0a1b2c3d", False),        # no leading dot
    (".bridge.pycni-tmp1234-0a1b2c3", False),        # short tag
    (".bridge.pycni-tmp1234-0A1B2C3D", False),       # not lower hex
    (".bridge.pycni-tmpx-0a1b2c3d", False),          # no pid
    (".bridge.pycni-tmp1234", False),
    (".br idge.pycni-tmp1234-0a1b2c3d", False),
    ("..pycni-tmp1234-0a1b2c3d", False),
    ("bridge", False),
])
def test_temp_names(name, temp):
    assert cli.is_temp_name(name) is temp


def test_install_and_uninstall_remove_a_killed_installs_temp_files(bin_dir, tmp_path):
    (bin_dir / ".loopback.pycni-tmp4242-deadbeef").write_text("half a launcher")
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    os.symlink(victim, bin_dir / ".ptp.pycni-tmp4242-deadbeef")      # not a regular file
    done = []
    cli.install(str(bin_dir), ["loopback"], report=done)
    assert done[0] == ("removed", f"{bin_dir}/.loopback.pycni-tmp4242-deadbeef")
    assert os.path.islink(bin_dir / ".ptp.pycni-tmp4242-deadbeef")
    (bin_dir / ".bridge.pycni-tmp7-01234567").write_text("half")
    cli.uninstall(str(bin_dir))
    assert sorted(os.listdir(bin_dir)) == [".ptp.pycni-tmp4242-deadbeef"]
    assert victim.read_text() == "keep\n"


@needs_root
def test_a_temp_looking_file_of_another_user_stays(bin_dir):
    other = bin_dir / ".loopback.pycni-tmp1-00000000"
    other.write_text("not ours")
    os.chown(other, nobody(), -1)
    cli.install(str(bin_dir), ["loopback"])
    assert other.exists()
