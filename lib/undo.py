"""Undo on failure: pycni's one rollback idiom (issue #17).

A command that changes several things (an ADD: a link, an IPAM
allocation, firewall rules, ...) must leave nothing behind when a later
step fails. Each step that changed something pushes the action that
undoes it; the command commits once nothing can fail any more:

    with undo.Stack("bridge") as stack:
        pair = veth.setup_veth(...)
        stack.push(netlink.delete_link, nl, pair.host.index, what="deleting the veth")
        ipam_result = invoke.ipam_add(req, ipam_type, stack)
        ...
        stack.commit()
        return result

It is the counterpart of the reference's `success := false` + `defer
func() { if !success { undo() } }()` and of `contextlib.ExitStack`
(which a plugin path may not import: contextlib loads `collections` and
`functools`; tests/unit/test_import_sets.py).

The rules (tests/unit/test_undo.py pins each):
- Leaving the block without `commit()` runs every pushed action, last
  pushed first; then the exception that ended the block propagates
  unchanged. Any exception counts, KeyboardInterrupt and SystemExit
  included: an interrupted ADD leaves nothing either. A normal exit
  without `commit()` undoes too (as the Go defer and ExitStack do): a
  return path must commit first, so a forgotten commit shows at once.
- An action that fails (any Exception) is reported on stderr as
  "<name>: rollback: <what> failed: <error>" and the remaining actions
  still run: a failed undo never hides the error that caused the
  rollback. A KeyboardInterrupt or SystemExit raised by an action does
  not stop the rollback either; once every action ran it propagates
  (the interrupt wins; the error it interrupted is its __context__).
- `commit()` drops the actions: nothing runs after it, and pushing onto
  a committed stack is a programming error (RuntimeError).
- Stacks nest: an inner block that fails undoes its own actions, then
  the outer block's; an inner block that commits hands nothing to the
  outer one. Helpers that belong to one command take the command's stack
  as a parameter rather than opening their own.

Resources that must be released whatever happens (sockets, file
descriptors) are not undo actions: `with` and `finally` close them.
"""

import sys


class Stack:
    """The undo actions of one command, run in reverse order unless the
    command commits; a context manager (see the module docstring)."""

    __slots__ = ("name", "_actions", "_committed")

    def __init__(self, name: str = "pycni"):
        self.name = name
        self._actions: list = []
        self._committed = False

    def __enter__(self) -> "Stack":
        return self

    def push(self, fn, *args, what: str = "") -> None:
        """Undo with `fn(*args)` if the command fails; `what` names the
        action in the report of its own failure (default: fn's name)."""
        if self._committed:
            raise RuntimeError("undo.Stack: push after commit")
        self._actions.append((fn, args, what))

    def commit(self) -> None:
        """The command succeeded: keep everything, undo nothing."""
        self._committed = True
        self._actions = []

    def rollback(self) -> None:
        """Run every pushed action now, last first, and forget them; what
        a failed action raised is reported (an interrupt is re-raised
        after the others ran). __exit__ calls it; so may a caller that
        must undo before it raises its own error."""
        actions, self._actions = self._actions, []
        interrupt = None
        for fn, args, what in reversed(actions):
            try:
                fn(*args)
            except Exception as err:
                self._report(what or getattr(fn, "__name__", repr(fn)), err)
            except BaseException as err:   # KeyboardInterrupt, SystemExit: finish first
                if interrupt is None:
                    interrupt = err
        if interrupt is not None:
            raise interrupt

    def _report(self, what: str, err: BaseException) -> None:
        try:
            sys.stderr.write(f"{self.name}: rollback: {what} failed: {err}\n")
        except Exception:
            pass    # stderr closed: the original error still matters more

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._committed:
            self.rollback()
