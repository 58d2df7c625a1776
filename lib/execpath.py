"""Finding the executables a plugin runs as root: the firewall tools on
PATH (fwtools.find_tool) and plugins on CNI_PATH (`find_in_path`: the
delegates a plugin runs, pycni.invoke; the plugins a runtime runs,
pycni.pluginexec and cnitool).

PATH and CNI_PATH come from whoever started the plugin; only some of the
directories they name are fit to take programs from, as root:

- absolute entries only: a relative entry (`.`, `bin`, an empty one) is
  resolved against the working directory, which a local user may own
  (`PATH=.` must not run `./iptables-save`, as it does not in the
  reference); libcni's FindInPath accepts relative CNI_PATH entries, we
  do not;
- directories only (an entry naming a file is skipped);
- a directory that someone other than root (or the plugin's own user) can
  write to, or below such a directory, is skipped, since that someone
  decides which program a name means: every directory from the entry's
  real path up to `/` must be owned by root (or us) and not writable by
  others, nor by its group unless that group is root's; a sticky
  world-writable ancestor (/tmp) is fine, as others cannot rename what
  root owns in it;
- the program itself (symlinks followed) must be a regular executable
  file owned by root (or us) and not writable by others (nor by a non-root
  group).

Nothing here is cached: each check is a few stat calls, and only the
directory where the name is found gets the full walk up to `/`.
"""

from . import posixos as os
from _stat import S_ISDIR, S_ISREG, S_ISVTX

from .errors import CNIError, INVALID_NETWORK_CONFIG

_GROUP_W = 0o020
_OTHER_W = 0o002


def _owner_ok(st) -> bool:
    return st.st_uid == 0 or st.st_uid == os.geteuid()


def _writable_by_others(st, sticky_ok: bool) -> bool:
    if st.st_mode & _GROUP_W and st.st_gid != 0:
        return not (sticky_ok and st.st_mode & S_ISVTX)
    if st.st_mode & _OTHER_W:
        return not (sticky_ok and st.st_mode & S_ISVTX)
    return False


def entry_problem(directory: str) -> str | None:
    """Why `directory` (one PATH/CNI_PATH entry) must not be used, or None."""
    if not directory or "\0" in directory:
        return "empty or has a NUL byte"
    if not os.path.isabs(directory):
        return "relative"
    real = os.path.realpath(directory)
    current, first = real, True
    while True:
        try:
            st = os.stat(current)
        except OSError:
            return "missing"
        if first and not S_ISDIR(st.st_mode):
            return "not a directory"
        if not _owner_ok(st):
            return f"{current} is owned by uid {st.st_uid}"
        if _writable_by_others(st, sticky_ok=not first):
            return f"{current} is writable by others"
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current, first = parent, False


def program_problem(path: str) -> str | None:
    """Why the file at `path` must not be run, or None; "missing" if no
    executable is there at all."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return "missing"
    if not S_ISREG(st.st_mode) or not os.access(path, os.X_OK):
        return "missing"
    if not _owner_ok(st):
        return f"owned by uid {st.st_uid}"
    if _writable_by_others(st, sticky_ok=False):
        return "writable by others"
    return None


def lookup(name: str, directories) -> tuple[str | None, list[str]]:
    """The first trusted `directory/name` that is a trusted program, and the
    entries skipped on the way (with the reason) for error messages."""
    skipped = []
    for directory in directories:
        if not directory:
            continue
        if not os.path.isabs(directory) or "\0" in directory:
            skipped.append(f"{directory}: relative")
            continue
        # The directory as checked (its real path), not the entry as given:
        # a symlinked entry re-pointed after the check must not change
        # what runs. The name stays: multi-call tools dispatch on it.
        candidate = os.path.join(os.path.realpath(directory), name)
        problem = program_problem(candidate)
        if problem == "missing":
            continue
        if problem is not None:
            problem = f"{candidate} is {problem}"
        else:
            problem = entry_problem(directory)
        if problem is None:
            return candidate, skipped
        skipped.append(f"{directory}: {problem}")
    return None, skipped


def find_in_path(plugin_type: str, path: list[str]) -> str:
    """The plugin executable `plugin_type` on CNI_PATH `path` (libcni's
    FindInPath, the reference's invoke.FindInPath).

    Refuses plugin types with path separators (CVE-2021-20206:
    ``"type": "../../sbin/reboot"`` must not run /sbin/reboot). Stricter
    than libcni: it also refuses a NUL byte (an invalid plugin name, not a
    crash), and it only takes programs from absolute directories that
    nobody but root can write to (`lookup`): a relative CNI_PATH entry
    would be resolved against the working directory.
    """
    if not plugin_type:
        raise CNIError(INVALID_NETWORK_CONFIG, "no plugin name provided")
    if "\0" in plugin_type:
        from . import jsontext
        raise CNIError(INVALID_NETWORK_CONFIG,
                       f"invalid plugin name {jsontext.dumps(plugin_type)}: must not contain "
                       "a NUL byte")
    if "/" in plugin_type or "\\" in plugin_type or plugin_type in (".", ".."):
        raise CNIError(INVALID_NETWORK_CONFIG,
                       f'invalid plugin name "{plugin_type}": must not contain a path separator')
    if not path:
        raise CNIError(INVALID_NETWORK_CONFIG,
                       f'no paths provided to find plugin "{plugin_type}"')
    found, skipped = lookup(plugin_type, path)
    if found is not None:
        return found
    raise CNIError(INVALID_NETWORK_CONFIG,
                   f'failed to find plugin "{plugin_type}" in path [{" ".join(path)}]',
                   ("ignored: " + "; ".join(skipped)) if skipped else "")
