"""The saved link state: what ADD changed, so DEL can put it back.

One file per attachment, `<dataDir>/<containerID>_<ifname>.json`, in the
reference's format (so either implementation can undo the other's ADD):
a JSON object with only the attributes ADD changed, indented by one space,

    {
     "mac": "02:11:22:33:44:55",
     "promisc": false,
     "mtu": 1500,
     "allmulti": false,
     "txQLen": 1000
    }

Container IDs and interface names are validated by the skeleton (no `/`,
no `..`), so the file name stays inside dataDir.
"""

from pycni import posixos as os
from pycni import jsontext
from pycni.model import dataclass

from pycni.files import read_file, write_atomic
from pycni.result import OMITEMPTY, POINTER, omit_empty

MAX_BACKUP = 1 << 16


@dataclass
class LinkState:
    """Original link attributes; None (or "" / 0 for mac / mtu, as in the
    reference) means the attribute was not changed and needs no restoring."""
    mac: str = ""
    promisc: bool | None = None
    mtu: int = 0
    allmulti: bool | None = None
    txqlen: int | None = None

    def is_empty(self) -> bool:
        return not self.mac and not self.mtu and self.promisc is None \
            and self.allmulti is None and self.txqlen is None


def file_path(data_dir: str, container_id: str, ifname: str) -> str:
    return os.path.join(data_dir, f"{container_id}_{ifname}.json")


def to_json(state: LinkState) -> str:
    """The file's text, key for key what the reference writes."""
    out = omit_empty(("mac", state.mac, OMITEMPTY), ("promisc", state.promisc, POINTER),
                     ("mtu", state.mtu, OMITEMPTY), ("allmulti", state.allmulti, POINTER),
                     ("txQLen", state.txqlen, POINTER))
    return jsontext.dumps(out, indent=1)


def from_json(text: str | bytes) -> LinkState:
    """Parse a backup file; ValueError if it is not one. Keys match
    case-insensitively, as the reference reads them."""
    data = jsontext.loads(text)
    if not isinstance(data, dict):
        raise ValueError("backup is not a JSON object")
    lowered = {k.lower(): v for k, v in data.items() if isinstance(k, str)}

    def typed(name: str, kind, default):
        value = lowered.get(name.lower())
        if value is None:
            return default
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{name} is not an integer")
        if not isinstance(value, kind):
            raise ValueError(f"{name} is not a {kind.__name__}")
        return value

    return LinkState(mac=typed("mac", str, ""), promisc=typed("promisc", bool, None),
                     mtu=typed("mtu", int, 0), allmulti=typed("allmulti", bool, None),
                     txqlen=typed("txQLen", int, None))


def save(path: str, state: LinkState) -> None:
    """Write atomically (a crash never leaves half a file), mode 0600 in
    a 0700 directory (missing directories created 0700 whatever the umask,
    as the reference's MkdirAll(dataDir, 0700)); a symlink or hard link
    planted at `path` is replaced, never written through."""
    write_atomic(path, to_json(state).encode("utf-8"), 0o600, dir_mode=0o700)


def load(path: str) -> LinkState | None:
    """The saved state, or None if there is no file. ValueError if the
    file is not a backup; OSError if it is not a regular file (a symlink
    is never followed, a FIFO never blocks)."""
    data = read_file(path, MAX_BACKUP)
    if data is None:
        return None
    return from_json(data)


def remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
