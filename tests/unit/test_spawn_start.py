"""spawn.start / Child.wait: `run` without the wait, so that a plugin's
firewall exec runs while it does its netlink work (bridge ipMasq, #12).

Real programs, nothing mocked. What matters besides the result: a child
that was started is always reaped (no zombie, no stray process), on the
normal path, when an exception comes between start and wait, and when
the wait itself is interrupted; and its memfds are closed afterwards.
"""

import os
import signal

import pytest

from pycni import spawn

SH = "/bin/sh"


def reaped(pid: int) -> bool:
    """The child is no longer ours to wait for: reaped, no zombie left."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def open_fds() -> set[int]:
    return {int(n) for n in os.listdir("/proc/self/fd")}


def test_wait_gives_status_stdout_and_stderr():
    child = spawn.start([SH, "-c", "printf out; printf err >&2; exit 3"], {})
    assert child.wait() == (3, b"out", b"err")
    assert child.done and reaped(child.pid)


def test_stdin_is_written_before_start_returns():
    child = spawn.start(["/bin/cat"], {}, b"a batch\n" * 20000)
    assert child.wait() == (0, b"a batch\n" * 20000, b"")


def test_start_does_not_wait():
    child = spawn.start(["/bin/sleep", "30"], {})
    try:
        assert not child.done
        with open(f"/proc/{child.pid}/stat") as f:
            assert f.read().split(") ")[1][0] in "RS"     # running, not reaped
    finally:
        os.kill(child.pid, signal.SIGKILL)
    assert child.wait() == (-signal.SIGKILL, b"", b"")
    assert reaped(child.pid)


def test_wait_twice_returns_the_same_result():
    child = spawn.start([SH, "-c", "echo once; exit 1"], {})
    first = child.wait()
    assert child.wait() == first == (1, b"once\n", b"")


def test_a_failing_program_is_a_status_not_an_exception():
    child = spawn.start([SH, "-c", "echo refused >&2; exit 2"], {})
    assert child.wait() == (2, b"", b"refused\n")


def test_exec_failure_raises_and_leaks_nothing(tmp_path):
    before = open_fds()
    with pytest.raises(OSError):
        spawn.start([str(tmp_path / "missing")], {})
    assert open_fds() == before


def test_memfds_are_closed_once_waited():
    before = open_fds()
    child = spawn.start([SH, "-c", "echo hi"], {}, b"in")
    assert len(open_fds() - before) == 2          # stdout and stderr only
    child.wait()
    assert open_fds() == before


def test_exception_between_start_and_wait_leaves_no_zombie():
    """Leaving the `with` block on an exception waits for the child (it
    finishes its work: a firewall batch is not cut off half-way)."""
    with pytest.raises(RuntimeError):
        with spawn.start([SH, "-c", "sleep 0.2; exit 4"], {}) as child:
            raise RuntimeError("the netlink work failed")
    assert child.done and child.wait()[0] == 4
    assert reaped(child.pid)


def test_interrupted_wait_kills_and_reaps(tmp_path):
    """An exception while waiting (here: a signal handler raising, as
    KeyboardInterrupt does) kills the child and reaps it, as run() does."""
    class Interrupted(Exception):
        pass

    def interrupt(signum, frame):
        raise Interrupted

    child = spawn.start(["/bin/sleep", "30"], {})
    old = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.1)
    try:
        with pytest.raises(Interrupted):
            child.wait()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert child.done and reaped(child.pid)
    assert child.wait() == (-9, b"", b"")


def test_two_children_run_at_the_same_time(tmp_path):
    """The point of start: the first child is still running while the
    second is started (it waits for what the second writes to a fifo)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = spawn.start(["/usr/bin/timeout", "20", SH, "-c", f"read x < {fifo}; echo $x"], {})
    writer = spawn.start([SH, "-c", f"echo handed-over > {fifo}"], {})
    assert writer.wait()[0] == 0
    assert reader.wait() == (0, b"handed-over\n", b"")


def test_run_is_start_plus_wait():
    assert spawn.run([SH, "-c", "cat; exit 5"], {}, b"x") == (5, b"x", b"")
