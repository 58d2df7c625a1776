"""pycni.undo.Stack, the one rollback idiom (issue #17): order, commit,
failures during undo, nesting, interrupts, and invoke.ipam_add on top."""

import subprocess
import sys

import pytest

from pycni import invoke, undo
from pycni.errors import CNIError, INTERNAL


class Boom(Exception):
    pass


def recorder():
    calls = []

    def action(*args):
        calls.append(args)
    return calls, action


def test_exception_runs_actions_last_first_and_propagates_unchanged():
    calls, action = recorder()
    err = Boom("step 3 failed")
    with pytest.raises(Boom) as info:
        with undo.Stack("t") as stack:
            stack.push(action, 1)
            stack.push(action, 2, "b")
            stack.push(action)
            raise err
    assert info.value is err
    assert calls == [(), (2, "b"), (1,)]


def test_commit_keeps_everything():
    calls, action = recorder()
    with undo.Stack("t") as stack:
        stack.push(action, 1)
        stack.commit()
    assert calls == []


def test_exception_after_commit_undoes_nothing():
    calls, action = recorder()
    with pytest.raises(Boom):
        with undo.Stack("t") as stack:
            stack.push(action, 1)
            stack.commit()
            raise Boom()
    assert calls == []


def test_return_without_commit_undoes():
    """As the Go defer without `success = true` and ExitStack without
    pop_all: a return path that forgets commit() shows at once."""
    calls, action = recorder()

    def add():
        with undo.Stack("t") as stack:
            stack.push(action, "link")
            return "result"
    assert add() == "result"
    assert calls == [("link",)]


def test_return_after_commit_inside_block_keeps():
    calls, action = recorder()

    def add():
        with undo.Stack("t") as stack:
            stack.push(action, "link")
            stack.commit()
            return "result"
    assert add() == "result"
    assert calls == []


def test_failing_action_is_reported_and_the_rest_still_run(capsys):
    calls, action = recorder()

    def broken(what):
        calls.append(("broken", what))
        raise OSError(19, "No such device")

    def cni_broken():
        raise CNIError(INTERNAL, "locked", "by someone")

    with pytest.raises(Boom) as info:
        with undo.Stack("bridge") as stack:
            stack.push(action, 1)
            stack.push(broken, "veth", what="deleting veth1")
            stack.push(cni_broken)
            stack.push(action, 4)
            raise Boom("original")
    assert str(info.value) == "original"
    assert calls == [(4,), ("broken", "veth"), (1,)]
    err = capsys.readouterr().err.splitlines()
    assert err == ["bridge: rollback: cni_broken failed: locked; by someone",
                   "bridge: rollback: deleting veth1 failed: [Errno 19] No such device"]


def test_nothing_on_stdout(capfd):
    def broken():
        raise OSError(1, "nope")
    with pytest.raises(Boom):
        with undo.Stack("t") as stack:
            stack.push(broken)
            raise Boom()
    out, err = capfd.readouterr()
    assert out == "" and "nope" in err


def test_push_after_commit_is_a_programming_error():
    stack = undo.Stack("t")
    stack.commit()
    with pytest.raises(RuntimeError):
        stack.push(print)


def test_commit_twice_is_harmless():
    with undo.Stack("t") as stack:
        stack.commit()
        stack.commit()


def test_explicit_rollback_runs_once():
    calls, action = recorder()
    with undo.Stack("t") as stack:
        stack.push(action, 1)
        stack.rollback()
        assert calls == [(1,)]
        stack.push(action, 2)
        stack.commit()
    assert calls == [(1,)]


def test_nested_inner_failure_undoes_inner_then_outer():
    calls, action = recorder()
    with pytest.raises(Boom):
        with undo.Stack("outer") as outer:
            outer.push(action, "outer 1")
            with undo.Stack("inner") as inner:
                inner.push(action, "inner 1")
                inner.push(action, "inner 2")
                raise Boom()
    assert calls == [("inner 2",), ("inner 1",), ("outer 1",)]


def test_nested_inner_commit_hands_nothing_to_outer():
    calls, action = recorder()
    with pytest.raises(Boom):
        with undo.Stack("outer") as outer:
            outer.push(action, "outer 1")
            with undo.Stack("inner") as inner:
                inner.push(action, "inner 1")
                inner.commit()
            outer.push(action, "outer 2")
            raise Boom()
    assert calls == [("outer 2",), ("outer 1",)]


def test_one_stack_passed_down_to_helpers():
    """The house style: helpers of one command push onto its stack."""
    calls, action = recorder()

    def make_link(stack):
        stack.push(action, "delete link")

    def allocate(stack):
        stack.push(action, "release")
        raise CNIError(INTERNAL, "IPAM plugin returned missing IP config")

    with pytest.raises(CNIError):
        with undo.Stack("t") as stack:
            make_link(stack)
            allocate(stack)
            stack.commit()
    assert calls == [("release",), ("delete link",)]


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(2)])
def test_interrupt_in_the_block_undoes_and_propagates(exc):
    calls, action = recorder()
    with pytest.raises(type(exc)) as info:
        with undo.Stack("t") as stack:
            stack.push(action, 1)
            stack.push(action, 2)
            raise exc
    assert info.value is exc
    assert calls == [(2,), (1,)]


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(2)])
def test_interrupt_in_an_action_finishes_the_rollback_then_wins(exc, capsys):
    calls, action = recorder()

    def interrupted():
        calls.append("interrupted")
        raise exc

    original = Boom("original")
    with pytest.raises(type(exc)) as info:
        with undo.Stack("t") as stack:
            stack.push(action, 1)
            stack.push(interrupted)
            stack.push(action, 3)
            raise original
    assert info.value is exc
    assert info.value.__context__ is original
    assert calls == [(3,), "interrupted", (1,)]
    assert capsys.readouterr().err == ""    # not a failure of the undo: an interrupt


def test_interrupt_in_an_action_after_normal_exit():
    calls, action = recorder()

    def interrupted():
        raise KeyboardInterrupt()

    with pytest.raises(KeyboardInterrupt):
        with undo.Stack("t") as stack:
            stack.push(action, 1)
            stack.push(interrupted)
    assert calls == [(1,)]


def test_a_closed_stderr_does_not_hide_the_original(monkeypatch):
    class Closed:
        def write(self, text):
            raise ValueError("I/O operation on closed file")
    monkeypatch.setattr(sys, "stderr", Closed())

    def broken():
        raise OSError(5, "EIO")
    with pytest.raises(Boom):
        with undo.Stack("t") as stack:
            stack.push(broken)
            raise Boom()


def test_loads_nothing_a_plugin_path_may_not():
    code = ("import sys; before = set(sys.modules); import pycni.undo; "
            "print(sorted(set(sys.modules) - before))")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True,
                         text=True, check=True, env={"PYTHONPATH": ":".join(sys.path)})
    assert eval(out.stdout) == ["pycni", "pycni.undo"]


# --- invoke.ipam_add: the IPAM allocation as an undo action -----------------------

class FakeReq:
    cni_version = "1.0.0"


def test_ipam_add_pushes_the_release(monkeypatch):
    calls = []
    monkeypatch.setattr(invoke, "delegate_add", lambda req, t: calls.append(("ADD", t)) or "R")
    monkeypatch.setattr(invoke, "delegate_del", lambda req, t: calls.append(("DEL", t)))
    with pytest.raises(Boom):
        with undo.Stack("t") as stack:
            assert invoke.ipam_add(FakeReq(), "host-local", stack) == "R"
            raise Boom()
    assert calls == [("ADD", "host-local"), ("DEL", "host-local")]


def test_ipam_add_kept_on_commit(monkeypatch):
    calls = []
    monkeypatch.setattr(invoke, "delegate_add", lambda req, t: calls.append(("ADD", t)) or "R")
    monkeypatch.setattr(invoke, "delegate_del", lambda req, t: calls.append(("DEL", t)))
    with undo.Stack("t") as stack:
        invoke.ipam_add(FakeReq(), "host-local", stack)
        stack.commit()
    assert calls == [("ADD", "host-local")]


def test_ipam_add_that_fails_pushes_nothing(monkeypatch):
    calls = []

    def failing(req, t):
        raise CNIError(INTERNAL, "no addresses left")
    monkeypatch.setattr(invoke, "delegate_add", failing)
    monkeypatch.setattr(invoke, "delegate_del", lambda req, t: calls.append(("DEL", t)))
    with pytest.raises(CNIError):
        with undo.Stack("t") as stack:
            invoke.ipam_add(FakeReq(), "host-local", stack)
    assert calls == []


def test_ipam_release_failure_is_reported_not_raised(monkeypatch, capsys):
    monkeypatch.setattr(invoke, "delegate_add", lambda req, t: "R")

    def del_fails(req, t):
        raise CNIError(11, "locked")
    monkeypatch.setattr(invoke, "delegate_del", del_fails)
    with pytest.raises(Boom):
        with undo.Stack("macvlan") as stack:
            invoke.ipam_add(FakeReq(), "host-local", stack)
            raise Boom()
    assert capsys.readouterr().err == \
        "macvlan: rollback: releasing the IPAM allocation failed: locked\n"
