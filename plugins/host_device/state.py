"""What a host link was before ADD moved it: one record per attachment.

`<dataDir>/<network>/<containerID>_<ifname>`, a 0600 JSON file in 0700
directories only root writes (default /run/cni/host-device: a tmpfs, so a
reboot, which brings every device home, forgets them too).

The reference keeps only the host name, in the link's alias, where the
container (CAP_NET_ADMIN in its namespace) can rewrite it. The record is
root's copy, and holds what DEL needs to put the link back and to find it
when the container's namespace went away first (the kernel then returns
a physical device to the initial namespace, possibly under another
name): the host name, MTU, alias, MAC, permanent MAC and parent device.
The alias is still set, so the reference's DEL can undo our ADD and ours
can undo the reference's (see plugin.py).

Container ID and network name follow the skel's ID rule and the
interface name the skel's ifname rule, so the file name stays in its
directory.
"""

from pycni import posixos as os

from pycni import files, jsontext
from pycni.model import dataclass

DIR_MODE = 0o700
FILE_MODE = 0o600
MAX_RECORD = 1 << 16


@dataclass
class Record:
    container_id: str
    ifname: str
    name: str                 # the host name
    mtu: int = 0
    alias: str = ""           # the host alias before ADD
    mac: str = ""
    perm_mac: str = ""
    parent: str = ""
    kind: str = ""
    index: int = 0            # the link's index in the container
    up: bool = False


_KEYS = (("containerID", "container_id", str), ("ifname", "ifname", str),
         ("name", "name", str), ("mtu", "mtu", int), ("alias", "alias", str),
         ("mac", "mac", str), ("permMac", "perm_mac", str), ("parent", "parent", str),
         ("kind", "kind", str), ("index", "index", int), ("up", "up", bool))


def to_json(rec: Record) -> bytes:
    return jsontext.dumps({k: getattr(rec, attr) for k, attr, _ in _KEYS}).encode()


def from_json(data: bytes) -> Record | None:
    """The record, or None if the file is not one of ours."""
    try:
        obj = jsontext.loads(data)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    values = {}
    for k, attr, kind in _KEYS:
        value = obj.get(k)
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            return None
        if not isinstance(value, kind):
            return None
        values[attr] = value
    return Record(**values)


def file_name(container_id: str, ifname: str) -> str:
    return f"{container_id}_{ifname}"


class Store:
    """The records of one network in `data_dir`."""

    def __init__(self, data_dir: str, network: str):
        self.data_dir = data_dir
        self.network = network

    def _open(self, create: bool) -> int | None:
        if create:
            base = files.open_tree(self.data_dir, DIR_MODE)
        else:
            base = files.open_dir(self.data_dir)
            if base is None:
                return None
        try:
            return files.open_subdir(base, self.network, DIR_MODE, create=create)
        finally:
            os.close(base)

    def save(self, rec: Record) -> None:
        fd = self._open(create=True)
        try:
            files.write_atomic_at(fd, file_name(rec.container_id, rec.ifname), to_json(rec),
                                  FILE_MODE)
        finally:
            os.close(fd)

    def load(self, container_id: str, ifname: str) -> Record | None:
        fd = self._open(create=False)
        if fd is None:
            return None
        try:
            data = files.read_at(fd, file_name(container_id, ifname), MAX_RECORD)
        finally:
            os.close(fd)
        return None if data is None else from_json(data)

    def remove(self, container_id: str, ifname: str) -> None:
        fd = self._open(create=False)
        if fd is None:
            return
        try:
            files.unlink_at(fd, file_name(container_id, ifname))
        finally:
            os.close(fd)

    def records(self) -> list[Record]:
        """Every readable record of this network."""
        fd = self._open(create=False)
        if fd is None:
            return []
        try:
            return _records_in(fd)
        finally:
            os.close(fd)


def _records_in(fd: int) -> list[Record]:
    out = []
    for name in sorted(os.listdir(fd)):
        if name.startswith("."):
            continue
        try:
            data = files.read_at(fd, name, MAX_RECORD)
        except OSError:
            continue
        rec = from_json(data) if data is not None else None
        if rec is not None and file_name(rec.container_id, rec.ifname) == name:
            out.append(rec)
    return out


def all_records(data_dir: str) -> list[tuple[str, Record]]:
    """(network, record) for every network's records in `data_dir`: a
    device may be claimed by an attachment of any network."""
    base = files.open_dir(data_dir)
    if base is None:
        return []
    out = []
    try:
        for network in sorted(os.listdir(base)):
            if network.startswith("."):
                continue
            try:
                fd = files.open_subdir(base, network, DIR_MODE, create=False)
            except OSError:
                continue
            if fd is None:
                continue
            try:
                out += [(network, rec) for rec in _records_in(fd)]
            finally:
                os.close(fd)
    finally:
        os.close(base)
    return out


def claims(rec: Record, info) -> bool:
    """Whether record `rec` still holds host link `info` (a
    pycni.netlink.linkinfo.LinkInfo): the link is the one the record moved and
    it came back without a DEL (it still carries the alias ADD gave it;
    DEL of either implementation clears it)."""
    return info.alias == rec.name and find_returned(rec, [info]) is not None


def find_returned(rec: Record, links):
    """Host link `rec` is about, back in the host after its container's
    namespace went away (the kernel moves physical devices home, under
    the container's name or devN when that is taken; veths and macvlans
    are destroyed with the namespace instead). A device with a permanent
    MAC or parent device is matched by that, anything else by its kind,
    MAC and the alias ADD gave it."""
    for info in links:
        if info.is_loopback or info.link.kind != rec.kind:
            continue
        if rec.perm_mac or rec.parent:
            if (rec.perm_mac and info.perm_mac == rec.perm_mac) or \
                    (not rec.perm_mac and rec.parent and info.parent == rec.parent):
                return info
            continue
        if info.link.mac == rec.mac and info.alias == rec.name:
            return info
    return None
