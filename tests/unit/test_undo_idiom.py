"""The house rollback idiom, checked (issue #17, CONTRIBUTING "Rollback"):
a plugin's command undoes its steps with pycni.undo.Stack, not with
handlers of its own that catch everything, undo and re-raise."""

import ast
import glob
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGIN_MODULES = sorted(glob.glob(os.path.join(ROOT, "plugins", "*", "plugin.py")) +
                        glob.glob(os.path.join(ROOT, "ipam", "*", "plugin.py")))
# ADDs that change more than one thing: each rolls back with a Stack.
USES_STACK = ["bandwidth", "bridge", "host_device", "macvlan", "ptp", "sbr", "tap", "tuning"]


def _catch_all_reraisers(tree: ast.AST) -> list[int]:
    """Lines of `except BaseException:` / bare `except:` handlers that end
    in a bare `raise`: a rollback written by hand."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ExceptHandler):
            continue
        catch_all = node.type is None or (isinstance(node.type, ast.Name)
                                          and node.type.id == "BaseException")
        reraises = node.body and isinstance(node.body[-1], ast.Raise) and \
            node.body[-1].exc is None
        if catch_all and reraises:
            lines.append(node.lineno)
    return lines


def _rel(path: str) -> str:
    return os.path.relpath(path, ROOT)


@pytest.mark.parametrize("path", PLUGIN_MODULES, ids=_rel)
def test_no_hand_written_rollback(path):
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    assert _catch_all_reraisers(tree) == [], \
        f"{_rel(path)}: roll back with pycni.undo.Stack (CONTRIBUTING: Rollback)"


@pytest.mark.parametrize("plugin", USES_STACK)
def test_multi_step_adds_use_the_stack(plugin):
    path = os.path.join(ROOT, "plugins", plugin, "plugin.py")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    assert "undo.Stack(" in text and "stack.commit()" in text


def test_the_checker_sees_a_hand_written_rollback():
    tree = ast.parse("try:\n    step()\nexcept BaseException:\n    undo()\n    raise\n"
                     "try:\n    step()\nexcept BaseException as e:\n    log(e)\n")
    assert _catch_all_reraisers(tree) == [3]
