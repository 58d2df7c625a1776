"""spawn.run: one program, posix_spawn with memfds instead of subprocess.

Real programs (/bin/sh, cat, a child Python), nothing mocked; no
namespace needed. The properties subprocess.run(close_fds=True) gave the
callers (fwtools.run_tool/run_nft, pluginexec.exec_plugin) are checked one by
one: env, fds, signals, exec errors, sizes.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import pycni
from pycni import fwtools, pluginexec, spawn
from pycni.errors import CNIError

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(pycni.__file__)))
SH = "/bin/sh"
# A child that reports every fd above 2 it has open (its own interpreter
# opens none that stay open: -I -S -c, no script file).
OPEN_FDS = ("import os\n"
            "def is_open(fd):\n"
            "    try:\n"
            "        os.fstat(fd)\n"
            "        return True\n"
            "    except OSError:\n"
            "        return False\n"
            "print(*[fd for fd in range(3, 1024) if is_open(fd)])\n")


def child_fds(**kw) -> list[int]:
    rc, out, err = spawn.run([sys.executable, "-I", "-S", "-c", OPEN_FDS], {}, **kw)
    assert rc == 0, err
    return [int(x) for x in out.split()]


def test_returncode_stdout_stderr():
    assert spawn.run([SH, "-c", "printf out; printf err >&2; exit 7"], {}) == (7, b"out", b"err")


def test_stdin_reaches_the_child():
    assert spawn.run(["/bin/cat"], {}, b"hello\n") == (0, b"hello\n", b"")


def test_no_stdin_reads_eof():
    assert spawn.run(["/bin/cat"], {}) == (0, b"", b"")


def test_child_gets_exactly_the_given_env(monkeypatch):
    monkeypatch.setenv("PYCNI_SPAWN_SECRET", "leak")
    rc, out, _ = spawn.run(["/usr/bin/env", "-0"], {"A": "1", "B": "x=y"})
    assert rc == 0
    assert sorted(out.split(b"\0")[:-1]) == [b"A=1", b"B=x=y"]
    assert spawn.run(["/usr/bin/env"], {}) == (0, b"", b"")


def test_large_stdin_and_stdout_round_trip():
    """> 64 KiB in (a pipe buffer), several MB out: no deadlock."""
    data = os.urandom(3 << 20)
    rc, out, err = spawn.run(["/bin/cat"], {}, data)
    assert (rc, err) == (0, b"") and out == data


def test_large_stdout_and_stderr_at_once():
    """A child filling both streams before reading stdin: with pipes this
    needs a select loop, with memfds nothing can block."""
    script = "head -c 2000000 /dev/zero; head -c 2000000 /dev/zero >&2; cat"
    rc, out, err = spawn.run([SH, "-c", script], {}, b"x" * 200000)
    assert rc == 0
    assert out == b"\0" * 2000000 + b"x" * 200000
    assert err == b"\0" * 2000000


def test_only_0_1_2_reach_the_child():
    assert child_fds() == []


def test_inheritable_fds_we_were_given_are_closed_in_the_child(tmp_path):
    """close_fds semantics: an fd the runtime leaked into the plugin
    (inheritable, above 2) does not reach the tools it runs."""
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    os.set_inheritable(fd, True)
    high = os.dup2(fd, 200)              # inheritable too
    try:
        assert os.get_inheritable(fd) and os.get_inheritable(high)
        assert child_fds() == []
    finally:
        os.close(fd)
        os.close(high)


def test_our_own_fds_do_not_reach_the_child(tmp_path):
    """Netlink sockets, lock and directory fds the plugin holds while it
    runs a tool: all close-on-exec."""
    from pycni import netlink
    with netlink.RtNetlink() as nl, fwtools.NetnsMutex(directory=str(tmp_path / "locks")) as m:
        assert m.locked
        dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            mine = [nl.sock.fileno(), m.fd, m._dir, dfd]
            assert all(not os.get_inheritable(fd) for fd in mine)
            assert child_fds() == []
        finally:
            os.close(dfd)


def test_memfds_of_the_child_are_not_left_open():
    before = sorted(os.listdir("/proc/self/fd"))
    for _ in range(20):
        spawn.run([SH, "-c", "echo x"], {}, b"in")
    assert sorted(os.listdir("/proc/self/fd")) == before


def test_works_with_our_0_1_2_closed(tmp_path):
    """A plugin started with stdin/stdout closed: our memfds land on 0-2
    first and must not clobber each other in the child's dup2s."""
    code = textwrap.dedent(f"""
        import os, sys, json
        sys.path.insert(0, {PACKAGE_PARENT!r})
        from pycni import spawn
        os.close(0); os.close(1)
        r = spawn.run(["/bin/sh", "-c", "cat; echo err >&2"], {{}}, b"in")
        os.write(os.open({str(tmp_path / 'out')!r}, os.O_WRONLY | os.O_CREAT),
                 json.dumps([r[0], r[1].decode(), r[2].decode()]).encode())
    """)
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "out").read_text()) == [0, "in", "err\n"]


def test_killed_by_a_signal_is_negative():
    assert spawn.run([SH, "-c", "kill -9 $$"], {})[0] == -9
    assert spawn.run([SH, "-c", "kill -TERM $$"], {})[0] == -15


def test_sigpipe_is_default_in_the_child():
    """Python ignores SIGPIPE; the tools must get it back at its default
    (as subprocess's restore_signals does): SigIgn has no bit 13."""
    _, out, _ = spawn.run(["/bin/cat", "/proc/self/status"], {})
    ignored = int(next(l for l in out.decode().splitlines() if l.startswith("SigIgn:"))
                  .split()[1], 16)
    assert not ignored & (1 << (13 - 1))
    assert not ignored & (1 << (25 - 1))


@pytest.mark.parametrize("make", ["missing", "not-executable", "directory"])
def test_exec_failure_raises_oserror_as_subprocess_did(tmp_path, make):
    path = tmp_path / "prog"
    if make == "not-executable":
        path.write_text("#!/bin/sh\n")
        path.chmod(0o644)
    elif make == "directory":
        path.mkdir()
    with pytest.raises(OSError) as ours:
        spawn.run([str(path)], {})
    with pytest.raises(OSError) as theirs:
        subprocess.run([str(path)], env={}, capture_output=True)
    assert type(ours.value) is type(theirs.value)
    assert str(ours.value) == str(theirs.value)


def test_interrupted_wait_retries_on_eintr():
    """A signal whose handler returns (EINTR in waitpid) does not cut the
    call short."""
    import signal
    hits = []
    old = signal.signal(signal.SIGALRM, lambda *a: hits.append(1))
    signal.setitimer(signal.ITIMER_REAL, 0.02, 0.02)
    try:
        rc, out, _ = spawn.run([SH, "-c", "sleep 0.3; echo done"], {})
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert (rc, out) == (0, b"done\n")
    assert hits


def test_exception_while_waiting_kills_and_reaps_the_child(tmp_path):
    import signal

    class Stop(Exception):
        pass

    def stop(*a):
        raise Stop

    old = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    try:
        with pytest.raises(Stop):
            spawn.run([SH, "-c", f"echo $$ > {tmp_path / 'pid'}; exec sleep 30"], {})
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    pid = int((tmp_path / "pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)                  # killed and reaped: no zombie


def test_spawning_imports_nothing_heavy():
    code = (f"import sys\nsys.path.insert(0, {PACKAGE_PARENT!r})\n"
            "import pycni.posixos\n"
            "before = set(sys.modules)\n"
            "from pycni import spawn\n"
            "assert spawn.run(['/bin/cat'], {}, b'x') == (0, b'x', b'')\n"
            "print(' '.join(sorted(set(sys.modules) - before)))\n")
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["pycni.spawn"]


# --- the callers: same results and errors as with subprocess --------------------

def fake_tool(directory, name: str, body: str) -> str:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_run_tool_stdin_stdout_and_error(tmp_path, monkeypatch):
    d = tmp_path / "bin"
    fake_tool(d, "iptables-restore", f"cat > {tmp_path / 'in'}; echo ok\n")
    fake_tool(d, "iptables-save", "echo 'bad table' >&2; exit 2\n")
    monkeypatch.setenv("PATH", str(d))
    monkeypatch.setattr(fwtools, "FALLBACK_DIRS", ())
    script = "".join(f"-A CHAIN -j RETURN -m comment --comment {i}\n" for i in range(5000))
    assert len(script) > 1 << 16
    assert fwtools.run_tool(["iptables-restore", "--noflush"], script) == "ok\n"
    assert (tmp_path / "in").read_text() == script
    with pytest.raises(fwtools.ToolError) as err:
        fwtools.run_tool(["iptables-save"])
    assert err.value.msg == "iptables-save failed (exit 2)"
    assert err.value.details == "bad table"
    assert err.value.stderr == "bad table\n"


def test_run_tool_gets_tool_env_only(tmp_path, monkeypatch):
    d = tmp_path / "bin"
    fake_tool(d, "iptables-save", "env -0\n")
    monkeypatch.setenv("PATH", str(d))
    monkeypatch.setenv("XTABLES_LIBDIR", "/evil")
    out = fwtools.run_tool(["iptables-save"])
    seen = dict(kv.split("=", 1) for kv in out.split("\0") if kv)
    seen.pop("PWD", None)                # set by the shell itself
    assert seen == fwtools.TOOL_ENV


def test_run_tool_large_output(tmp_path, monkeypatch):
    d = tmp_path / "bin"
    fake_tool(d, "iptables-save", "i=0; while [ $i -lt 20000 ]; do "
                                  "echo \"-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "
                                  "rule-$i -j DNAT --to-destination 10.0.0.1:80\"; "
                                  "i=$((i+1)); done\n")
    monkeypatch.setenv("PATH", str(d))
    out = fwtools.run_tool(["iptables-save"])
    assert len(out) > 1 << 20
    assert out.count("\n") == 20000 and "rule-19999 " in out


def test_run_nft_returns_code_and_stripped_stderr(tmp_path, monkeypatch):
    d = tmp_path / "bin"
    fake_tool(d, "nft", "cat; echo ' No such file ' >&2; exit 1\n")
    monkeypatch.setenv("PATH", str(d))
    monkeypatch.setattr(fwtools, "FALLBACK_DIRS", ())
    assert fwtools.run_nft(["-f", "-"], "flush table x\n") == \
        (1, "flush table x\n", "No such file")


def test_exec_plugin_result_error_and_stderr(tmp_path, capfd):
    d = tmp_path / "bin"
    good = fake_tool(d, "good", "cat; echo warn >&2\n")
    bad = fake_tool(d, "bad", "echo '{\"code\": 7, \"msg\": \"no\"}'; exit 1\n")
    assert pluginexec.exec_plugin(good, b'{"a":1}', {"CNI_COMMAND": "ADD"}) == b'{"a":1}'
    assert capfd.readouterr().err == "warn\n"
    with pytest.raises(CNIError) as err:
        pluginexec.exec_plugin(bad, b"", {})
    assert (err.value.code, err.value.msg) == (7, "no")


def test_exec_plugin_exec_failure_message(tmp_path):
    path = tmp_path / "plugin"
    path.write_text("#!/bin/sh\n")
    path.chmod(0o644)
    with pytest.raises(CNIError) as err:
        pluginexec.exec_plugin(str(path), b"", {})
    assert err.value.msg == f"failed to run plugin {path}"
    assert err.value.details == f"[Errno 13] Permission denied: '{path}'"
