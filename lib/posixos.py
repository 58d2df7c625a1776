"""`os` for plugin processes: the `posix` built-in and the few path helpers
pycni uses, without importing `os`.

Under `python -I -S` the interpreter has not imported `os` yet, and
importing it costs ~1.7 ms of every plugin call (it loads `stat`,
`posixpath`, `genericpath` and `_collections_abc`, whose ~25 abstract
base classes are most of it; issue #12). The system calls pycni uses are
all `posix` functions that `os` merely re-exports, so modules on a
plugin path write

    from . import posixos as os

and keep calling `os.open`, `os.path.join`, ... Outside a plugin process
(tests, the CLI), where `os` is loaded anyway, `environ` is `os.environ`
itself, so changes to the environment are seen the same way.

What differs from `os`, on purpose: only the names below exist (the
`posix` functions and constants, `environ`, `path` with `join`,
`dirname`, `basename`, `split`, `splitext`, `isabs`, `normpath`,
`abspath`, `realpath`, `exists`, `lexists`, `isfile`, `isdir`, `islink`),
paths are `str` only, and `environ` in a plugin process is a plain dict
of the environment at start (decoded as `os.environ` decodes it:
the filesystem encoding with surrogateescape). `realpath` resolves like
`os.path.realpath(path)` (non-strict: a missing component is kept as
written; a symlink loop stops resolution there);
tests/unit/test_posixos.py compares each helper with `os.path` on real
trees of links.

Beyond `os`: `others_can_write` and `held_only_by` (at the end).
"""

import sys
from posix import *          # noqa: F401,F403  (the system calls and constants)
from posix import _exit      # noqa: F401  (not exported by *)
import posix as _posix

sep = "/"
pathsep = ":"
curdir = "."
pardir = ".."
devnull = "/dev/null"
SEEK_SET, SEEK_CUR, SEEK_END = 0, 1, 2

_os = sys.modules.get("os")
if _os is not None:
    environ = _os.environ
else:
    _enc = sys.getfilesystemencoding()
    environ = {k.decode(_enc, "surrogateescape"): v.decode(_enc, "surrogateescape")  # type: ignore[misc]
               for k, v in _posix.environ.items()}
del _os

_S_IFMT, _S_IFDIR, _S_IFREG, _S_IFLNK = 0o170000, 0o040000, 0o100000, 0o120000


class path:
    """The `os.path` functions pycni uses, for str paths on POSIX."""

    sep = "/"

    @staticmethod
    def join(a: str, *parts: str) -> str:
        out = a
        for b in parts:
            if b.startswith("/"):
                out = b
            elif not out or out.endswith("/"):
                out += b
            else:
                out += "/" + b
        return out

    @staticmethod
    def split(p: str) -> tuple[str, str]:
        i = p.rfind("/") + 1
        head, tail = p[:i], p[i:]
        if head and head != "/" * len(head):
            head = head.rstrip("/")
        return head, tail

    @staticmethod
    def dirname(p: str) -> str:
        return path.split(p)[0]

    @staticmethod
    def basename(p: str) -> str:
        return p[p.rfind("/") + 1:]

    @staticmethod
    def splitext(p: str) -> tuple[str, str]:
        name_start = p.rfind("/") + 1
        dot = p.rfind(".")
        if dot > name_start:
            # a leading dot (".bashrc") is part of the name, not an extension
            if p[name_start:dot].strip("."):
                return p[:dot], p[dot:]
        return p, ""

    @staticmethod
    def isabs(p: str) -> bool:
        return p.startswith("/")

    @staticmethod
    def normpath(p: str) -> str:
        return _posix._path_normpath(p) or "."  # type: ignore[attr-defined]  # os.path's own C code

    @staticmethod
    def abspath(p: str) -> str:
        if not p.startswith("/"):
            p = path.join(_posix.getcwd(), p)
        return path.normpath(p)

    @staticmethod
    def realpath(p: str) -> str:
        """`os.path.realpath(p)`: absolute, symlinks resolved as far as
        the components exist."""
        return path.abspath(path._resolve("", p, {})[0])

    @staticmethod
    def _resolve(base: str, rest: str, seen: dict) -> tuple[str, bool]:
        """(`base` joined with `rest`, symlinks resolved; False when a
        loop stopped the resolution). `seen` maps each symlink met to its
        resolution, None while it is being resolved."""
        if rest.startswith("/"):
            base, rest = "/", rest[1:]
        while rest:
            name, _, rest = rest.partition("/")
            if not name or name == ".":
                continue
            if name == "..":
                if not base:
                    base = ".."
                else:
                    base, last = path.split(base)
                    if last == "..":
                        base = path.join(base, "..", "..")
                continue
            candidate = path.join(base, name)
            try:
                is_link = _posix.lstat(candidate).st_mode & _S_IFMT == _S_IFLNK
            except OSError:
                is_link = False              # missing: kept as written
            if not is_link:
                base = candidate
                continue
            if candidate in seen:
                known = seen[candidate]
                if known is None:            # a loop: the rest stays as written
                    return path.join(candidate, rest), False
                base = known
                continue
            seen[candidate] = None
            base, ok = path._resolve(base, _posix.readlink(candidate), seen)
            if not ok:
                return path.join(base, rest), False
            seen[candidate] = base
        return base, True

    @staticmethod
    def lexists(p: str) -> bool:
        return path._mode(p, follow=False) != -1

    @staticmethod
    def exists(p: str) -> bool:
        return path._mode(p) != -1

    @staticmethod
    def _mode(p: str, follow: bool = True) -> int:
        try:
            return (_posix.stat(p) if follow else _posix.lstat(p)).st_mode & _S_IFMT
        except (OSError, ValueError):
            return -1

    @staticmethod
    def isfile(p: str) -> bool:
        return path._mode(p) == _S_IFREG

    @staticmethod
    def isdir(p: str) -> bool:
        return path._mode(p) == _S_IFDIR

    @staticmethod
    def islink(p: str) -> bool:
        return path._mode(p, follow=False) == _S_IFLNK


# The one test of "only its owner can change this file or directory" that
# every reader of a trusted file (node config, log directory, bundle,
# manifest, cache, lock) applies to what it fstat'ed. Here because every
# module that needs it already imports this one; plugin-path modules call
# it as `os.held_only_by(...)` (a `from .posixos import` would cost an
# import statement per module, ~10k instructions on an ADD).
_OTHERS_WRITE = 0o022       # S_IWGRP | S_IWOTH (POSIX ACL entries show in the group bits)


def others_can_write(st) -> bool:
    """Whether the group or others may write the entry stat result `st`
    describes (its owner is not the only one who can change it)."""
    return bool(st.st_mode & _OTHERS_WRITE)


def held_only_by(st, owners) -> bool:
    """Whether the entry `st` describes is owned by one of the uids
    `owners` and writable by no one else."""
    return st.st_uid in owners and not st.st_mode & _OTHERS_WRITE
