"""Issue #11, findings 3, 4 and 6 (and the NUL byte of 11): what the
environment and local users can make a plugin open, run or wait for.

- PATH / CNI_PATH: programs only from absolute directories nobody but root
  can write (lib/execpath.py), never `./iptables-save`.
- CNI_NETNS: never opened blocking, nothing but an nsfs file opened for
  reading (lib/netns.py).
- the firewall mutex: a root-only flock under a 0700 directory, refused if
  planted (lib/fwtools.py).

These run as root (the tests chown files to nobody to play the local user);
the real-kernel and real-user versions are in
tests/integration/test_security_*.py.
"""

import os
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from pycni import execpath, fwtools, invoke, netns
from pycni.errors import CNIError, INVALID_ENVIRONMENT, INVALID_NETWORK_CONFIG

NOBODY = 65534
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown to nobody)")


def planted_tool(directory, name: str, marker) -> str:
    """An executable `name` in `directory` that leaves `marker` behind if run."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(f"#!/bin/sh\necho ran > {marker}\n")
    os.chmod(path, 0o755)
    return path


# --- finding 6: PATH ------------------------------------------------------------

@pytest.mark.parametrize("entry", [".", "", "bin", "./bin", "bin/../bin"])
def test_relative_path_entries_are_never_used(tmp_path, monkeypatch, entry):
    cwd = tmp_path / "cwd"
    for d in (cwd, cwd / "bin"):
        planted_tool(str(d), "iptables-save", tmp_path / "marker")
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("PATH", entry + os.pathsep + entry)
    monkeypatch.setattr(fwtools, "FALLBACK_DIRS", ())
    assert fwtools.find_tool("iptables-save") is None
    with pytest.raises(CNIError) as err:
        fwtools.run_tool(["iptables-save", "-t", "nat"])
    assert "not found" in err.value.msg
    assert not (tmp_path / "marker").exists()


def test_relative_entry_before_a_real_one_is_skipped(tmp_path, monkeypatch):
    cwd, real = tmp_path / "cwd", tmp_path / "real"
    planted_tool(str(cwd), "iptables-save", tmp_path / "marker")
    good = planted_tool(str(real), "iptables-save", tmp_path / "ok")
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("PATH", f".:relative/dir:{real}")
    assert fwtools.find_tool("iptables-save") == good
    fwtools.run_tool(["iptables-save"])
    assert (tmp_path / "ok").exists() and not (tmp_path / "marker").exists()


def test_an_entry_that_is_a_file_is_skipped(tmp_path, monkeypatch):
    f = tmp_path / "afile"
    f.write_text("")
    assert execpath.entry_problem(str(f)) == "not a directory"


@root_only
def test_entries_others_can_write_are_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(fwtools, "FALLBACK_DIRS", ())
    world_w = tmp_path / "world-writable"
    planted_tool(str(world_w), "iptables-save", tmp_path / "m1")
    os.chmod(world_w, 0o777)
    owned = tmp_path / "nobody-owns"
    planted_tool(str(owned), "iptables-save", tmp_path / "m2")
    os.chown(owned, NOBODY, -1)
    below = owned / "sub"      # root-owned, but nobody can rename it
    planted_tool(str(below), "iptables-save", tmp_path / "m3")
    group_w = tmp_path / "group-writable"
    planted_tool(str(group_w), "iptables-save", tmp_path / "m4")
    os.chown(group_w, 0, NOBODY)
    os.chmod(group_w, 0o775)
    for d in (world_w, owned, below, group_w):
        monkeypatch.setenv("PATH", str(d))
        assert fwtools.find_tool("iptables-save") is None, d
        with pytest.raises(CNIError) as err:
            fwtools.run_tool(["iptables-save"])
        assert str(d) in err.value.details      # says what it ignored
    assert not list(tmp_path.glob("m*"))


@root_only
def test_programs_others_can_write_or_own_are_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(fwtools, "FALLBACK_DIRS", ())
    d = tmp_path / "bin"
    tool = planted_tool(str(d), "nft", tmp_path / "m")
    monkeypatch.setenv("PATH", str(d))
    assert fwtools.find_tool("nft") == tool
    os.chown(tool, NOBODY, -1)
    assert fwtools.find_tool("nft") is None
    os.chown(tool, 0, 0)
    os.chmod(tool, 0o757)
    assert fwtools.find_tool("nft") is None


@root_only
def test_a_sticky_world_writable_ancestor_is_fine(tmp_path, monkeypatch):
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    tool = planted_tool(str(sticky / "rootdir"), "nft", tmp_path / "m")
    monkeypatch.setenv("PATH", str(sticky / "rootdir"))
    assert fwtools.find_tool("nft") == tool
    # ...but a sticky world-writable directory itself is not
    monkeypatch.setenv("PATH", str(sticky))
    planted_tool(str(sticky), "nft", tmp_path / "m")
    monkeypatch.setattr(fwtools, "FALLBACK_DIRS", ())
    assert fwtools.find_tool("nft") is None


def test_the_sbin_fallbacks_still_work_with_a_useless_path(monkeypatch):
    monkeypatch.setenv("PATH", ".:relative")
    found = fwtools.find_tool("sh")
    assert found is not None and os.path.isabs(found)


# --- finding 6 for CNI_PATH and the NUL byte in a plugin type -------------------

def test_nul_byte_in_plugin_type_is_an_invalid_plugin_name(tmp_path):
    with pytest.raises(CNIError) as err:
        invoke.find_in_path("host-local\0", [str(tmp_path)])
    assert err.value.code == INVALID_NETWORK_CONFIG
    assert "invalid plugin name" in err.value.msg and "\0" not in err.value.msg


def test_nul_byte_in_ipam_type_through_a_plugin(tmp_path):
    """The whole plugin: an error object with code 7, not a bare 999."""
    import io
    import json
    from pycni import skel
    from pycni.plugins.macvlan.plugin import MacvlanPlugin
    conf = {"cniVersion": "1.0.0", "name": "n", "type": "macvlan",
            "ipam": {"type": "host-local\u0000x"}}
    env = {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0",
           "CNI_PATH": str(tmp_path), "CNI_NETNS": ""}
    out = io.StringIO()
    code = skel.run(MacvlanPlugin(), env, io.BytesIO(json.dumps(conf).encode()), out)
    assert code == 1
    err = json.loads(out.getvalue())
    assert err["code"] == INVALID_NETWORK_CONFIG and "invalid plugin name" in err["msg"]


def test_relative_cni_path_entries_are_skipped(tmp_path, monkeypatch):
    planted_tool(str(tmp_path / "plugins"), "host-local", tmp_path / "marker")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CNIError) as err:
        invoke.find_in_path("host-local", ["plugins", "./plugins", "."])
    assert err.value.code == INVALID_NETWORK_CONFIG
    assert "failed to find plugin" in err.value.msg and "relative" in err.value.details
    good = planted_tool(str(tmp_path / "abs"), "host-local", tmp_path / "ok")
    assert invoke.find_in_path("host-local", ["plugins", str(tmp_path / "abs")]) == good


@root_only
def test_cni_path_directory_others_can_write_is_skipped(tmp_path):
    d = tmp_path / "plugins"
    planted_tool(str(d), "host-local", tmp_path / "marker")
    os.chmod(d, 0o777)
    with pytest.raises(CNIError) as err:
        invoke.find_in_path("host-local", [str(d)])
    assert "writable by others" in err.value.details


def test_in_process_check_never_blocks_on_a_fifo(tmp_path):
    """The delegate found on CNI_PATH swapped for a FIFO before it is read."""
    fifo = tmp_path / "host-local"
    os.mkfifo(fifo)
    code = ("from pycni import invoke\n"
            f"print(invoke.in_process_module({str(fifo)!r}, 'host-local', {{}}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=10)
    assert proc.stdout.strip() == "None"


# --- finding 4: CNI_NETNS -------------------------------------------------------

def _open_in_child(path: str, timeout: float = 10):
    """netns.open_netns(path) in a child process (a blocking open would hang
    the test otherwise); what it raised, by class name, or 'ok'."""
    code = textwrap.dedent(f"""
        from pycni import netns
        try:
            import os
            os.close(netns.open_netns({path!r}))
            print("ok")
        except Exception as exc:
            print(type(exc).__name__, getattr(exc, "code", ""))
    """)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout)
    assert time.monotonic() - start < timeout
    return proc.stdout.strip()


def test_a_fifo_as_netns_fails_at_once(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert _open_in_child(str(fifo)) == f"NotANetns {INVALID_ENVIRONMENT}"
    link = tmp_path / "link-to-fifo"
    link.symlink_to(fifo)
    assert _open_in_child(str(link)) == f"NotANetns {INVALID_ENVIRONMENT}"


@pytest.mark.parametrize("make", ["device", "directory", "regular", "empty-regular"])
def test_non_netns_files_are_refused(tmp_path, make):
    target = {"device": "/dev/null", "directory": str(tmp_path)}.get(make)
    if target is None:
        target = str(tmp_path / "file")
        with open(target, "w") as f:
            f.write("" if make == "empty-regular" else "x")
    with pytest.raises(netns.NotANetns) as err:
        netns.open_netns(target)
    assert err.value.code == INVALID_ENVIRONMENT
    assert isinstance(err.value, netns.GONE)


def test_a_device_node_is_not_opened(tmp_path, monkeypatch):
    """Refused on its type alone: the only open() is the O_PATH one."""
    opened = _only_path_opens(monkeypatch)
    with pytest.raises(netns.NotANetns):
        netns.open_netns("/dev/null")
    assert all(flags & os.O_PATH for _p, flags in opened), opened


def test_missing_paths_are_not_found(tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    for path in (str(tmp_path / "gone"), str(f / "below-a-file")):
        with pytest.raises(netns.NetnsNotFound):
            netns.open_netns(path)


def test_nul_byte_in_netns_path():
    with pytest.raises(netns.NotANetns):
        netns.open_netns("/proc/self/ns/net\0x")
    assert netns.is_current("/proc/self/ns/net\0x") is False
    assert netns.exists("/proc/self/ns/net\0x") is False


def test_real_netns_paths_still_open(tmp_path):
    link = tmp_path / "ns"
    link.symlink_to("/proc/self/ns/net")
    for path in ("/proc/self/ns/net", "/proc/thread-self/ns/net", str(link)):
        os.close(netns.open_netns(path))


def test_another_kind_of_namespace_is_refused():
    with pytest.raises(netns.NotANetns):
        netns.open_netns("/proc/self/ns/mnt")


# --- finding 3: the mutex -------------------------------------------------------

def test_mutex_makes_a_private_directory_whatever_the_umask(tmp_path):
    d = tmp_path / "locks"
    old = os.umask(0)
    try:
        with fwtools.NetnsMutex(directory=str(d)) as m:
            assert m.locked
            assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
            files = os.listdir(d)
            assert len(files) == 1 and files[0].startswith("netns-")
            assert stat.S_IMODE(os.stat(d / files[0]).st_mode) & 0o077 == 0
    finally:
        os.umask(old)
    assert os.listdir(d) == []      # the holder removes its file


def test_mutex_key_is_the_network_namespace(tmp_path):
    d = tmp_path / "locks"
    ns = os.stat("/proc/thread-self/ns/net")
    with fwtools.NetnsMutex(directory=str(d)):
        assert os.listdir(d) == [f"netns-{ns.st_dev}-{ns.st_ino}.lock"]


@root_only
def test_mutex_refuses_a_planted_directory(tmp_path, capfd):
    d = tmp_path / "locks"
    d.mkdir()
    os.chown(d, NOBODY, -1)
    with fwtools.NetnsMutex(timeout=0.1, directory=str(d)) as m:
        assert not m.locked
    assert "without the firewall lock" in capfd.readouterr().err
    assert os.listdir(d) == []      # nothing created in it
    os.chown(d, 0, 0)
    os.chmod(d, 0o777)
    with fwtools.NetnsMutex(timeout=0.1, directory=str(d)) as m:
        assert not m.locked


def test_mutex_refuses_a_symlink_directory_or_file(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    with fwtools.NetnsMutex(timeout=0.1, directory=str(tmp_path / "link")) as m:
        assert not m.locked
    ns = os.stat("/proc/thread-self/ns/net")
    target = tmp_path / "target"
    (real / f"netns-{ns.st_dev}-{ns.st_ino}.lock").symlink_to(target)
    with fwtools.NetnsMutex(timeout=0.1, directory=str(real)) as m:
        assert not m.locked
    assert not target.exists()          # O_NOFOLLOW: nothing created through it


@root_only
def test_mutex_refuses_a_planted_lock_file(tmp_path):
    d = tmp_path / "locks"
    d.mkdir(mode=0o700)
    ns = os.stat("/proc/thread-self/ns/net")
    planted = d / f"netns-{ns.st_dev}-{ns.st_ino}.lock"
    planted.write_text("")
    os.chown(planted, NOBODY, -1)
    with fwtools.NetnsMutex(timeout=0.1, directory=str(d)) as m:
        assert not m.locked
    planted.unlink()
    os.mkfifo(planted)
    start = time.monotonic()
    with fwtools.NetnsMutex(timeout=0.1, directory=str(d)) as m:
        assert not m.locked
    assert time.monotonic() - start < 2


def test_mutex_waits_for_the_holder_without_polling(tmp_path):
    """A child holds the lock for 0.5 s; we block until it lets go, using
    (almost) no CPU meanwhile."""
    d = str(tmp_path / "locks")
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pycni import fwtools
        with fwtools.NetnsMutex(directory={d!r}):
            print("held", flush=True)
            time.sleep(0.5)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        cpu0, t0 = time.process_time(), time.monotonic()
        with fwtools.NetnsMutex(timeout=10, directory=d) as m:
            waited = time.monotonic() - t0
            assert m.locked
        assert 0.2 < waited < 5
        assert time.process_time() - cpu0 < 0.1
    finally:
        holder.wait(10)


def test_mutex_gives_up_after_the_timeout_and_the_lock_is_not_leaked(tmp_path):
    d = str(tmp_path / "locks")
    with fwtools.NetnsMutex(directory=d):
        start = time.monotonic()
        with fwtools.NetnsMutex(timeout=0.2, directory=d) as late:
            assert not late.locked
        assert 0.15 < time.monotonic() - start < 2
    # the abandoned waiter let go of what it got once the holder left
    with fwtools.NetnsMutex(timeout=1, directory=d) as again:
        assert again.locked


# --- siblings: other config-chosen paths read as root ----------------------------

def _only_path_opens(monkeypatch):
    opened = []
    real_open = os.open

    def spy(path, flags, *a, **k):
        opened.append((path, flags))
        return real_open(path, flags, *a, **k)
    from pycni import posixos      # what pycni's modules call as `os`
    monkeypatch.setattr(posixos, "open", spy)
    return opened


def test_open_path_regular_refuses_devices_before_opening_them(monkeypatch):
    from pycni import files
    opened = _only_path_opens(monkeypatch)
    with pytest.raises(files.NotRegular) as err:
        files.open_path_regular("/dev/zero")
    assert stat.S_ISCHR(err.value.st_mode)
    assert all(flags & os.O_PATH for _p, flags in opened), opened


def test_resolv_conf_naming_a_device_is_refused_unopened(monkeypatch):
    """host-local `resolvConf: /dev/watchdog` would arm the watchdog on open."""
    from pycni import files
    opened = _only_path_opens(monkeypatch)
    with pytest.raises(files.UnsafePath) as err:
        files.read_file("/dev/null", follow_symlinks=True)
    assert "a device" in str(err.value)
    assert all(flags & os.O_PATH for _p, flags in opened), opened


def test_read_file_reads_regular_files_through_symlinks_within_a_limit(tmp_path):
    from pycni import files
    (tmp_path / "real").write_bytes(b"x" * 100)
    (tmp_path / "link").symlink_to("real")
    assert files.read_file(str(tmp_path / "link"), follow_symlinks=True) == b"x" * 100
    assert files.read_file(str(tmp_path / "real"), limit=10, follow_symlinks=True) == b"x" * 10
    assert files.read_file(str(tmp_path / "gone"), follow_symlinks=True) is None
    with pytest.raises(OSError):
        files.open_path_regular(str(tmp_path / "real") + "\0")


# --- sibling of finding 6: the environment the tools run with --------------------

def test_tools_do_not_inherit_the_callers_environment(tmp_path, monkeypatch):
    """XTABLES_LIBDIR names where iptables dlopen()s its extensions: a
    caller's value must never reach the root-run tool."""
    d = tmp_path / "bin"
    d.mkdir()
    tool = d / "iptables-save"
    tool.write_text(f"#!/bin/sh\nenv > {tmp_path / 'env'}\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(d))
    monkeypatch.setenv("XTABLES_LIBDIR", str(tmp_path / "evil"))
    monkeypatch.setenv("XTABLES_LOCKFILE", str(tmp_path / "lock"))
    fwtools.run_tool(["iptables-save"])
    seen = dict(line.split("=", 1) for line in (tmp_path / "env").read_text().splitlines()
                if "=" in line)
    assert "XTABLES_LIBDIR" not in seen and "XTABLES_LOCKFILE" not in seen
    assert seen["PATH"] == fwtools.TOOL_ENV["PATH"]


def test_lookup_returns_the_checked_directory_not_a_symlinked_entry(tmp_path):
    """An entry that is a symlink is checked at its real path; the program
    returned lies in that real directory, so re-pointing the symlink after
    the check cannot change what runs."""
    from pycni import execpath
    real = tmp_path / "real"
    real.mkdir()
    tool = real / "mytool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    (tmp_path / "entry").symlink_to(real)
    found, skipped = execpath.lookup("mytool", [str(tmp_path / "entry")])
    assert found == os.path.join(os.path.realpath(real), "mytool"), skipped
