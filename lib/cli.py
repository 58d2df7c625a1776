"""The `pycni` command: install plugin executables, list them.

    pycni install --dir /opt/cni/bin    one executable per plugin
    pycni uninstall --dir /opt/cni/bin  remove what install wrote there
    pycni list                          plugin names and their modules
    pycni --version

What install writes into --dir, and how it knows a file is its own:

  * each file (launchers 0755, the .pycni-bundle 0644, the manifest 0644)
    goes to a new temporary file beside it and is renamed over the name: a
    runtime exec'ing a plugin meanwhile runs the old or the new file, never
    half of one; a symlink at the name is replaced, never followed;
  * a file that already holds exactly what would be written (and root's,
    0755/0644, one link) is left alone: installing twice changes nothing;
  * `.pycni-manifest` records each file install wrote and a sha256 of its
    content. A file is pycni's when the manifest records it with its
    current content, or when it carries the launcher's marker line (`# pycni
    ... written by `pycni install``, line 2) or the bundle's header (for
    installs from before manifests). Anything else at a name install would
    write (the reference's `bridge`, a symlink, a FIFO) is refused, with
    nothing written, unless --force; a directory is refused even then;
  * the manifest is trusted only as a regular file (not followed through a
    symlink), owned by root (or the installing user) and not group/other-
    writable, in the shape install writes; otherwise install ignores and
    rewrites it, and uninstall refuses to act on it;
  * uninstall removes the manifest's files whose content is still what
    install wrote (a changed or replaced one is kept and named), then the
    manifest; never the directory, never anything the manifest does not
    name;
  * installs and uninstalls of one directory are serialised (flock on it);
    both remove the temporary files a killed install left behind.

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

from .files import read_fd, write_atomic_at
from .posixos import others_can_write
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
    if others_can_write(st):
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
    write_atomic_at(dir_fd, name, data, mode, sync=True,
                    tmp=f".{name}.pycni-tmp{os.getpid()}-{os.urandom(4).hex()}")


# --------------------------------------------------------------- what is ours

MANIFEST = ".pycni-manifest"
# The second line of every launcher (launcher.TEMPLATE) carries it.
LAUNCHER_MARKER = b"written by `pycni install`"
# Files are compared in full; a larger one (no launcher, no bundle of ours
# is) is only looked at, never read whole.
MAX_READ = 64 << 20
MAX_MANIFEST = 1 << 20
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


class NotOurs(InstallRefused):
    """Files where install would write that pycni did not write."""


class Entry:
    """What lies at one name of the install directory (never followed):
    kind is 'missing', 'file', 'symlink', 'directory' or 'special'; for a
    file, `data` is its content (None when larger than MAX_READ) and
    `head` its first bytes."""
    __slots__ = ("kind", "st", "data", "head")

    def __init__(self, kind, st=None, data=None, head=b""):
        self.kind, self.st, self.data, self.head = kind, st, data, head


def read_entry(dir_fd: int, name: str) -> Entry:
    """Look at `name` in the directory `dir_fd` without following a symlink
    and without opening anything but a regular file (a FIFO would block, a
    device could act)."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return Entry("missing")
    if stat.S_ISLNK(st.st_mode):
        return Entry("symlink", st)
    if stat.S_ISDIR(st.st_mode):
        return Entry("directory", st)
    if not stat.S_ISREG(st.st_mode):
        return Entry("special", st)
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC,
                 dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):     # swapped since the stat
            return Entry("special", st)
        if st.st_size > MAX_READ:
            return Entry("file", st, None, os.read(fd, 512))
        data = read_fd(fd, st.st_size + 1, close=False)
        if len(data) > MAX_READ:
            return Entry("file", st, None, data[:512])
        return Entry("file", st, data, data[:512])
    finally:
        os.close(fd)


def digest(data: bytes) -> str:
    import hashlib
    return "sha256:" + hashlib.sha256(data).hexdigest()


def looks_ours(name: str, head: bytes) -> bool:
    """Whether a file's first bytes are what pycni install writes under
    `name`: the bundle's header, or a launcher's #! line followed by the
    launcher marker line."""
    from . import bundle
    if name == bundle.FILE_NAME:
        return head.startswith(bundle._MAGIC)
    lines = head.split(b"\n", 2)
    return (len(lines) >= 2 and lines[0].startswith(b"#!")
            and lines[1].startswith(b"# pycni ") and LAUNCHER_MARKER in lines[1])


def plan_file(name: str, entry: Entry, wanted: bytes, mode: int, recorded: str | None,
              owners, force: bool = False) -> tuple[str, str]:
    """What install does with `name` (to hold `wanted`, `mode`), given what
    is there now and the digest the manifest recorded for it (None: not
    recorded). Returns (action, why): action 'write', 'skip' or 'refuse';
    why: 'new', 'unchanged', 'updated', or what is wrong (with `force`,
    'replaced: ' and what was wrong). Pure."""
    if entry.kind == "missing":
        return "write", "new"
    if entry.kind == "directory":
        return "refuse", "is a directory"         # not even --force: rename cannot replace it
    if entry.kind == "file":
        st = entry.st
        if (entry.data == wanted and st.st_uid in owners and st.st_nlink == 1
                and stat.S_IMODE(st.st_mode) == mode):
            return "skip", "unchanged"
        if recorded is not None and entry.data is not None and digest(entry.data) == recorded:
            return "write", "updated"
        if looks_ours(name, entry.head):
            return "write", "updated"
        why = f"is not pycni's (not recorded in {MANIFEST}, no pycni marker)"
    elif entry.kind == "symlink":
        why = "is a symbolic link (install never follows one)"
    else:
        why = "is not a regular file"
    if force:
        return "write", f"replaced: it {why}"
    return "refuse", why


def manifest_text(entries: dict[str, str]) -> str:
    """The manifest: a comment header, then `sha256:HEX NAME` per file."""
    from . import __version__
    lines = [f"# pycni {__version__}: the files `pycni install` wrote in this directory "
             "and their content;",
             "# `pycni uninstall --dir` removes those still unchanged. Do not edit."]
    lines += [f"{entries[name]} {name}" for name in sorted(entries)]
    return "\n".join(lines) + "\n"


def valid_name(name: str) -> bool:
    """A file name install may write or uninstall remove: one plain
    component of NAME_CHARS, not the manifest itself."""
    return (name not in ("", ".", "..", MANIFEST) and len(name) <= 255
            and all(c in NAME_CHARS for c in name))


def parse_manifest(text: str) -> dict[str, str]:
    """name -> digest; ValueError for anything not manifest_text's shape."""
    entries = {}
    for number, line in enumerate(text.split("\n"), 1):
        if not line or line.startswith("#"):
            continue
        dig, sep, name = line.partition(" ")
        hexpart = dig.removeprefix("sha256:")
        if (not sep or not dig.startswith("sha256:") or len(hexpart) != 64
                or any(c not in "0123456789abcdef" for c in hexpart)):
            raise ValueError(f"line {number} is no `sha256:HEX NAME` entry")
        if not valid_name(name) or name in entries:
            raise ValueError(f"line {number} names {name!r}, which is not a file name "
                             "pycni installs (or named twice)")
        entries[name] = dig
    return entries


def manifest_problem(entry: Entry, owners) -> str | None:
    """Why the manifest found at MANIFEST cannot be trusted, or None."""
    if entry.kind != "file":
        return f"is a {entry.kind}, not a regular file"
    if entry.st.st_uid not in owners:
        return f"is owned by uid {entry.st.st_uid}, not by root or the installing user"
    if others_can_write(entry.st):
        return f"is writable by group or others (mode {stat.S_IMODE(entry.st.st_mode):04o})"
    if entry.data is None or len(entry.data) > MAX_MANIFEST:
        return "is too large to be a manifest"
    return None


def read_manifest(dir_fd: int, owners) -> tuple[dict[str, str] | None, str | None]:
    """(entries, None); (None, None) when there is no manifest; (None, why)
    when there is one that cannot be trusted."""
    entry = read_entry(dir_fd, MANIFEST)
    if entry.kind == "missing":
        return None, None
    problem = manifest_problem(entry, owners)
    if problem:
        return None, problem
    try:
        return parse_manifest(entry.data.decode("utf-8")), None
    except (UnicodeDecodeError, ValueError) as err:
        return None, f"is malformed ({err})"


def is_temp_name(name: str) -> bool:
    """Whether `name` is one of write_entry's temporary files
    (`.NAME.pycni-tmpPID-HEX`), left behind by an install that was killed."""
    base, sep, tail = name.removeprefix(".").rpartition(".pycni-tmp")
    pid, dash, tag = tail.partition("-")
    return (name.startswith(".") and bool(sep) and (valid_name(base) or base == MANIFEST)
            and pid.isdigit() and bool(dash) and len(tag) == 8
            and all(c in "0123456789abcdef" for c in tag))


def remove_stale_temps(dir_fd: int, directory: str, owners, report: list) -> None:
    """Remove temporary files a killed install left (regular files of a
    trusted owner only). Called with the directory locked: no install is
    writing one now."""
    for name in sorted(os.listdir(dir_fd)):
        if not is_temp_name(name):
            continue
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISREG(st.st_mode) and st.st_uid in owners:
            os.unlink(name, dir_fd=dir_fd)
            report.append(("removed", os.path.join(directory, name)))


def open_checked_dir(real: str, owners) -> int:
    """A descriptor of the checked directory `real`, locked against other
    installs and uninstalls (flock: released when closed)."""
    import fcntl
    dir_fd = os.open(real, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        problem = entry_problem(real, os.fstat(dir_fd), owners)
        if problem:
            raise InstallRefused([problem])
        fcntl.flock(dir_fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(dir_fd)
        raise
    return dir_fd


def install(directory: str, names=None, python: str | None = None, force: bool = False,
            report: list | None = None) -> list[str]:
    """Write the launchers (and the bundle and the manifest) into
    `directory`; return the launchers' paths. InstallRefused, with nothing
    written, when the installation is not trustworthy; NotOurs, with
    nothing written, when a file install would replace is not pycni's
    (unless `force`). Identical files are left alone; `report` (a list)
    receives (what was done, path) for every file."""
    python = os.path.abspath(python or sys.executable)
    directory = os.path.abspath(directory)
    owners = trusted_owners()
    warnings: list[str] = []
    problems = installation_problems(python, directory, owners, warnings)
    third_party = _third_party(names)     # entry points of pycni.plugins (extplugins.py)
    from .extplugins import installation_problems as third_party_problems
    problems += third_party_problems(third_party.values(), owners)
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
    report = [] if report is None else report
    dir_fd = open_checked_dir(real, owners)
    try:
        remove_stale_temps(dir_fd, directory, owners, report)
        recorded, problem = read_manifest(dir_fd, owners)
        if problem:
            sys.stderr.write(f"pycni install: warning: ignoring {directory}/{MANIFEST}: it "
                             f"{problem}; it is rewritten\n")
        recorded = recorded or {}
        import pycni
        from . import bundle
        wanted = []
        data = bundle.build_for(python, os.path.dirname(os.path.abspath(pycni.__file__)))
        if data is not None:
            wanted.append((bundle.FILE_NAME, data, 0o644))
        else:
            sys.stderr.write(f"pycni install: warning: {python} could not compile "
                             f"{bundle.FILE_NAME}; the launchers import pycni's files\n")
        launchers = list(names or [*PLUGINS, *third_party])
        for name in launchers:
            if name in PLUGINS:
                text = launcher_text(name, directory, python)
            else:
                from .extplugins import launcher_text as third_party_launcher
                text = third_party_launcher(third_party[name], directory, python)
            wanted.append((name, text.encode(), 0o755))

        plan, refused = [], []
        for name, content, mode in wanted:
            action, why = plan_file(name, read_entry(dir_fd, name), content, mode,
                                    recorded.get(name), owners, force)
            if action == "refuse":
                refused.append(f"{os.path.join(directory, name)} {why}")
            plan.append((name, content, mode, action, why))
        stale_bundle = None
        if data is None:     # an old bundle of ours would only be ignored as stale: remove it
            entry = read_entry(dir_fd, bundle.FILE_NAME)
            if entry.kind == "file" and (looks_ours(bundle.FILE_NAME, entry.head) or (
                    entry.data is not None
                    and digest(entry.data) == recorded.get(bundle.FILE_NAME))):
                stale_bundle = bundle.FILE_NAME
        if read_entry(dir_fd, MANIFEST).kind == "directory":
            refused.append(f"{os.path.join(directory, MANIFEST)} is a directory")
        if refused:
            raise NotOurs(refused)

        installed = {}
        for name, content, mode, action, why in plan:
            if action == "write":
                write_entry(dir_fd, name, content, mode)
            installed[name] = digest(content)
            report.append((why.partition(":")[0], os.path.join(directory, name)))
        if stale_bundle:
            os.unlink(stale_bundle, dir_fd=dir_fd)
            recorded.pop(stale_bundle, None)
            report.append(("removed", os.path.join(directory, stale_bundle)))
        # What an earlier install wrote and this one did not touch stays
        # recorded while it is unchanged.
        for name, dig in recorded.items():
            if name not in installed and name != stale_bundle:
                entry = read_entry(dir_fd, name)
                if entry.kind == "file" and entry.data is not None and digest(entry.data) == dig:
                    installed[name] = dig
        text = manifest_text(installed).encode()
        action, why = plan_file(MANIFEST, read_entry(dir_fd, MANIFEST), text, 0o644, None,
                                owners, force=True)
        if action == "write":
            write_entry(dir_fd, MANIFEST, text, 0o644)
        report.append(("unchanged" if action == "skip" else "written",
                       os.path.join(directory, MANIFEST)))
        os.fsync(dir_fd)      # the renames, on disk before we say done
        return [os.path.join(directory, name) for name in launchers]
    finally:
        os.close(dir_fd)


def uninstall(directory: str, report: list | None = None) -> list[str]:
    """Remove from `directory` what the manifest says install wrote, each
    file only while its content is what install wrote, then the manifest.
    Returns what was kept, and why (empty: everything went). No manifest:
    nothing is removed (`report` stays empty). InstallRefused, with nothing
    removed, when the directory or the manifest is not trustworthy."""
    directory = os.path.abspath(directory)
    owners = trusted_owners()
    problems: list[str] = []
    real = check_path(directory, owners, problems)
    if real is not None and not os.path.isdir(real):
        problems.append(f"{directory} is not a directory")
    if problems:
        raise InstallRefused(problems)
    report = [] if report is None else report
    kept = []
    dir_fd = open_checked_dir(real, owners)
    try:
        recorded, problem = read_manifest(dir_fd, owners)
        if problem:
            raise InstallRefused([f"{os.path.join(directory, MANIFEST)} {problem}"])
        if recorded is None:
            return kept
        remove_stale_temps(dir_fd, directory, owners, report)
        for name, dig in sorted(recorded.items()):
            path = os.path.join(directory, name)
            entry = read_entry(dir_fd, name)
            if entry.kind == "missing":
                report.append(("gone", path))
            elif entry.kind == "file" and entry.data is not None and digest(entry.data) == dig:
                os.unlink(name, dir_fd=dir_fd)
                report.append(("removed", path))
            elif entry.kind == "file":
                kept.append(f"{path} changed since pycni installed it: kept")
            else:
                kept.append(f"{path} is now a {entry.kind}: kept")
        os.unlink(MANIFEST, dir_fd=dir_fd)
        report.append(("removed", os.path.join(directory, MANIFEST)))
        os.fsync(dir_fd)
        return kept
    finally:
        os.close(dir_fd)


def _third_party(names) -> dict:
    """Third-party plugins (entry points, extplugins.py) to install: those
    of `names`, or all that can be found (the others are warned about)."""
    from .extplugins import discover

    def warn(text):
        sys.stderr.write(f"pycni: warning: {text}\n")
    found = discover(warn)
    if names:
        return {n: p for n, p in found.items() if n in names}
    for name, plugin in list(found.items()):
        if plugin.root is None:
            warn(f"third-party plugin {name} skipped: {plugin.problem}")
            del found[name]
    return found


def _refused(message: str, problems: list[str] | None = None) -> int:
    """Exit status 1 after `pycni <message>` on stderr, with a `:` and one
    indented line per problem when there are any."""
    if problems is None:
        sys.stderr.write(f"pycni {message}\n")
    else:
        sys.stderr.write(f"pycni {message}:\n" + "".join(f"  {p}\n" for p in problems))
    return 1


def main(argv=None) -> int:
    from . import __version__
    parser = argparse.ArgumentParser(prog="pycni", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"pycni v{__version__}")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_install = sub.add_parser("install", help="write plugin executables into a directory")
    p_install.add_argument("--dir", required=True, help="e.g. /opt/cni/bin")
    p_install.add_argument("--python", help="interpreter for the launchers "
                           "(default: this one)")
    p_install.add_argument("--force", action="store_true",
                           help="replace files that are not pycni's (a reference plugin "
                           "of the same name, a symlink); never a directory")
    p_install.add_argument("plugins", nargs="*", help="only these (default: all)")
    p_uninstall = sub.add_parser("uninstall", help="remove what `pycni install` wrote into "
                                 "a directory (its manifest), unless changed since")
    p_uninstall.add_argument("--dir", required=True, help="e.g. /opt/cni/bin")
    sub.add_parser("list", help="list the plugins")
    from .state.runner import add_parsers as add_state_parsers
    add_state_parsers(sub)
    from .lint.main import add_arguments as add_lint_arguments
    add_lint_arguments(sub.add_parser("lint", help="check network configurations the way "
                                      "a runtime loads them"))
    sub.add_parser("install-cni", add_help=False, help="copy the standalone plugins and a "
                   "conflist onto a node (Kubernetes init container; see "
                   "`pycni install-cni --help`)")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["install-cni"]:     # its own parser (pycni.installcni)
        from . import installcni
        return installcni.main(argv[1:])
    args = parser.parse_args(argv)
    if args.cmd == "install":
        unknown = [n for n in args.plugins if n not in PLUGINS and n not in _third_party(None)]
        if unknown:
            parser.error(f"unknown plugin(s): {', '.join(unknown)}")
        done = []
        try:
            install(args.dir, args.plugins or None, args.python, force=args.force, report=done)
        except NotOurs as err:
            return _refused("install: refusing to replace what pycni did not install "
                            "(nothing was written; --force replaces them)", err.problems)
        except InstallRefused as err:
            return _refused("install: refusing to install, others could change "
                            "what the plugins run as root", err.problems)
        except OSError as err:
            return _refused(f"install: {err}")
        for what, path in done:
            print(f"{what:<9} {path}")
    elif args.cmd == "uninstall":
        done = []
        try:
            kept = uninstall(args.dir, report=done)
        except InstallRefused as err:
            return _refused("uninstall: refusing to remove anything", err.problems)
        except OSError as err:
            return _refused(f"uninstall: {err}")
        if not done:
            sys.stderr.write(f"pycni uninstall: no {MANIFEST} in {args.dir}: "
                             "nothing pycni installed there to remove\n")
        for what, path in done:
            print(f"{what:<9} {path}")
        for line in kept:
            sys.stderr.write(f"pycni uninstall: {line}\n")
    elif args.cmd == "list":
        for name, module in PLUGINS.items():
            print(f"{name}\t{module}")
        for name, plugin in _third_party(None).items():
            print(f"{name}\t{plugin.module}\t{plugin.dist}")
    elif args.cmd in ("state", "gc"):
        from .state.runner import run as run_state
        return run_state(args)
    elif args.cmd == "lint":
        from .lint.main import run as run_lint
        return run_lint(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
