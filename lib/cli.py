"""The `pycni` command: install plugin executables, list them.

    pycni install --dir /opt/cni/bin    one executable per plugin
    pycni list                          plugin names and their modules

An installed plugin is a tiny launcher script (see launcher.py) that a
container runtime runs as root. `install` therefore refuses, before writing
anything, an installation that someone other than root could change (when
run by another user: other than root and that user):

  * what is checked: the interpreter (each symlink on the way to it, its
    pyvenv.cfg and its shared libpython), every directory on the launcher's import path (the
    interpreter's standard library as `python -I -S` sees it, recursively,
    and the directory holding pycni), every file of the pycni package, and
    the --dir, each with all of its ancestor directories up to /;
  * the rule, for each of them: owned by a trusted user and not writable by
    group or others (POSIX ACL entries show in the group bits, so they are
    covered). A symlink must be owned by a trusted user; its target is
    checked the same way. An ancestor directory writable by others is
    accepted only when it is sticky (like /tmp): then only the owners of
    its entries can rename or delete them, and the entry we rely on is
    itself checked. The directories themselves (--dir, an import path
    directory, anything inside pycni) may not be sticky-and-writable:
    others could add a plugin or a module beside ours;
  * a path that does not exist yet (a standard-library entry such as
    python311.zip, a --dir to create) is fine when its nearest existing
    ancestor passes: no one else can create it.

The check runs once, at install time (about 70 ms, most of it the walk of
the standard library). Launchers do not repeat it: by the time a launcher's
first line runs, the interpreter and its start-up modules have already been
loaded from the very paths it would check, so it could only notice
permissions loosened after install, by root, and even a directories-only
re-check costs ~50 us per call (all files: milliseconds). Directories that
install creates are 0755 and launchers 0755 whatever the umask; launchers
are written to an O_EXCL|O_NOFOLLOW temporary file in --dir and renamed
into place, relative to a descriptor of the checked directory.
"""

import argparse
import os
import stat
import sys

from .launcher import import_paths, launcher_text
from .registry import PLUGINS

MAX_SYMLINKS = 40
# Linux reads at most 256 bytes of a `#!` line (BINPRM_BUF_SIZE).
MAX_SHEBANG = 255
# Import paths are searched by module name; these subdirectories are not
# names a module can have, and hold third-party code the plugins never import.
NOT_STDLIB = ("site-packages", "dist-packages")


class InstallRefused(Exception):
    """The installation could be changed by someone we must not trust."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def trusted_owners() -> frozenset[int]:
    """Who may own what a launcher runs: root, and the installing user."""
    return frozenset({0, os.geteuid()})


def entry_problem(path: str, st: os.stat_result, owners, ancestor: bool = False) -> str | None:
    """Why one file system entry (lstat'ed) is not trustworthy, or None.
    `ancestor`: `path` is only walked through on the way to what we use."""
    if st.st_uid not in owners:
        return f"{path} is owned by uid {st.st_uid}, not by root or the installing user"
    if stat.S_ISLNK(st.st_mode):
        return None     # a symlink's own mode bits mean nothing
    if st.st_mode & 0o022:
        if ancestor and stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX:
            return None     # sticky: others cannot replace entries they do not own
        return (f"{path} is writable by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o})")
    return None


def check_path(path: str, owners, problems: list[str], allow_missing: bool = False) -> str | None:
    """Check `path` and everything the kernel walks to reach it: each
    ancestor directory, each symlink and its target's ancestors. Appends
    what is wrong to `problems`; returns the resolved path (None when it
    does not exist)."""
    pending = [p for p in os.path.abspath(path).split("/") if p]
    current = "/"
    problem = entry_problem("/", os.lstat("/"), owners, ancestor=bool(pending))
    if problem:
        problems.append(problem)
    links = 0
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            if not allow_missing:
                problems.append(f"{candidate} does not exist")
            return None
        except OSError as err:
            problems.append(f"{candidate}: {err.strerror}")
            return None
        problem = entry_problem(candidate, st, owners, ancestor=bool(pending))
        if problem:
            problems.append(problem)
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_SYMLINKS:
                problems.append(f"{path}: too many levels of symbolic links")
                return None
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = "/"
            pending[:0] = [p for p in target.split("/") if p]
            continue
        if pending and not stat.S_ISDIR(st.st_mode):
            problems.append(f"{candidate} is not a directory")
            return None
        current = candidate
    return current


def check_tree(top: str, owners, problems: list[str], skip=()) -> None:
    """Check every entry below the (already checked) directory `top`."""
    def failed(err):
        problems.append(f"{err.filename}: {err.strerror}")

    for root, dirs, files, in os.walk(top, onerror=failed):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in dirs + files:
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
            except OSError as err:
                problems.append(f"{path}: {err.strerror}")
                continue
            problem = entry_problem(path, st, owners)
            if problem:
                problems.append(problem)
            elif stat.S_ISLNK(st.st_mode):
                check_path(path, owners, problems, allow_missing=True)


INTERPRETER_FACTS = """import os, sys, sysconfig
v = sysconfig.get_config_var
lib = ""
if v("Py_ENABLE_SHARED") and v("LIBDIR") and v("INSTSONAME"):
    lib = os.path.join(v("LIBDIR"), v("INSTSONAME"))
print(repr((sys.path, sys.implementation.cache_tag, lib)))
"""


def interpreter_facts(python: str) -> tuple[list[str], str, str]:
    """What `python -I -S` runs with: its sys.path (the standard library the
    launcher sees), its bytecode cache tag and its shared libpython ('' if
    linked statically)."""
    import ast
    import subprocess
    proc = subprocess.run([python, "-I", "-S", "-c", INTERPRETER_FACTS], env={},
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60)
    if proc.returncode != 0:
        raise InstallRefused([f"{python} -I -S does not run: {proc.stderr.strip()}"])
    return ast.literal_eval(proc.stdout.strip().splitlines()[-1])


def installation_problems(python: str, directory: str, owners,
                          warnings: list[str] | None = None) -> list[str]:
    """Everything that makes this installation untrustworthy (empty: none);
    what only makes it slow goes to `warnings`."""
    problems: list[str] = []
    if (len(f"#!{python} -ISB") > MAX_SHEBANG or not python.startswith("/")
            or not python.isprintable() or any(c.isspace() for c in python)):
        return [f"interpreter path {python!r} cannot be a #! line "
                "(must be absolute, printable, without blanks, short)"]
    real = check_path(python, owners, problems)
    if real is not None and not (os.path.isfile(real) and os.access(real, os.X_OK)):
        problems.append(f"{python} is not an executable file")
    for venv_dir in {os.path.dirname(python), os.path.dirname(os.path.dirname(python))}:
        cfg = os.path.join(venv_dir, "pyvenv.cfg")
        if os.path.lexists(cfg):
            check_path(cfg, owners, problems)
    if problems:
        return problems
    stdlib, cache_tag, libpython = interpreter_facts(python)
    if libpython:
        check_path(libpython, owners, problems, allow_missing=True)
    for entry in stdlib:
        real = check_path(entry, owners, problems, allow_missing=True)
        if real is not None and os.path.isdir(real):
            check_tree(real, owners, problems, skip=NOT_STDLIB)
    for entry in import_paths():
        package = os.path.join(entry, "pycni")
        if not os.path.isfile(os.path.join(package, "__init__.py")):
            problems.append(f"{entry} holds no pycni package (an editable install?): "
                            "the launchers could not import it")
            continue
        check_path(entry, owners, problems)
        real = check_path(package, owners, problems)
        if real is not None:
            check_tree(real, owners, problems)
            pyc = os.path.join(real, "__pycache__", f"__init__.{cache_tag}.pyc")
            if cache_tag and not os.path.exists(pyc) and warnings is not None:
                warnings.append(f"{package} is not byte-compiled for {python}: the "
                                "launchers (which never write bytecode) will compile it "
                                f"on every call; run `{python} -m compileall {package}`")
    real = check_path(directory, owners, problems, allow_missing=True)
    if real is not None and not os.path.isdir(real):
        problems.append(f"{directory} is not a directory")
    return problems


def make_dirs(directory: str) -> None:
    """Create `directory` and missing parents 0755, whatever the umask; an
    entry that appears meanwhile is re-checked by the caller."""
    missing = []
    path = os.path.abspath(directory)
    while not os.path.lexists(path):
        missing.append(path)
        path = os.path.dirname(path)
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            continue
        os.chmod(path, 0o755, follow_symlinks=False)


def write_launcher(dir_fd: int, name: str, text: str) -> None:
    """Write launcher `name` in the directory `dir_fd` (see write_entry), 0755."""
    write_entry(dir_fd, name, text.encode(), 0o755)


def write_entry(dir_fd: int, name: str, data: bytes, mode: int) -> None:
    """Write file `name` in the directory `dir_fd`: a new temporary file
    (O_EXCL|O_NOFOLLOW), `mode`, renamed over `name` (a runtime never sees
    half a file; a symlink at `name` is replaced, not followed)."""
    tmp = f".{name}.pycni-tmp{os.getpid()}-{os.urandom(4).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o700, dir_fd=dir_fd)
    try:
        os.fchmod(fd, mode)
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise


def install(directory: str, names=None, python: str | None = None) -> list[str]:
    """Write the launchers into `directory`; InstallRefused, with nothing
    written, when the installation is not trustworthy."""
    python = os.path.abspath(python or sys.executable)
    directory = os.path.abspath(directory)
    owners = trusted_owners()
    warnings: list[str] = []
    problems = installation_problems(python, directory, owners, warnings)
    if problems:
        raise InstallRefused(problems)
    for warning in warnings:
        sys.stderr.write(f"pycni install: warning: {warning}\n")
    make_dirs(directory)
    # Checked again now that it exists: an entry someone created meanwhile
    # (in a sticky /tmp, say) must not be used.
    real = check_path(directory, owners, problems)
    if problems:
        raise InstallRefused(problems)
    dir_fd = os.open(real, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(dir_fd)
        problem = entry_problem(real, st, owners)
        if problem:
            raise InstallRefused([problem])
        import pycni
        from . import bundle
        data = bundle.build_for(python, os.path.dirname(os.path.abspath(pycni.__file__)))
        if data is not None:
            write_entry(dir_fd, bundle.FILE_NAME, data, 0o644)
        else:
            sys.stderr.write(f"pycni install: warning: {python} could not compile "
                             f"{bundle.FILE_NAME}; the launchers import pycni's files\n")
            try:
                os.unlink(bundle.FILE_NAME, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
        written = []
        for name in names or PLUGINS:
            write_launcher(dir_fd, name, launcher_text(name, directory, python))
            written.append(os.path.join(directory, name))
        return written
    finally:
        os.close(dir_fd)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="pycni", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_install = sub.add_parser("install", help="write plugin executables into a directory")
    p_install.add_argument("--dir", required=True, help="e.g. /opt/cni/bin")
    p_install.add_argument("--python", help="interpreter for the launchers "
                           "(default: this one)")
    p_install.add_argument("plugins", nargs="*", help="only these (default: all)")
    sub.add_parser("list", help="list the plugins")
    from .state.runner import add_parsers as add_state_parsers
    add_state_parsers(sub)
    from .lint.main import add_arguments as add_lint_arguments
    add_lint_arguments(sub.add_parser("lint", help="check network configurations the way "
                                      "a runtime loads them"))
    args = parser.parse_args(argv)
    if args.cmd == "install":
        unknown = [n for n in args.plugins if n not in PLUGINS]
        if unknown:
            parser.error(f"unknown plugin(s): {', '.join(unknown)}")
        try:
            written = install(args.dir, args.plugins or None, args.python)
        except InstallRefused as err:
            sys.stderr.write("pycni install: refusing to install, others could change "
                             "what the plugins run as root:\n")
            for problem in err.problems:
                sys.stderr.write(f"  {problem}\n")
            return 1
        except OSError as err:
            sys.stderr.write(f"pycni install: {err}\n")
            return 1
        for path in written:
            print(path)
    elif args.cmd == "list":
        for name, module in PLUGINS.items():
            print(f"{name}\t{module}")
    elif args.cmd in ("state", "gc"):
        from .state.runner import run as run_state
        return run_state(args)
    elif args.cmd == "lint":
        from .lint.main import run as run_lint
        return run_lint(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
