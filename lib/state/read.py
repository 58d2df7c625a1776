"""Reading a node's state: host-local stores, libcni's result cache, netns
liveness. Read-only: nothing is created, locked, chmod'ed or written.

The data and cache directories are trusted as paths (the operator names
them); nothing below them is followed: a network directory is opened
with O_NOFOLLOW relative to the data dir, its files as host-local opens
them (store.read_allocations), the cache through cnitool's reader (the
`results` directory must not be a symlink, each entry is opened
O_NOFOLLOW|O_NONBLOCK). A netns path from a cached result is probed with
pycni.netns.open_netns, which never blocks and never opens anything but
a regular (nsfs) file.
"""

import errno
import os

from pycni import files
from pycni.posixos import others_can_write

from . import model

DEFAULT_DATA_DIR = "/var/lib/cni/networks"
DEFAULT_CACHE_DIR = "/var/lib/cni"
_DIR_NOFOLLOW = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Unreadable(OSError):
    pass


def open_network_dir(data_dir: str, network: str) -> int | None:
    """fd of `<data_dir>/<network>`, None when it does not exist; Unreadable
    when a component below data_dir is a symlink or no directory."""
    from pycni.ipam.host_local.store import network_parts
    try:
        parts = network_parts(network)
    except ValueError as exc:
        raise Unreadable(errno.EINVAL, str(exc)) from None
    fd = files.open_dir(data_dir)
    if fd is None:
        return None
    try:
        for part in parts:
            try:
                sub = os.open(part, _DIR_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                os.close(fd)
                return None
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise Unreadable(exc.errno, f"{os.path.join(data_dir, network)} is a "
                                     "symbolic link or no directory: not read") from None
                raise
            os.close(fd)
            fd = sub
    except BaseException:
        os.close(fd)
        raise
    return fd


def store_networks(data_dir: str) -> list[str]:
    """Network directories of a host-local data dir (hidden names, such as
    pycni's `.pycni` index, and symlinks left out)."""
    fd = files.open_dir(data_dir)
    if fd is None:
        return []
    try:
        with os.scandir(fd) as it:
            return sorted(e.name for e in it
                          if not e.name.startswith(".") and e.is_dir(follow_symlinks=False))
    finally:
        os.close(fd)


def read_store(data_dir: str, network: str) -> tuple[str, list[model.Allocation]] | None:
    """(directory, allocations) of one network's store; None when it has none."""
    from pycni.ipam.host_local.gc import is_address
    from pycni.ipam.host_local.store import parse_owner, read_allocations
    import time
    fd = open_network_dir(data_dir, network)
    if fd is None:
        return None
    out = []
    try:
        allocs = read_allocations(fd)
        now = time.time()
        for name, content in allocs.items():
            if not is_address(name):
                continue
            try:
                age = now - os.stat(name, dir_fd=fd, follow_symlinks=False).st_mtime
            except OSError:
                age = None
            cid, ifname = parse_owner(content)
            out.append(model.Allocation(name, cid.strip(), ifname, age))
    finally:
        os.close(fd)
    return os.path.join(data_dir, network), out


def netns_state(path: str) -> str:
    from pycni import netns
    from pycni.errors import CNIError
    try:
        netns.probe(path)
    except netns.NetnsNotFound:
        return model.NETNS_GONE
    except netns.NotANetns:
        return model.NETNS_NOT_NETNS
    except CNIError as err:
        return err.details or err.msg
    return model.NETNS_PRESENT


def _result_facts(data: bytes | None) -> tuple[list[str], list[str], str]:
    """(CIDRs, host-side interface names, the sandbox) of a cache entry's
    result. The sandbox (the netns path of the interfaces inside the
    container) stands in for the entry's `netns`, which libcni before 1.2
    did not write."""
    from pycni.cnitool.cache import CacheError, cached_result
    from pycni.errors import CNIError
    if data is None:
        return [], [], ""
    try:
        result = cached_result(data, "1.0.0")
    except (CacheError, CNIError, ValueError, TypeError):
        return [], [], ""
    ips = [str(ip.get("address")) for ip in result.get("ips") or [] if isinstance(ip, dict)]
    links = [str(i.get("name")) for i in result.get("interfaces") or []
             if isinstance(i, dict) and i.get("name") and not i.get("sandbox")]
    sandbox = next((str(i["sandbox"]) for i in result.get("interfaces") or []
                    if isinstance(i, dict) and i.get("sandbox")), "")
    return ips, links, sandbox


def read_cache(cache_dir: str) -> dict[str, list[model.CachedAttachment]]:
    """network -> its cached attachments (netns liveness probed)."""
    from pycni.cnitool import cache
    from pycni.cnitool.request import RuntimeConf
    out: dict[str, list[model.CachedAttachment]] = {}
    for att in cache.attachments(cache_dir):
        data = cache.read(cache_dir, att.network,
                          RuntimeConf(container_id=att.container_id, netns="",
                                      ifname=att.ifname))
        ips, links, sandbox = _result_facts(data)
        netns = att.netns or sandbox
        out.setdefault(att.network, []).append(model.CachedAttachment(
            container_id=att.container_id, ifname=att.ifname, netns=netns,
            netns_state=netns_state(netns) if netns else "",
            ips=ips, host_links=links))
    return out


def _cache_problems(cache_dir: str) -> list[str]:
    """Why the cache's results directory was not read (cnitool's reader
    then sees no attachment at all: every address would look uncached)."""
    path = os.path.join(cache_dir, "results")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return []
    except OSError as exc:
        return [f"cache {path}: {exc.strerror or exc}"]
    import stat
    if not stat.S_ISDIR(st.st_mode):
        return [f"cache {path} is not a directory (a symbolic link?): not read"]
    if st.st_uid != os.geteuid():
        return [f"cache {path} is owned by uid {st.st_uid}: not read"]
    if others_can_write(st):
        # cnitool's reader would take those bits away: a reader changes nothing
        return [f"cache {path} is writable by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}): not read"]
    return []


def snapshot(networks: list[str] | None, data_dir: str, cache_dir: str,
             host_objects: bool = True, data_dirs: dict[str, str] | None = None
             ) -> list[model.NetworkState]:
    """The state of `networks` (None: every network with a store in
    data_dir or an entry in the cache). `data_dirs`: a data dir per network
    (from its config) instead of `data_dir`."""
    problems = _cache_problems(cache_dir)
    cached = {} if problems else read_cache(cache_dir)
    if networks is None:
        names = set(cached)
        try:
            names.update(store_networks(data_dir))
        except OSError:
            pass
        networks = sorted(names)
    states = []
    for name in networks:
        state = model.NetworkState(name, attachments=cached.get(name, []),
                                   problems=list(problems))
        directory = (data_dirs or {}).get(name, data_dir)
        try:
            store = read_store(directory, name)
        except OSError as exc:
            state.problems.append(f"store {os.path.join(directory, name)}: "
                                  f"{exc.strerror or exc}")
            store = None
        if store is not None:
            state.store_dir, state.allocations = store
        states.append(state)
    if host_objects:
        add_host_objects(states)
    return states


def add_host_objects(states: list[model.NetworkState]) -> None:
    """The firewall objects and veths of each state's network."""
    from . import hostobjs
    by_name = {s.name: s for s in states}
    owners = [(s.name, a.container_id) for s in states for a in s.allocations] + \
             [(s.name, a.container_id) for s in states for a in s.attachments]
    problems: list[str] = []
    for obj in hostobjs.collect_firewall(set(by_name), owners, problems):
        by_name[obj.network].host_objects.append(obj)
    for state in states:
        for att in state.attachments:
            try:
                facts = hostobjs.link_facts(att.host_links)
            except OSError as exc:
                state.problems.append(f"links of {att.container_id}: {exc}")
                continue
            state.host_objects += hostobjs.veth_objects(state.name, att.container_id,
                                                        att.ifname, facts)
        state.problems += problems
