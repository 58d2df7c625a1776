"""Finding a host device's network interface in sysfs, without following
anything a config points at.

`kernelpath`, `pciBusID` and `runtimeConfig.deviceID` name sysfs entries,
and the reference joins them onto /sys as strings: a `kernelpath` of
"/sys/devices/../../home/u" or a `pciBusID` of "../../../../home/u" makes
root list a directory a local user controls and move whatever link the
first entry there names. Here every lookup

- starts from a directory fd of the sysfs root (a parameter, so that unit
  tests use a fake tree) and walks one component at a time with
  O_NOFOLLOW, never `..`;
- stays on the sysfs root's filesystem (st_dev);
- follows exactly one symlink, the kernel's bus entry
  (bus/pci/devices/ADDR, bus/auxiliary/devices/NAME), resolved as text
  and required to land below `devices/` of the same root.

The functions return interface names (the entries of a device's `net`
directory, which the kernel names after the links of sysfs's network
namespace); plugin.py then looks the link up by name.
"""

import errno
from pycni import posixos as os

SYSFS = "/sys"
PCI_DEVICES = ("bus", "pci", "devices")
AUX_DEVICES = ("bus", "auxiliary", "devices")
# Drivers that hand a PCI device to user space (DPDK): no netdev to move.
USERSPACE_DRIVERS = ("vfio-pci", "uio_pci_generic", "igb_uio")

_S_IFMT, _S_IFDIR, _S_IFLNK = 0o170000, 0o040000, 0o120000
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NONBLOCK
_HEX = frozenset("0123456789abcdefABCDEF")


class LookupError_(Exception):
    """A lookup that found nothing usable; `str()` says why."""


def is_pci_address(text: str) -> bool:
    """DOMAIN:BUS:SLOT.FUNCTION as Linux names PCI functions
    ("0000:04:00.5"; domains may have more than 4 hex digits)."""
    parts = text.split(":")
    if len(parts) != 3:
        return False
    domain, bus, rest = parts
    slot, dot, function = rest.partition(".")
    return (4 <= len(domain) <= 8 and set(domain) <= _HEX and len(bus) == 2
            and set(bus) <= _HEX and len(slot) == 2 and set(slot) <= _HEX and dot == "."
            and len(function) == 1 and function in "01234567")


def is_entry_name(text: str) -> bool:
    """One directory entry name: no separator, not `.`/`..`, no NUL."""
    return (bool(text) and text not in (".", "..") and "/" not in text
            and "\0" not in text and len(text) <= 255)


def kernelpath_components(path: str) -> list[str]:
    """The components of a `kernelpath` below the sysfs root, or ValueError
    with the reason. The reference's rule (absolute, below /sys/devices/)
    plus: no `.`/`..` component and no NUL."""
    if "\0" in path:
        raise ValueError(f"kernel device path {path!r} contains a NUL byte")
    if not path.startswith("/sys/devices/"):
        raise ValueError(f'kernel device path "{path}" must be absolute and begin with '
                         "/sys/devices/")
    parts = [p for p in path[len("/sys/"):].split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise ValueError(f'kernel device path "{path}" must not contain "." or ".." '
                         "components")
    if len(parts) < 2:
        raise ValueError(f'kernel device path "{path}" names no device below /sys/devices/')
    return parts


class Tree:
    """A sysfs tree rooted at `root` (an open directory fd while in use)."""

    def __init__(self, root: str = SYSFS):
        self.root = root
        self.fd = -1
        self.dev = -1

    def __enter__(self) -> "Tree":
        self.fd = os.open(self.root, _DIR)
        self.dev = os.fstat(self.fd).st_dev
        return self

    def __exit__(self, *exc):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def open_dir(self, parts) -> int:
        """fd of the directory at `parts` below the root, walked without
        following a symlink and without leaving the root's filesystem.
        FileNotFoundError if absent; LookupError_ for a symlink, a
        non-directory or another filesystem on the way."""
        fd = os.dup(self.fd)
        try:
            for i, part in enumerate(parts):
                if not is_entry_name(part):
                    raise LookupError_(f"invalid path component {part!r}")
                try:
                    nfd = os.open(part, _DIR | os.O_NOFOLLOW, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        where = "/".join(parts[:i + 1])
                        raise LookupError_(f"{self.root}/{where} is not a directory "
                                           "(symbolic links are not followed)") from None
                    raise
                os.close(fd)
                fd = nfd
                if os.fstat(fd).st_dev != self.dev:
                    raise LookupError_(f"{self.root}/{'/'.join(parts[:i + 1])} is on "
                                       "another filesystem")
            return fd
        except BaseException:
            os.close(fd)
            raise

    def exists(self, parts) -> bool:
        """True if the entry at `parts` exists (the last component may be a
        symlink; it is not followed)."""
        *dirs, name = parts
        try:
            fd = self.open_dir(dirs)
        except (OSError, LookupError_):
            return False
        try:
            os.stat(name, dir_fd=fd, follow_symlinks=False)
            return True
        except OSError:
            return False
        finally:
            os.close(fd)

    def bus_device(self, bus_dir, name: str) -> list[str]:
        """The device directory (components below the root) that the
        kernel's bus entry `bus_dir/name` links to."""
        fd = self.open_dir(bus_dir)
        try:
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                raise
            if st.st_mode & _S_IFMT == _S_IFDIR:
                return [*bus_dir, name]
            if not st.st_mode & _S_IFMT == _S_IFLNK:
                raise LookupError_(f"{self.root}/{'/'.join(bus_dir)}/{name} is not a device")
            target = os.readlink(name, dir_fd=fd)
        finally:
            os.close(fd)
        if target.startswith("/"):
            raise LookupError_(f"{self.root}/{'/'.join(bus_dir)}/{name} links outside sysfs")
        parts = list(bus_dir)
        for part in target.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    raise LookupError_(f"{self.root}/{'/'.join(bus_dir)}/{name} links "
                                       "outside sysfs")
                parts.pop()
            else:
                parts.append(part)
        if len(parts) < 2 or parts[0] != "devices":
            raise LookupError_(f"{self.root}/{'/'.join(bus_dir)}/{name} does not link to "
                               "a device")
        return parts

    def list_dir(self, parts) -> list[str]:
        """Sorted entry names of the directory at `parts` (as Go's ReadDir)."""
        fd = self.open_dir(parts)
        try:
            return sorted(os.listdir(fd))
        finally:
            os.close(fd)

    def is_dir(self, parts) -> bool:
        try:
            os.close(self.open_dir(parts))
            return True
        except (OSError, LookupError_):
            return False

    def identity(self, net_parts, name: str) -> tuple[int, str]:
        """(ifindex, address) of interface `name` of the `net` directory at
        `net_parts`, as sysfs reports them ((0, "") if unreadable)."""
        try:
            fd = self.open_dir([*net_parts, name])
        except (OSError, LookupError_):
            return 0, ""
        try:
            values = []
            for attr in ("ifindex", "address"):
                try:
                    afd = os.open(attr, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                                  | os.O_CLOEXEC, dir_fd=fd)
                except OSError:
                    return 0, ""
                try:
                    values.append(os.read(afd, 256).decode(errors="replace").strip())
                finally:
                    os.close(afd)
        finally:
            os.close(fd)
        index, address = values
        return (int(index) if index.isdigit() else 0), address

    def net_device(self, parts, what: str) -> tuple[list[str], str]:
        """(`parts`, the first interface of the `net` directory at `parts`)."""
        return parts, self.first_net_device(parts, what)

    def first_net_device(self, parts, what: str) -> str:
        """The first interface in the `net` directory at `parts` (the
        reference takes the first entry as well)."""
        try:
            names = [n for n in self.list_dir(parts) if is_entry_name(n)]
        except FileNotFoundError:
            raise LookupError_(f"failed to read directory {self.root}/{'/'.join(parts)}: "
                               "no such file or directory") from None
        except OSError as exc:
            raise LookupError_(f"failed to read directory {self.root}/{'/'.join(parts)}: "
                               f"{exc.strerror}") from None
        if not names:
            raise LookupError_(f"failed to find network device in path "
                               f"{self.root}/{'/'.join(parts)} ({what})")
        return names[0]

    # --- the lookups host-device offers -------------------------------------

    def by_kernelpath(self, path: str) -> str:
        return self.find_kernelpath(path)[1]

    def find_kernelpath(self, path: str) -> tuple[list[str], str]:
        parts = kernelpath_components(path)
        return self.net_device([*parts, "net"], f"kernelpath {path}")

    def pci_device(self, address: str) -> list[str]:
        try:
            return self.bus_device(PCI_DEVICES, address)
        except FileNotFoundError:
            raise LookupError_(f"no PCI device {address}") from None

    def by_pci_address(self, address: str) -> str:
        return self.find_pci_address(address)[1]

    def find_pci_address(self, address: str) -> tuple[list[str], str]:
        device = self.pci_device(address)
        net = [*device, "net"]
        if not self.is_dir(net):
            # a virtio device: its netdev hangs below the virtioN child
            try:
                children = self.list_dir(device)
            except OSError:
                children = []
            candidates = [[*device, c, "net"] for c in children
                          if c.startswith("virtio") and is_entry_name(c)]
            net = next((c for c in candidates if self.is_dir(c)), None)
            if net is None:
                raise LookupError_(f"no net directory under pci device {address}")
        return self.net_device(net, f"pciBusID {address}")

    def by_aux_device(self, name: str) -> str:
        return self.find_aux_device(name)[1]

    def find_aux_device(self, name: str) -> tuple[list[str], str]:
        try:
            device = self.bus_device(AUX_DEVICES, name)
        except FileNotFoundError:
            raise LookupError_(f"no auxiliary device {name}") from None
        return self.net_device([*device, "net"], f"auxiliary device {name}")

    def device_id_kind(self, device_id: str) -> str:
        """"pci" or "aux": where runtimeConfig.deviceID exists (PCI first,
        as in the reference); "" if in neither."""
        if not is_entry_name(device_id):
            return ""
        if self.exists([*PCI_DEVICES, device_id]):
            return "pci"
        if self.exists([*AUX_DEVICES, device_id]):
            return "aux"
        return ""

    def pci_driver(self, address: str) -> str:
        """The name of the driver bound to PCI device `address` (the last
        component of its `driver` link)."""
        device = self.pci_device(address)
        fd = self.open_dir(device)
        try:
            target = os.readlink("driver", dir_fd=fd)
        except OSError as exc:
            raise LookupError_(f"lstat {self.root}/{'/'.join(device)}/driver: "
                               f"{exc.strerror.lower()}") from None
        finally:
            os.close(fd)
        return target.rstrip("/").rsplit("/", 1)[-1]

    def has_dpdk_driver(self, address: str) -> bool:
        return self.pci_driver(address) in USERSPACE_DRIVERS
