"""The packet-filter tools, shared by every plugin that touches firewall
state (bridge ipMasq and macspoofchk, portmap, firewall).

- `find_tool`: iptables-save/-restore, ip6tables-*, nft on PATH, falling
  back to the sbin directories (runtimes often pass a minimal PATH); only
  absolute, root-owned directories nobody else can write count
  (`execpath`): `PATH=.` never runs ./iptables-save.
- `run_tool`: one exec with stdin, failing with `ToolError`; the tools get
  a fixed environment (`TOOL_ENV`), not the caller's. Execs go through
  `spawn.run` (posix_spawn, no `subprocess` import).
- `retrying`: the read-compute-apply loop. A batch computed from a read of
  the current state fails when another plugin changed that state in the
  meantime (created the shared chain first, removed the rule we meant to
  delete); it is then recomputed from a fresh read and applied again.
  `NetnsMutex` serialises these loops within one network namespace: a
  flock on a root-only file under /run/pycni, one per namespace.
- `nft_list` / `nft_apply`: the one way nft is driven. Reads are
  `nft -j list table ...` decoded from JSON (None: no such table); a change
  is one transaction on stdin, nft JSON (a dict, `nft -j -f -`: ipMasq,
  macspoofchk) or a script that pycni.fwquote quoted (a str, `nft -f -`:
  portmap, firewall); a refused one raises `ToolError`, so `retrying`
  recomputes it like an iptables batch. `run_nft` is the raw exec below.
- `default_backend`: iptables when its tools are installed, else nftables
  (the reference's default choice); the one default of every plugin
  (firewall asks for firewalld first, as the reference). `IptablesTable`:
  what every iptables backend shares (read the table, apply a batch).

The firewall backend protocol: every backend (pycni.ipmasq's modules,
portmap's and firewall's backend classes) offers the same commands under
the same names, whatever its plugin's arguments for an attachment:
  setup(...)          ADD; a repeated setup leaves the same rules
  teardown(...)       DEL; idempotent, succeeds with nothing left to remove
  check(...)          CHECK where the plugin has one; the problems found
  gc(network, valid)  GC; `valid` = the live (container ID, ifname) pairs
"""

from . import posixos as os

from .errors import CNIError, INTERNAL

IPTABLES = "iptables"
NFTABLES = "nftables"
FALLBACK_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
# (save, restore) per IP family
IPT_TOOLS = {4: ("iptables-save", "iptables-restore"),
             6: ("ip6tables-save", "ip6tables-restore")}
ATTEMPTS = 5
# The tools run with this environment only, not the plugin's: the caller's
# environment is not root's to trust, and XTABLES_LIBDIR (where iptables
# dlopen()s its extensions), XTABLES_LOCKFILE and the like would otherwise
# reach a root process.
TOOL_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}


def tool_dirs() -> list[str]:
    """PATH's entries, then the sbin fallbacks not already on it."""
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    return dirs + [d for d in FALLBACK_DIRS if d not in dirs]


def find_tool(name: str) -> str | None:
    """`name` from a trusted PATH directory (absolute, root-owned, not
    writable by others: see execpath) or the sbin fallbacks."""
    from .execpath import lookup
    return lookup(name, tool_dirs())[0]


def _not_found(name: str, what: str = "") -> CNIError:
    from .execpath import lookup
    _path, skipped = lookup(name, tool_dirs())
    msg = f"failed to {what}: {name} not found" if what else f"{name} not found"
    return CNIError(INTERNAL, msg, ("ignored PATH entries: " + "; ".join(skipped))
                    if skipped else "")


def iptables_usable(family: int = 4) -> bool:
    return all(find_tool(t) for t in IPT_TOOLS[family])


def iptables_nft(family: int = 4) -> bool:
    """Is this family's iptables-restore iptables-nft (its rules are
    nf_tables rules, in tables `ip`/`ip6` of iptables' table names, which
    pycni.nfnetlink can edit in-process)? Told by the names along its
    chain of symbolic links (Debian's alternatives: iptables-restore ->
    /etc/alternatives/iptables-restore -> iptables-nft-restore ->
    xtables-nft-multi): a name with "nft" says yes, one with "legacy" or
    anything unreadable says no (the tool is then run as always)."""
    path = find_tool(IPT_TOOLS[family][1])
    for _hop in range(8):
        if path is None:
            return False
        name = os.path.basename(path)
        if "legacy" in name:
            return False
        if "nft" in name:
            return True
        try:
            path = os.path.join(os.path.dirname(path), os.readlink(path))
        except OSError:
            return False
    return False


# the nf_tables family of iptables-nft's tables, per IP family
NFT_FAMILY = {4: "ip", 6: "ip6"}


def remove_chains_in_process(family: int, entry: str, chains: list[str],
                             keep: list | None = None) -> bool | None:
    """Where iptables is iptables-nft: the rules of nat chain `entry`
    jumping to `chains`, and those chains, removed in one nf_tables
    transaction (pycni.nfnetlink.remove_chains). True: removed; False:
    none of it exists; None: not done (legacy iptables, no socket,
    refused, ...): the caller's iptables-restore way decides. The socket
    is closed at once, or appended to `keep` for a caller with more work
    to do, which closes it after that work: the kernel's grace period for
    the deleted rules then passes meanwhile instead of in the close."""
    if not iptables_nft(family):
        return None
    from . import netlink, nfnetlink
    try:
        nl = netlink.NetlinkSocket(nfnetlink.NETLINK_NETFILTER)
    except OSError:
        return None
    try:
        return nfnetlink.remove_chains(nl, NFT_FAMILY[family], "nat", entry, chains)
    finally:
        if keep is None:
            nl.close()
        else:
            keep.append(nl)


def default_backend() -> str:
    if iptables_usable(4):
        return IPTABLES
    return NFTABLES if find_tool("nft") else IPTABLES


def iptables_save(family: int, table: str) -> str:
    """`iptables-save -t TABLE` (ip6tables-save for family 6)."""
    return run_tool([IPT_TOOLS[family][0], "-t", table])


def no_table(family: int, table: str) -> bool:
    """True only when this network namespace certainly has no iptables
    `table` of `family` in either backend, so that it holds no rule at all
    and reading it (an exec) can be skipped: nf_tables has no `ip`/`ip6`
    table of that name (iptables-nft keeps its rules there; asked over
    netlink, pycni.nfnetlink) and the legacy x_tables list
    /proc/net/ip{,6}_tables_names does not name it (absent: the legacy
    module is not even loaded). False whenever either cannot be told."""
    from .nfnetlink import table_exists
    if table_exists(NFT_FAMILY[family], table) is not False:
        return False
    names = "/proc/net/ip_tables_names" if family == 4 else "/proc/net/ip6_tables_names"
    try:
        fd = os.open(names, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        listed = os.read(fd, 4096).decode(errors="replace").split()
    except OSError:
        return False
    finally:
        os.close(fd)
    return table not in listed


def iptables_restore(family: int, script: str) -> None:
    """Apply `script` as one batch, keeping other rules, under the xtables lock."""
    run_tool([IPT_TOOLS[family][1], "--noflush", "-w"], script)


def restore_if_accepted(family: int, script: str, restore=None) -> bool:
    """Apply `script` with iptables-restore (or `restore(family, script)`,
    which tests replace with a simulated table); False when the tool
    refuses it (a batch is all or nothing: then nothing changed). The
    idiom of the one-batch fast paths: a batch that only applies in the
    expected state (-N a new chain, -C a rule that must be there, exact
    -D), the save-compute-restore path when it is refused."""
    try:
        (restore or iptables_restore)(family, script)
    except ToolError:
        return False
    return True


class IptablesTable:
    """What every iptables backend (portmap's nat, firewall's filter) does
    the same way: tell whether a family's tools are there, read the
    backend's `table` (iptables-save, parsed by pycni.iptsave) and apply
    one batch to it. Subclasses set `table` and add their commands;
    `restore` is the one place a batch is applied, so tests replace it
    (and `saved`) to simulate the table."""

    name = IPTABLES
    table = "filter"

    usable = staticmethod(iptables_usable)
    restore = staticmethod(iptables_restore)

    def saved(self, family: int):
        """The current `table` of `family`, as a pycni.iptsave.Saved."""
        from .iptsave import parse_saved
        return parse_saved(iptables_save(family, self.table))

    def restore_if_accepted(self, family: int, script: str) -> bool:
        """`restore_if_accepted` through this backend's `restore`."""
        return restore_if_accepted(family, script, self.restore)


class ToolError(CNIError):
    def __init__(self, tool: str, returncode: int, stderr: str):
        super().__init__(INTERNAL, f"{tool} failed (exit {returncode})", stderr.strip())
        self.stderr = stderr


def run_tool(argv: list[str], stdin: str = "") -> str:
    """Run a tool (looked up with find_tool); its stdout."""
    from .spawn import run
    path = find_tool(argv[0])
    if path is None:
        raise _not_found(argv[0])
    returncode, stdout, stderr = run([path, *argv[1:]], TOOL_ENV, stdin.encode())
    if returncode != 0:
        raise ToolError(argv[0], returncode, stderr.decode(errors="replace"))
    return stdout.decode(errors="replace")


LOCK_DIR = "/run/pycni"
LOCK_WAIT = 30.0   # seconds; then go on unlocked (see NetnsMutex)
_LOCK_FILE_FLAGS = (os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
                    | os.O_CLOEXEC)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class LockRefused(OSError):
    """The lock directory or file is not what root made (owner, mode, type)."""


def _warn(msg: str) -> None:
    os.write(2, f"pycni: {msg}\n".encode(errors="replace"))


def _ours(st) -> bool:
    return st.st_uid == 0 or st.st_uid == os.geteuid()


def open_lock_dir(directory: str = LOCK_DIR) -> int:
    """An fd of `directory`, created 0700 if missing (whatever the umask),
    never through a symlink; LockRefused if it is not a directory owned by
    root (or us) that only its owner can write to."""
    try:
        fd = os.open(directory, _DIR_FLAGS)
        created = False
    except FileNotFoundError:
        try:
            os.mkdir(directory, 0o700)
            created = True
        except FileExistsError:
            created = False
        fd = os.open(directory, _DIR_FLAGS)
    try:
        st = os.fstat(fd)
        if not _ours(st):
            raise LockRefused(f"{directory} is owned by uid {st.st_uid}")
        if created and st.st_mode & 0o7777 != 0o700:
            os.fchmod(fd, 0o700)
        elif os.others_can_write(st):
            raise LockRefused(f"{directory} is writable by group or others")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_lock_file(st, name: str) -> None:
    from _stat import S_ISREG
    if not S_ISREG(st.st_mode) or not _ours(st) or os.others_can_write(st) or st.st_nlink > 1:
        raise LockRefused(f"{name} is not a lock file made by root")


def _flock(fd: int, timeout: float) -> bool:
    """flock(fd, LOCK_EX), giving up after `timeout` seconds without
    polling: the blocking call runs in a helper thread the caller waits
    for with a timed lock. True: locked. False: not locked, and `fd` is no
    longer the caller's (closed, or the helper closes it when its flock
    returns, which releases the lock at once)."""
    import fcntl
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        pass
    except OSError:
        os.close(fd)
        raise
    if timeout <= 0:
        os.close(fd)
        return False
    import _thread
    done, guard = _thread.allocate_lock(), _thread.allocate_lock()
    done.acquire()
    state = ["waiting"]

    def wait() -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            outcome = "locked"
        except OSError:
            outcome = "failed"
        with guard:
            if state[0] == "abandoned" or outcome == "failed":
                os.close(fd)
            state[0] = outcome if state[0] == "waiting" else state[0]
        done.release()

    _thread.start_new_thread(wait, ())
    done.acquire(timeout=timeout)
    with guard:
        if state[0] == "locked":
            return True
        if state[0] == "waiting":
            state[0] = "abandoned"
    return False


class NetnsMutex:
    """Serialises read-compute-apply steps within one network namespace.

    An exclusive flock(2) on `/run/pycni/netns-<dev>-<ino>.lock`, one file
    per network namespace (the firewall tables are per namespace while
    /run is shared by all of them; <dev>-<ino> identify the caller's
    namespace). Only root can take it: the directory is root's, mode 0700,
    and is refused (with a warning, going on unlocked) if it or the file is
    not what root made; nothing is opened through a symlink. Waiting
    blocks in the kernel, without polling. The holder removes the file
    before releasing it, and a waiter that then finds the file gone or
    replaced starts again, so no file is left behind.

    It is our own lock, taken before the iptables tools take theirs
    (/run/xtables.lock, `-w`) and never while holding that one, so the two
    cannot deadlock. A holder is a plugin process in the middle of one
    save/compute/restore step; if it hangs (its iptables-restore stuck on
    the xtables lock, say), others wait up to `timeout` seconds and then go
    on without the lock: the retry loop still converges, with more
    attempts. A killed holder releases the lock at once.
    """

    def __init__(self, timeout: float = LOCK_WAIT, directory: str | None = None):
        self.timeout = timeout
        self.directory = directory or LOCK_DIR
        self.fd = -1
        self._dir = -1
        self._name = ""

    @property
    def locked(self) -> bool:
        return self.fd >= 0

    def __enter__(self):
        try:
            self._acquire()
        except OSError as err:
            self._close_dir()
            _warn(f"going on without the firewall lock: {err}")
        return self

    def _acquire(self) -> None:
        import time
        ns = os.stat("/proc/thread-self/ns/net")
        self._name = f"netns-{ns.st_dev}-{ns.st_ino}.lock"
        self._dir = open_lock_dir(self.directory)
        deadline = time.monotonic() + self.timeout
        while True:
            fd = os.open(self._name, _LOCK_FILE_FLAGS, 0o600, dir_fd=self._dir)
            try:
                st = os.fstat(fd)
                _check_lock_file(st, os.path.join(self.directory, self._name))
            except BaseException:
                os.close(fd)
                raise
            if not _flock(fd, deadline - time.monotonic()):
                self._close_dir()
                _warn(f"firewall lock still held after {self.timeout:g} s, "
                      "going on without it")
                return
            try:
                now = os.stat(self._name, dir_fd=self._dir, follow_symlinks=False)
            except FileNotFoundError:
                now = None
            except BaseException:
                os.close(fd)
                raise
            if now is not None and (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
                self.fd = fd
                return
            os.close(fd)   # the holder removed it as we waited: take the new one

    def __exit__(self, *exc):
        if self.fd >= 0:
            try:
                os.unlink(self._name, dir_fd=self._dir)
            except FileNotFoundError:
                pass
            finally:
                os.close(self.fd)   # releases the lock
                self.fd = -1
                self._close_dir()
        self._close_dir()
        return False

    def _close_dir(self) -> None:
        if self._dir >= 0:
            os.close(self._dir)
            self._dir = -1


def retrying(step) -> None:
    """Run `step()` (read state, compute, apply) under the namespace's
    mutex until it applies; ToolError after ATTEMPTS failures."""
    for attempt in range(ATTEMPTS):
        try:
            with NetnsMutex():
                step()
            return
        except ToolError:
            if attempt == ATTEMPTS - 1:
                raise
            import time
            time.sleep(0.01 * (attempt + 1))


def run_nft(args: list[str], stdin: str = "", what: str = "run nft") -> tuple[int, str, str]:
    """Run nft; (exit code, stdout, stderr). The exec under nft_list and
    nft_apply, for callers that read the exit code and message themselves."""
    from .spawn import run
    nft = find_tool("nft")
    if nft is None:
        raise _not_found("nft", what)
    returncode, stdout, stderr = run([nft, *args], TOOL_ENV, stdin.encode())
    return returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace").strip()


def nft_list(family: str, table: str, what: str = "") -> dict | None:
    """`nft -j list table FAMILY TABLE`, decoded; None when there is no
    such table. ToolError when nft fails otherwise; `what` names the
    step in the error when nft is not installed."""
    returncode, out, err = run_nft(["-j", "list", "table", family, table], what=what)
    if returncode == 0:
        from . import jsontext
        return jsontext.loads(out)
    if "No such file" in err:
        return None
    raise ToolError("nft", returncode, err)


def nft_apply(batch: "dict | str", what: str = "") -> None:
    """Apply one nft transaction, all or nothing: nft JSON commands
    (`{"nftables": [...]}`, fed to `nft -j -f -`) or a script text (fed to
    `nft -f -`). ToolError when nft refuses it."""
    if isinstance(batch, str):
        args, text = ["-f", "-"], batch
    else:
        from . import jsontext
        args, text = ["-j", "-f", "-"], jsontext.dumps(batch)
    returncode, _out, err = run_nft(args, text, what)
    if returncode != 0:
        raise ToolError("nft", returncode, err)
