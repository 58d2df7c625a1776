"""`pycni install-cni`: put the plugins and a conflist on a node.

    pycni install-cni [--source DIR] [--bin-dir DIR] [--net-dir DIR] ...

What a Kubernetes DaemonSet's init container runs (the default command of
pycni's image, scripts/build-image.sh, where the bundle's own interpreter
runs `python -m pycni.installcni`; see image_main): the standalone bundle (what
./build.sh leaves in dist/cni-bin: one executable per plugin plus a hidden
support directory, `.pycni`) is copied into the node's plugin directory,
mounted at /host/opt/cni/bin, every plugin is run once with
CNI_COMMAND=VERSION, and then a conflist made from a template is written
into the node's config directory, mounted at /host/etc/cni/net.d (the
host-mount convention of Calico's installer). Every flag has an environment
variable (a DaemonSet sets those); a flag wins.

Replacing files that a runtime may execute at any moment:
  * every file is written to a new temporary file (O_EXCL|O_NOFOLLOW)
    in its directory and renamed over its name: a runtime sees the old
    file or the new one, never half of one;
  * the support directory is installed whole under a name made from its
    digest (`.pycni.<hex>`), completed under a temporary name first; the
    plugins' `.pycni` then becomes a symlink to it, switched with one
    rename (a real `.pycni` directory, as `cp -a` installs it, is swapped
    with renameat2(RENAME_EXCHANGE)). The executables are renamed in right
    after. The previous support directory stays (a plugin started a moment
    ago may still be loading from it); older ones are removed;
  * an identical file is left alone; the conflist is written only after
    every plugin answered VERSION, so a runtime never sees a network
    config before its plugins work.

What the host directories may hold is not trusted: nothing is followed
through a symlink (each directory is opened component by component with
O_NOFOLLOW; files are opened and created relative to the directory with
O_NOFOLLOW; a symlink planted at a name we write is replaced, not written
through), nothing is written outside the two directories, and an
executable that pycni did not install (not recorded in the directory's
`.pycni-install-cni.json` with its digest) is replaced only with --force,
else the run stops before changing anything. Two installers on one node
take turns (flock on each of the two directories).
"""

import argparse
import errno
import hashlib
import json
import os
import re
import signal
import stat
import subprocess
import sys

from .files import write_atomic_at

DEFAULT_BIN_DIR = "/host/opt/cni/bin"
DEFAULT_NET_DIR = "/host/etc/cni/net.d"
DEFAULT_CONF_NAME = "10-pycni.conflist"
MANIFEST = ".pycni-install-cni.json"
TMP_MARK = ".pycni-tmp-"
# The environment a plugin is run with to answer VERSION: nothing of ours
# (a frozen installer's LD_LIBRARY_PATH must not reach the plugin).
VERSION_ENV = {"CNI_COMMAND": "VERSION", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
VERSION_TIMEOUT = 30
MAX_TEMPLATE = 1 << 20
PLACEHOLDER = re.compile(r"__[A-Z][A-Z0-9_]*__")
# What a template may name: placeholder -> (option, environment variable).
PLACEHOLDERS = {
    "__POD_CIDR__": ("--pod-cidr", "PYCNI_POD_CIDR"),
    "__NODE_NAME__": ("--node-name", "KUBERNETES_NODE_NAME"),
}
NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
SUPPORT_NAME = re.compile(r"(\.[A-Za-z0-9_-]+)\.([0-9a-f]{16})")
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class InstallError(Exception):
    """The installation cannot go on; the message says why."""


def pycni_version() -> str:
    import pycni
    version = getattr(pycni, "__version__", None)
    if version:
        return version
    try:
        from importlib.metadata import version as dist_version
        return dist_version("pycni")
    except Exception:
        return "unknown"


# --- the source bundle ---------------------------------------------------

class Bundle:
    """What a standalone bundle directory holds: `plugins` (name -> bytes,
    mode) and `trees` (support directory name -> list of entries)."""

    def __init__(self, path: str):
        self.path = path
        self.plugins: dict[str, tuple[bytes, int]] = {}
        self.trees: dict[str, list[tuple[str, str, int, bytes]]] = {}
        try:
            names = sorted(os.listdir(path))
        except OSError as err:
            raise InstallError(f"cannot read the bundle {path}: {err.strerror}") from None
        for name in names:
            full = os.path.join(path, name)
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode) and not name.startswith("."):
                if not st.st_mode & 0o111:
                    continue
                with open(full, "rb") as f:
                    self.plugins[name] = (f.read(), 0o755)
            elif stat.S_ISDIR(st.st_mode) and name.startswith("."):
                self.trees[name] = read_tree(full)
        if not self.plugins:
            raise InstallError(f"{path} holds no plugin executables (run ./build.sh)")

    def tree_digest(self, name: str) -> str:
        return tree_digest(self.trees[name])


def read_tree(top: str) -> list[tuple[str, str, int, bytes]]:
    """Every entry below `top`, sorted: (relative path, kind d/f/l, mode, data)."""
    entries = []
    for root, dirs, files in os.walk(top):
        dirs.sort()
        rel_root = os.path.relpath(root, top)
        for name in sorted(dirs + files):
            full = os.path.join(root, name)
            rel = name if rel_root == "." else f"{rel_root}/{name}"
            st = os.lstat(full)
            mode = stat.S_IMODE(st.st_mode) & 0o755
            if stat.S_ISLNK(st.st_mode):
                entries.append((rel, "l", 0, os.readlink(full).encode()))
            elif stat.S_ISDIR(st.st_mode):
                entries.append((rel, "d", mode | 0o700, b""))
            elif stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    entries.append((rel, "f", mode | 0o600, f.read()))
    entries.sort()
    return entries


def tree_digest(entries) -> str:
    h = hashlib.sha256()
    for rel, kind, mode, data in entries:
        h.update(f"{rel}\0{kind}\0{mode:o}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()[:16]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- directories, never through a symlink --------------------------------

def open_dir_nofollow(path: str, create: bool = True) -> int:
    """fd of directory `path`, each component opened with O_NOFOLLOW from /
    (a symlink anywhere on the way is refused); missing components are
    created 0755 when `create`."""
    if not path.startswith("/") or "\0" in path:
        raise InstallError(f"{path!r}: an absolute path is needed")
    fd = os.open("/", DIR_FLAGS)
    walked = ""
    try:
        for part in [p for p in path.split("/") if p and p != "."]:
            if part == "..":
                raise InstallError(f"{path}: '..' is not accepted")
            walked += "/" + part
            try:
                nfd = os.open(part, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise InstallError(f"{walked} does not exist") from None
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
                nfd = os.open(part, DIR_FLAGS, dir_fd=fd)
                os.fchmod(nfd, 0o755)
            except OSError as err:
                if err.errno in (errno.ELOOP, errno.ENOTDIR):
                    what = "a symbolic link" if os.path.islink(walked) else "not a directory"
                    raise InstallError(f"{walked} is {what}: refusing to go through it "
                                       "(name the real directory)") from None
                raise
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


def lstat_at(dir_fd: int, name: str):
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def tmp_name(name: str) -> str:
    """A temporary name beside `name`: never ending in .conf/.conflist/.json
    (libcni loads every such file of a config directory, hidden ones too)."""
    return f"{TMP_MARK}{os.urandom(6).hex()}-{name}.tmp"


def write_file_at(dir_fd: int, name: str, data: bytes, mode: int) -> None:
    """Replace `name` in `dir_fd` atomically: a new O_EXCL|O_NOFOLLOW
    temporary file renamed over it (whatever was at `name` is replaced,
    never written through)."""
    write_atomic_at(dir_fd, name, data, mode, sync=True, tmp=tmp_name(name))


def unlink_quietly(dir_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def read_regular_at(dir_fd: int, name: str, limit: int) -> bytes | None:
    """Content of regular file `name` (never followed, never blocks), or
    None when it is anything else or missing or longer than `limit`."""
    # Opened O_PATH first (opens nothing: a device planted there has no
    # effect, a FIFO cannot block), reopened for reading only when it is a
    # regular file.
    try:
        pfd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        st = os.fstat(pfd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        fd = os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY
                     | os.O_CLOEXEC)
    except OSError:
        return None
    finally:
        os.close(pfd)
    try:
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
    finally:
        os.close(fd)


def remove_tree_at(dir_fd: int, name: str) -> None:
    """Remove directory `name` in `dir_fd` and everything below it, through
    directory fds only (a symlink inside is removed, never followed)."""
    import shutil
    if not shutil.rmtree.avoids_symlink_attacks:
        raise InstallError("this platform cannot remove a directory without following symlinks")
    shutil.rmtree(name, dir_fd=dir_fd)


def copy_tree_at(dir_fd: int, name: str, entries) -> None:
    """Create directory `name` in `dir_fd` holding `entries` (read_tree)."""
    os.mkdir(name, 0o700, dir_fd=dir_fd)
    top = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    fds = {"": top}
    try:
        for rel, kind, mode, data in entries:
            parent, _, base = rel.rpartition("/")
            pfd = fds[parent]
            if kind == "d":
                os.mkdir(base, 0o700, dir_fd=pfd)
                fds[rel] = os.open(base, DIR_FLAGS, dir_fd=pfd)
                os.fchmod(fds[rel], mode)
            elif kind == "l":
                os.symlink(data.decode(), base, dir_fd=pfd)
            else:
                fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o600, dir_fd=pfd)
                try:
                    os.fchmod(fd, mode)
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                finally:
                    os.close(fd)
        for fd in fds.values():
            os.fsync(fd)
        os.fchmod(top, 0o755)
    finally:
        for fd in fds.values():
            os.close(fd)


def tree_matches_at(dir_fd: int, name: str, entries) -> bool:
    """True when directory `name` holds exactly `entries` (read without
    following any symlink)."""
    st = lstat_at(dir_fd, name)
    if st is None or not stat.S_ISDIR(st.st_mode):
        return False
    found = []
    try:
        top = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        pending = [("", top)]
        while pending:
            rel_root, fd = pending.pop()
            try:
                for entry in sorted(os.listdir(fd)):
                    rel = entry if not rel_root else f"{rel_root}/{entry}"
                    est = os.stat(entry, dir_fd=fd, follow_symlinks=False)
                    mode = stat.S_IMODE(est.st_mode)
                    if stat.S_ISLNK(est.st_mode):
                        found.append((rel, "l", 0, os.readlink(entry, dir_fd=fd).encode()))
                    elif stat.S_ISDIR(est.st_mode):
                        found.append((rel, "d", mode, b""))
                        pending.append((rel, os.open(entry, DIR_FLAGS, dir_fd=fd)))
                    elif stat.S_ISREG(est.st_mode):
                        data = read_regular_at(fd, entry, 1 << 30)
                        if data is None:
                            return False
                        found.append((rel, "f", mode, data))
                    else:
                        return False
            finally:
                if fd != top:
                    os.close(fd)
    except OSError:
        return False
    finally:
        os.close(top)
    found.sort()
    return found == list(entries)


def exchange_at(dir_fd: int, a: str, b: str) -> bool:
    """renameat2(RENAME_EXCHANGE): swap two names atomically. False when
    the system cannot (no renameat2 in libc, or the file system refuses)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (ImportError, OSError, AttributeError):     # no ctypes in a static bundle
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    if renameat2(dir_fd, a.encode(), dir_fd, b.encode(), 2) == 0:   # RENAME_EXCHANGE
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), a)


# --- the plan -------------------------------------------------------------

class Options:
    """What one run does (from flags and environment)."""

    def __init__(self, **kw):
        self.source = kw.get("source")
        self.bin_dir = kw.get("bin_dir") or DEFAULT_BIN_DIR
        self.net_dir = kw.get("net_dir") or DEFAULT_NET_DIR
        self.conf_name = kw.get("conf_name") or DEFAULT_CONF_NAME
        self.template = kw.get("template")
        self.write_config = kw.get("write_config", True)
        self.skip_existing_config = kw.get("skip_existing_config", False)
        self.skip_existing_binaries = kw.get("skip_existing_binaries", False)
        self.skip_binaries = set(kw.get("skip_binaries") or ())
        self.skip_config_without_pod_cidr = kw.get("skip_config_without_pod_cidr", False)
        self.force = kw.get("force", False)
        self.check = kw.get("check", True)
        self.values = dict(kw.get("values") or {})


def check_conf_name(name: str) -> None:
    if (not name or "/" in name or name.startswith(".") or not name.isprintable()
            or not name.endswith((".conflist", ".conf", ".json"))):
        raise InstallError(f"config name {name!r} must be a plain file name ending in "
                           ".conflist, .conf or .json")


def check_values(values: dict) -> None:
    cidr = values.get("__POD_CIDR__")
    if cidr is not None:
        from . import ipaddr
        try:
            network = ipaddr.ip_network(cidr, strict=True)
        except ValueError as err:
            raise InstallError(f"pod CIDR {cidr!r} is not a network: {err}") from None
        if str(network) != cidr:
            raise InstallError(f"pod CIDR {cidr!r} is not in canonical form ({network})")
    node = values.get("__NODE_NAME__")
    if node is not None and not NODE_NAME.fullmatch(node):
        raise InstallError(f"node name {node!r} is not a Kubernetes node name")


def render_template(text: str, values: dict) -> str | None:
    """The conflist from `text` with each placeholder replaced by its value
    (a JSON string's content: placeholders stand inside quotes). None when
    it needs the pod CIDR and none was given. InstallError for an unknown
    placeholder, another missing value or a result that is not a conflist."""
    used = set(PLACEHOLDER.findall(text))
    unknown = sorted(used - set(PLACEHOLDERS))
    if unknown:
        raise InstallError(f"the template names unknown placeholder(s) {', '.join(unknown)} "
                           f"(known: {', '.join(sorted(PLACEHOLDERS))})")
    for name in sorted(used):
        if values.get(name) is None:
            if name == "__POD_CIDR__":
                return None
            option, env = PLACEHOLDERS[name]
            raise InstallError(f"the template needs {name}: give {option} or set {env}")
    out = PLACEHOLDER.sub(lambda m: json.dumps(values[m.group(0)])[1:-1], text)
    check_conflist(out)
    return out


def check_conflist(text: str) -> dict:
    try:
        doc = json.loads(text)
    except ValueError as err:
        raise InstallError(f"the conflist is not JSON: {err}") from None
    if not isinstance(doc, dict):
        raise InstallError("the conflist is not a JSON object")
    if not isinstance(doc.get("name"), str) or not doc["name"]:
        raise InstallError("the conflist has no name")
    if not isinstance(doc.get("cniVersion"), str):
        raise InstallError("the conflist has no cniVersion")
    plugins = doc.get("plugins")
    if not isinstance(plugins, list) or not plugins:
        raise InstallError("the conflist has no plugins list")
    for plugin in plugins:
        if not isinstance(plugin, dict) or not isinstance(plugin.get("type"), str):
            raise InstallError("every entry of plugins needs a type")
    return doc


def plugin_types(doc: dict) -> list[str]:
    """Every plugin type a conflist runs, delegated IPAM types included."""
    types = []
    for plugin in doc.get("plugins", []):
        types.append(plugin["type"])
        ipam = plugin.get("ipam")
        if isinstance(ipam, dict) and isinstance(ipam.get("type"), str):
            types.append(ipam["type"])
    return types


def read_manifest(dir_fd: int) -> dict[str, str]:
    """name -> sha256 of each executable an earlier run installed."""
    data = read_regular_at(dir_fd, MANIFEST, 1 << 20)
    if data is None:
        return {}
    try:
        doc = json.loads(data)
        files = doc.get("files", {})
        return {k: v for k, v in files.items() if isinstance(k, str) and isinstance(v, str)}
    except (ValueError, AttributeError):
        return {}


def plan_binaries(dir_fd: int, bundle: Bundle, opts: Options, manifest: dict) -> tuple:
    """(to write: [name], unchanged: [name], skipped: [(name, why)]);
    InstallError when a file we may not replace is in the way."""
    write, same, skipped, foreign = [], [], [], []
    for name, (data, mode) in sorted(bundle.plugins.items()):
        if name in opts.skip_binaries:
            skipped.append((name, "--skip-binaries"))
            continue
        st = lstat_at(dir_fd, name)
        if st is None:
            write.append(name)
            continue
        if stat.S_ISDIR(st.st_mode):
            raise InstallError(f"{opts.bin_dir}/{name} is a directory: not replacing it")
        if opts.skip_existing_binaries:
            skipped.append((name, "exists; --skip-existing-binaries"))
            continue
        current = read_regular_at(dir_fd, name, len(data) * 4 + (1 << 20)) \
            if stat.S_ISREG(st.st_mode) else None
        if current == data and stat.S_IMODE(st.st_mode) == mode:
            same.append(name)
        elif current is not None and manifest.get(name) == sha256(current):
            write.append(name)
        elif opts.force:
            write.append(name)
        else:
            foreign.append(name)
    if foreign:
        raise InstallError(
            f"{', '.join(foreign)} in {opts.bin_dir} "
            f"{'is' if len(foreign) == 1 else 'are'} not pycni's (not installed by "
            "pycni install-cni): nothing changed; --force (PYCNI_FORCE=true) replaces "
            "them, --skip-binaries leaves named ones alone")
    return write, same, skipped


# --- doing it --------------------------------------------------------------

def install_tree(dir_fd: int, name: str, entries, say, where: str = ".") -> None:
    """Make `name` (a support directory) a symlink to a complete
    `name.<digest>` directory; keep the previous one, remove older ones."""
    digest = tree_digest(entries)
    versioned = f"{name}.{digest}"
    st = lstat_at(dir_fd, versioned)
    if st is not None and not tree_matches_at(dir_fd, versioned, entries):
        # Not what its name says (damaged, or planted): replaced.
        if stat.S_ISDIR(st.st_mode):
            remove_tree_at(dir_fd, versioned)
        else:
            os.unlink(versioned, dir_fd=dir_fd)
        st = None
    if st is None:
        tmp = tmp_name(versioned)
        try:
            copy_tree_at(dir_fd, tmp, entries)
            os.rename(tmp, versioned, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            if lstat_at(dir_fd, tmp) is not None:
                remove_tree_at(dir_fd, tmp)
            raise
        say(f"installed {where}/{versioned}/ ({len(entries)} entries)")
    previous = None
    current = lstat_at(dir_fd, name)
    if current is not None and stat.S_ISLNK(current.st_mode):
        target = os.readlink(name, dir_fd=dir_fd)
        if target == versioned:
            say(f"unchanged {where}/{name} -> {versioned}")
            remove_old_trees(dir_fd, name, keep={versioned}, say=say, where=where)
            return
        previous = target
    link_tmp = tmp_name(name)
    os.symlink(versioned, link_tmp, dir_fd=dir_fd)
    try:
        if current is not None and stat.S_ISDIR(current.st_mode):
            # A real directory (a `cp -a` install): swapped with the symlink,
            # then kept under a versioned-looking name for one more run.
            aside = f"{name}.{os.urandom(8).hex()}"
            if exchange_at(dir_fd, link_tmp, name):
                os.rename(link_tmp, aside, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            else:
                os.rename(name, aside, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                os.rename(link_tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            previous = aside
        else:
            os.rename(link_tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        unlink_quietly(dir_fd, link_tmp)
        raise
    say(f"linked {where}/{name} -> {versioned}")
    keep = {versioned}
    if previous and SUPPORT_NAME.fullmatch(previous):
        keep.add(previous)
    remove_old_trees(dir_fd, name, keep=keep, say=say, where=where)


def remove_old_trees(dir_fd: int, name: str, keep: set, say, where: str = ".") -> None:
    """Remove the `name.<hex>` directories we made that are not in `keep`,
    and whatever temporaries an interrupted run left (we hold the lock: no
    other installer of ours is using them)."""
    for entry in sorted(os.listdir(dir_fd)):
        m = SUPPORT_NAME.fullmatch(entry)
        if entry in keep or not ((m and m.group(1) == name) or entry.startswith(TMP_MARK)):
            continue
        st = lstat_at(dir_fd, entry)
        if st is None:
            continue
        if stat.S_ISDIR(st.st_mode):
            remove_tree_at(dir_fd, entry)
        else:
            os.unlink(entry, dir_fd=dir_fd)
        say(f"removed {where}/{entry}")


def check_plugin(bin_dir: str, dir_fd: int, name: str) -> str:
    """Run the installed `name` for VERSION; its supported versions, or
    InstallError."""
    st = lstat_at(dir_fd, name)
    if st is None or not stat.S_ISREG(st.st_mode):
        raise InstallError(f"{bin_dir}/{name} is not a regular file after installing it")
    path = f"{bin_dir}/{name}"
    try:
        proc = subprocess.run([path], env=VERSION_ENV, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=VERSION_TIMEOUT, cwd="/")
    except subprocess.TimeoutExpired:
        raise InstallError(f"{path} did not answer VERSION in {VERSION_TIMEOUT} s") from None
    except OSError as err:
        raise InstallError(f"{path} does not run: {err.strerror}") from None
    try:
        doc = json.loads(proc.stdout)
        versions = doc["supportedVersions"]
        assert proc.returncode == 0 and isinstance(versions, list) and versions
    except (ValueError, KeyError, TypeError, AssertionError):
        detail = (proc.stderr or proc.stdout).decode(errors="replace").strip()[-400:]
        raise InstallError(f"{path} does not answer VERSION (exit {proc.returncode}): "
                           f"{detail}") from None
    return ", ".join(str(v) for v in versions)


def install_cni(opts: Options, out=None) -> int:
    """Do one run; prints what it does to `out`. Returns the exit code."""
    out = out or sys.stdout

    def say(line):
        out.write(f"{line}\n")
        out.flush()

    if opts.source is None:
        raise InstallError("no bundle to install from: give --source or set PYCNI_SOURCE_DIR "
                           "(what ./build.sh leaves in dist/cni-bin)")
    check_conf_name(opts.conf_name)
    check_values(opts.values)
    template_text = None
    if opts.write_config:
        if opts.template is None:
            raise InstallError("no conflist template: give --template (PYCNI_CONFLIST_TEMPLATE) "
                               "or --no-config")
        try:
            fd = os.open(opts.template, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as err:
            raise InstallError(f"cannot read the template {opts.template}: "
                               f"{err.strerror}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise InstallError(f"the template {opts.template} is not a regular file")
            template_text = os.read(fd, MAX_TEMPLATE + 1).decode()
        except UnicodeDecodeError:
            raise InstallError(f"the template {opts.template} is not UTF-8") from None
        finally:
            os.close(fd)
        if len(template_text) > MAX_TEMPLATE:
            raise InstallError(f"the template {opts.template} is larger than 1 MiB")
    # Everything that can be refused is refused before anything changes.
    conflist = render_template(template_text, opts.values) if template_text is not None else None
    if template_text is not None and conflist is None and not opts.skip_config_without_pod_cidr:
        raise InstallError("the template needs __POD_CIDR__: give --pod-cidr or set "
                           "PYCNI_POD_CIDR (or --skip-config-without-pod-cidr when the "
                           "runtime writes the conflist, e.g. containerd's conf_template)")
    bundle = Bundle(opts.source)
    say(f"pycni install-cni {pycni_version()}: from {opts.source} into {opts.bin_dir}")
    bin_fd = open_dir_nofollow(opts.bin_dir)
    try:
        import fcntl
        fcntl.flock(bin_fd, fcntl.LOCK_EX)
        manifest = read_manifest(bin_fd)
        write, same, skipped = plan_binaries(bin_fd, bundle, opts, manifest)
        for name, why in skipped:
            say(f"skipped {opts.bin_dir}/{name} ({why})")
        unknown = sorted(opts.skip_binaries - set(bundle.plugins))
        if unknown:
            say(f"warning: --skip-binaries names {', '.join(unknown)}, not in the bundle")
        if write:
            for tree, entries in sorted(bundle.trees.items()):
                install_tree(bin_fd, tree, entries, say, opts.bin_dir)
        elif bundle.trees:
            for tree, entries in sorted(bundle.trees.items()):
                cur = lstat_at(bin_fd, tree)
                if cur is None or not stat.S_ISLNK(cur.st_mode) or \
                        os.readlink(tree, dir_fd=bin_fd) != f"{tree}.{tree_digest(entries)}":
                    install_tree(bin_fd, tree, entries, say, opts.bin_dir)
                else:
                    say(f"unchanged {opts.bin_dir}/{tree}")
        for name in write:
            data, mode = bundle.plugins[name]
            write_file_at(bin_fd, name, data, mode)
            manifest[name] = sha256(data)
            say(f"installed {opts.bin_dir}/{name}")
        for name in same:
            manifest[name] = sha256(bundle.plugins[name][0])
            say(f"unchanged {opts.bin_dir}/{name}")
        if write:
            doc = {"installer": "pycni install-cni", "version": pycni_version(),
                   "files": dict(sorted(manifest.items()))}
            write_file_at(bin_fd, MANIFEST, (json.dumps(doc, indent=2) + "\n").encode(), 0o644)
        if opts.check:
            for name in sorted(write + same):
                versions = check_plugin(opts.bin_dir, bin_fd, name)
                say(f"checked {name}: answers VERSION ({versions})")
        present = set(os.listdir(bin_fd))
    finally:
        os.close(bin_fd)
    if template_text is None:
        say("no conflist written (--no-config)")
        return 0
    if conflist is None:
        say("no conflist written: the template needs the node's pod CIDR and none was given "
            "(--skip-config-without-pod-cidr)")
        return 0
    net_fd = open_dir_nofollow(opts.net_dir)
    try:
        import fcntl
        fcntl.flock(net_fd, fcntl.LOCK_EX)
        for entry in os.listdir(net_fd):    # left by a run that was killed
            if entry.startswith(TMP_MARK) and entry.endswith(f"-{opts.conf_name}.tmp"):
                unlink_quietly(net_fd, entry)
        target = f"{opts.net_dir}/{opts.conf_name}"
        existing = lstat_at(net_fd, opts.conf_name)
        if existing is not None and opts.skip_existing_config:
            say(f"skipped {target} (exists; --skip-existing-config)")
        elif (existing is not None and stat.S_ISREG(existing.st_mode)
              and read_regular_at(net_fd, opts.conf_name, MAX_TEMPLATE * 2) == conflist.encode()):
            say(f"unchanged {target}")
        else:
            if existing is not None and stat.S_ISDIR(existing.st_mode):
                raise InstallError(f"{target} is a directory: not replacing it")
            write_file_at(net_fd, opts.conf_name, conflist.encode(), 0o644)
            say(f"wrote {target}")
        missing = sorted(set(plugin_types(json.loads(conflist))) - present)
        if missing:
            say(f"warning: the conflist runs {', '.join(missing)}, not in {opts.bin_dir}")
        first = sorted(n for n in os.listdir(net_fd)
                       if n.endswith((".conf", ".conflist", ".json")))
        if first and first[0] != opts.conf_name:
            say(f"warning: {opts.net_dir}/{first[0]} sorts before {opts.conf_name}: "
                "a runtime uses the first config it finds")
    finally:
        os.close(net_fd)
    return 0


# --- command line ----------------------------------------------------------

TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def env_flag(env: dict, name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise InstallError(f"{name}={env[name]!r}: expected true or false")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pycni install-cni",
        description="Copy pycni's standalone plugins into a node's plugin directory, "
                    "check them, and write a conflist (Kubernetes init container).")
    p.add_argument("--source", help="the standalone bundle (dist/cni-bin) [PYCNI_SOURCE_DIR]")
    p.add_argument("--bin-dir", help=f"plugin directory [PYCNI_BIN_DIR; {DEFAULT_BIN_DIR}]")
    p.add_argument("--net-dir", help=f"config directory [PYCNI_NET_DIR; {DEFAULT_NET_DIR}]")
    p.add_argument("--conf-name", help=f"conflist file name [PYCNI_CONF_NAME; "
                   f"{DEFAULT_CONF_NAME}]")
    p.add_argument("--template", help="conflist template [PYCNI_CONFLIST_TEMPLATE]")
    p.add_argument("--pod-cidr", help="fills __POD_CIDR__ [PYCNI_POD_CIDR]")
    p.add_argument("--node-name", help="fills __NODE_NAME__ [KUBERNETES_NODE_NAME]")
    p.add_argument("--no-config", action="store_true",
                   help="write no conflist [PYCNI_NO_CONFIG]")
    p.add_argument("--skip-existing-config", action="store_true",
                   help="leave an existing conflist alone [PYCNI_SKIP_EXISTING_CONFIG]")
    p.add_argument("--skip-config-without-pod-cidr", action="store_true",
                   help="no pod CIDR: install the plugins, write no conflist "
                   "[PYCNI_SKIP_CONFIG_WITHOUT_POD_CIDR]")
    p.add_argument("--skip-existing-binaries", action="store_true",
                   help="leave existing plugin files alone [PYCNI_SKIP_EXISTING_BINARIES]")
    p.add_argument("--skip-binaries", help="comma-separated plugins not to install "
                   "[PYCNI_SKIP_BINARIES]")
    p.add_argument("--force", action="store_true",
                   help="replace executables pycni did not install [PYCNI_FORCE]")
    p.add_argument("--no-check", action="store_true",
                   help="do not run the plugins for VERSION [PYCNI_NO_CHECK]")
    return p


def options_from(argv, env) -> Options:
    args = parser().parse_args(argv)

    def pick(value, name):
        return value if value is not None else (env.get(name) or None)

    def flag(value, name):
        return value or env_flag(env, name)

    skip = pick(args.skip_binaries, "PYCNI_SKIP_BINARIES")
    return Options(
        source=pick(args.source, "PYCNI_SOURCE_DIR"),
        bin_dir=pick(args.bin_dir, "PYCNI_BIN_DIR"),
        net_dir=pick(args.net_dir, "PYCNI_NET_DIR"),
        conf_name=pick(args.conf_name, "PYCNI_CONF_NAME"),
        template=pick(args.template, "PYCNI_CONFLIST_TEMPLATE"),
        write_config=not flag(args.no_config, "PYCNI_NO_CONFIG"),
        skip_existing_config=flag(args.skip_existing_config, "PYCNI_SKIP_EXISTING_CONFIG"),
        skip_config_without_pod_cidr=flag(args.skip_config_without_pod_cidr,
                                          "PYCNI_SKIP_CONFIG_WITHOUT_POD_CIDR"),
        skip_existing_binaries=flag(args.skip_existing_binaries,
                                    "PYCNI_SKIP_EXISTING_BINARIES"),
        skip_binaries=[s.strip() for s in (skip or "").split(",") if s.strip()],
        force=flag(args.force, "PYCNI_FORCE"),
        check=not flag(args.no_check, "PYCNI_NO_CHECK"),
        values={"__POD_CIDR__": pick(args.pod_cidr, "PYCNI_POD_CIDR"),
                "__NODE_NAME__": pick(args.node_name, "KUBERNETES_NODE_NAME")},
    )


def main(argv=None, env=None) -> int:
    env = os.environ if env is None else env
    try:
        opts = options_from(argv, env)
        return install_cni(opts)
    except InstallError as err:
        sys.stderr.write(f"pycni install-cni: {err}\n")
        return 1
    except OSError as err:
        sys.stderr.write(f"pycni install-cni: {err}\n")
        return 1


def pause() -> int:
    """The DaemonSet's main container: wait, doing nothing, until told to
    stop. (As PID 1 a process gets no default action for SIGTERM: the
    handlers make it exit at once.)"""
    def stop(signum, frame):
        sys.exit(0)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    while True:
        signal.pause()


def image_main(argv=None) -> int:
    """The image's entry point: `install-cni [flags]` (the default),
    `pause`, or `version`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and not argv[0].startswith("-") else "install-cni"
    if command == "install-cni":
        return main(argv)
    if command == "pause":
        return pause()
    if command == "version":
        print(f"pycni {pycni_version()}")
        return 0
    sys.stderr.write(f"pycni image: unknown command {command!r} "
                     "(install-cni, pause, version)\n")
    return 2


if __name__ == "__main__":      # the image's entry point: python -m pycni.installcni
    sys.exit(image_main())
