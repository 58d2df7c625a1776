"""pycni.posixos against `os`: every path helper on plain and symlinked
trees (no root needed), and what a plugin process loads."""

import os
import posixpath
import subprocess
import sys

import pytest

from pycni import posixos

PATHS = ["", "/", "//", "///", "a", "/a", "a/", "/a/", "a/b", "/a/b/", "a//b", "//a//b//",
         ".", "..", "./a", "../a", "a/./b", "a/../b", "/../a", "/a/../../b", "a/b/..",
         "../../a/..", ".bashrc", "/x/.bashrc", "a.b/c", "a/b.tar.gz", "a/.b.c", "a/b.",
         "...", "/.../x", "a/..b"]


@pytest.mark.parametrize("p", PATHS)
def test_pure_helpers_match_posixpath(p):
    for name in ("split", "dirname", "basename", "splitext", "isabs", "normpath"):
        assert getattr(posixos.path, name)(p) == getattr(posixpath, name)(p), (name, p)


@pytest.mark.parametrize("parts", [("a",), ("a", "b"), ("a/", "b"), ("a", "/b"), ("", "b"),
                                   ("a", ""), ("/", "x", "y/"), ("a", "b", "/c", "d"),
                                   ("a//", "/", "c")])
def test_join_matches_posixpath(parts):
    assert posixos.path.join(*parts) == posixpath.join(*parts)


def test_abspath_matches(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for p in PATHS:
        assert posixos.path.abspath(p) == posixpath.abspath(p), p


@pytest.fixture
def tree(tmp_path):
    """A tree of links: relative, absolute, chained, dangling, looping,
    pointing up, to files and to directories."""
    t = tmp_path
    (t / "d" / "e").mkdir(parents=True)
    (t / "d" / "f").write_text("x")
    os.symlink("d", t / "rel")
    os.symlink(str(t / "d"), t / "abs")
    os.symlink("rel/e", t / "chain")
    os.symlink("nowhere/x", t / "dangling")
    os.symlink("loop2", t / "loop1")
    os.symlink("loop1", t / "loop2")
    os.symlink("..", t / "d" / "up")
    os.symlink("../d/f", t / "d" / "e" / "tofile")
    os.symlink("self", t / "self")
    os.symlink("/", t / "root")
    return t


REL = ["d", "rel", "abs", "chain", "dangling", "loop1", "loop2/x", "d/up/d/e", "d/e/tofile",
       "rel/../rel/e/..", "chain/../f", "self", "self/x", "root", "root/proc/..", "missing/../d",
       "rel/e/tofile/..", "abs/up/abs", "d//e/./", "dangling/../d"]


@pytest.mark.parametrize("rel", REL)
def test_realpath_matches_os(tree, rel, monkeypatch):
    assert posixos.path.realpath(str(tree / rel)) == os.path.realpath(str(tree / rel))
    monkeypatch.chdir(tree)
    assert posixos.path.realpath(rel) == os.path.realpath(rel)


@pytest.mark.parametrize("rel", REL + ["d/f", "nothing"])
def test_predicates_match_os(tree, rel):
    p = str(tree / rel)
    for name in ("exists", "lexists", "isfile", "isdir", "islink"):
        assert getattr(posixos.path, name)(p) == getattr(os.path, name)(p), (name, rel)
    assert not posixos.path.exists("a\0b") and not posixos.path.isdir("a\0b")


def test_system_calls_are_posix():
    assert posixos.open is os.open and posixos.O_NOFOLLOW == os.O_NOFOLLOW
    assert posixos._exit is os._exit and posixos.SEEK_SET == os.SEEK_SET
    assert posixos.sep == os.sep and posixos.pathsep == os.pathsep
    assert posixos.devnull == os.devnull


class _St:
    def __init__(self, uid, mode):
        self.st_uid, self.st_mode = uid, mode


@pytest.mark.parametrize("mode, others", [(0o100644, False), (0o100600, False),
                                          (0o100664, True), (0o100646, True),
                                          (0o040755, False), (0o041777, True),
                                          (0o100700, False), (0o104755, False)])
def test_others_can_write_is_the_group_and_other_write_bits(mode, others):
    assert posixos.others_can_write(_St(0, mode)) is others
    assert posixos.held_only_by(_St(0, mode), (0,)) is not others


def test_held_only_by_wants_one_of_the_owners(tmp_path):
    assert posixos.held_only_by(_St(1000, 0o100644), (0, 1000))
    assert not posixos.held_only_by(_St(1000, 0o100644), (0,))
    assert not posixos.held_only_by(_St(0, 0o100664), (0, 1000))
    target = tmp_path / "f"
    target.write_text("")
    os.chmod(target, 0o644)
    st = os.stat(target)
    assert posixos.held_only_by(st, (os.geteuid(),))
    os.chmod(target, 0o666)
    assert not posixos.held_only_by(os.stat(target), (os.geteuid(),))


def test_environ_is_os_environ_where_os_is_loaded(monkeypatch):
    assert posixos.environ is os.environ
    monkeypatch.setenv("PYCNI_POSIXOS_TEST", "1")
    assert posixos.environ["PYCNI_POSIXOS_TEST"] == "1"


def test_plugin_process_gets_the_environment_without_os():
    code = ("import sys; sys.path[:0] = [sys.argv[1]]\n"
            "from pycni import posixos\n"
            "print(repr(posixos.environ.get('PYCNI_X')), 'os' in sys.modules,"
            " '_collections_abc' in sys.modules)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(posixos.__file__)))
    env = {"PYCNI_X": "caf\u00e9", "PATH": "/usr/bin"}
    env_bytes = {k.encode(): v.encode() for k, v in env.items()}
    env_bytes[b"PYCNI_Y"] = b"\xff"
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code, root], env=env_bytes,
                         capture_output=True, check=True).stdout.decode()
    assert out.split() == ["'caf\u00e9'", "False", "False"]
