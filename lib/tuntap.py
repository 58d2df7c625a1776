"""TUN/TAP devices through /dev/net/tun, the way `ip tuntap` makes them.

A tap is created by opening the clone device /dev/net/tun and naming a
device with the TUNSETIFF ioctl. The device belongs to the network
namespace the *opener* was in when it opened /dev/net/tun (the file's
socket keeps that namespace), so `open_clone_device` must be called
inside `netns.entered(container)`; every ioctl after that acts on that
namespace, wherever the calling thread is.

Until TUNSETPERSIST, the device lives exactly as long as the file
descriptor: closing it removes the device with everything configured on
it (addresses, bridge port). A plugin therefore keeps it open while it
configures and persists it last; any failure, even a killed process,
leaves nothing behind.

Only `fcntl` (a C module) and the `posix` built-in are used: no ctypes,
and not `os` (which a plugin process does not otherwise load).
"""

import posix
import struct

# The clone device. A fixed path, never one taken from a config.
CLONE_DEVICE = "/dev/net/tun"
CLONE_DEVICE_RDEV = (10, 200)      # misc major, TUN_MINOR

IFNAMSIZ = 16

# ifr_flags (linux/if_tun.h)
IFF_TUN = 0x0001
IFF_TAP = 0x0002
IFF_MULTI_QUEUE = 0x0100
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
IFF_TUN_EXCL = 0x8000      # refuse a name that exists already (EBUSY)

# IFLA_INFO_DATA of a link of kind "tun" (linux/if_link.h)
IFLA_TUN_OWNER = 1
IFLA_TUN_GROUP = 2
IFLA_TUN_TYPE = 3
IFLA_TUN_PI = 4
IFLA_TUN_VNET_HDR = 5
IFLA_TUN_PERSIST = 6
IFLA_TUN_MULTI_QUEUE = 7
IFLA_TUN_NUM_QUEUES = 8

# struct ifreq: 16 bytes of name, then a union of at most 24 bytes.
_IFREQ = struct.Struct("=16sH22x")

INVALID_ID = 0xFFFFFFFF      # (uid_t)-1: "no owner" to the kernel

_S_IFMT, _S_IFCHR = 0o170000, 0o020000


def _ioc_layout() -> tuple[int, int, int]:
    """(write direction bits, size shift, direction shift) of _IOW here.
    powerpc, mips and sparc encode ioctls differently from the rest."""
    machine = posix.uname().machine
    if machine.startswith(("ppc", "powerpc", "mips", "sparc")):
        return 4, 16, 29
    return 1, 16, 30


def _iow(kind: str, nr: int, size: int) -> int:
    write, size_shift, dir_shift = _ioc_layout()
    return (write << dir_shift) | (size << size_shift) | (ord(kind) << 8) | nr


TUNSETIFF = _iow("T", 202, 4)
TUNSETPERSIST = _iow("T", 203, 4)
TUNSETOWNER = _iow("T", 204, 4)
TUNSETGROUP = _iow("T", 206, 4)


class NotCloneDevice(OSError):
    """/dev/net/tun is not the TUN/TAP clone device (or missing)."""


def clone_device_problem() -> str:
    """Why /dev/net/tun cannot be used, "" if it can (stat only; for
    STATUS and for errors before anything is created)."""
    try:
        st = posix.stat(CLONE_DEVICE, follow_symlinks=False)
    except FileNotFoundError:
        return f"{CLONE_DEVICE} does not exist (no tun module loaded?)"
    except OSError as exc:
        return f"{CLONE_DEVICE}: {exc.strerror}"
    if not _is_clone_device(st):
        if st.st_mode & _S_IFMT != _S_IFCHR:
            return f"{CLONE_DEVICE} is not a character device"
        return f"{CLONE_DEVICE} is not the TUN/TAP clone device (10:200)"
    return ""


def _is_clone_device(st) -> bool:
    return st.st_mode & _S_IFMT == _S_IFCHR and \
        (posix.major(st.st_rdev), posix.minor(st.st_rdev)) == CLONE_DEVICE_RDEV


def open_clone_device() -> int:
    """Open /dev/net/tun read-write, close-on-exec (an IPAM delegate or
    tool we run must not inherit the device), not following a symlink,
    non-blocking; checks before and after opening that it is the real
    clone device (character device 10:200)."""
    problem = clone_device_problem()
    if problem:
        raise NotCloneDevice(19, problem)    # ENODEV
    fd = posix.open(CLONE_DEVICE, posix.O_RDWR | posix.O_CLOEXEC | posix.O_NOFOLLOW |
                    posix.O_NONBLOCK | posix.O_NOCTTY)
    try:
        if not _is_clone_device(posix.fstat(fd)):
            raise NotCloneDevice(19, f"{CLONE_DEVICE} changed while opening it")
    except BaseException:
        posix.close(fd)
        raise
    return fd


def ifreq(name: str, flags: int) -> bytearray:
    """A struct ifreq naming `name` with `flags` (pure)."""
    raw = name.encode()
    if not raw or len(raw) >= IFNAMSIZ or b"\0" in raw:
        raise ValueError(f"invalid interface name {name!r}")
    return bytearray(_IFREQ.pack(raw, flags & 0xFFFF))


def ifreq_name(buf) -> str:
    name, _flags = _IFREQ.unpack(bytes(buf))
    return name.split(b"\0", 1)[0].decode(errors="replace")


def set_iff(fd: int, name: str, flags: int) -> str:
    """TUNSETIFF: attach `fd` to a new (with IFF_TUN_EXCL: always new)
    device `name`; returns the name the kernel chose (a "%d" template
    would be expanded)."""
    import fcntl
    buf = ifreq(name, flags)
    fcntl.ioctl(fd, TUNSETIFF, buf, True)
    return ifreq_name(buf)


def _as_c_int(value: int) -> int:
    """A uid/gid (0..2^32-1) as the C int fcntl.ioctl passes by value;
    the kernel reads it back as an unsigned 32-bit id."""
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"id out of range: {value}")
    return value - (1 << 32) if value >= 1 << 31 else value


def set_owner(fd: int, uid: int) -> None:
    import fcntl
    fcntl.ioctl(fd, TUNSETOWNER, _as_c_int(uid))


def set_group(fd: int, gid: int) -> None:
    import fcntl
    fcntl.ioctl(fd, TUNSETGROUP, _as_c_int(gid))


def set_persist(fd: int, persist: bool = True) -> None:
    """Keep the device after `fd` is closed (False: remove it with fd)."""
    import fcntl
    fcntl.ioctl(fd, TUNSETPERSIST, 1 if persist else 0)


def info(data: dict[int, bytes]) -> dict:
    """A tun link's IFLA_INFO_DATA (netlink.get_link_info_data) in words:
    type ("tap"/"tun"), pi, vnet_hdr, persist, multi_queue (bools), owner
    and group (None when the device has none)."""
    def flag(kind: int):
        raw = data.get(kind)
        return bool(raw[0]) if raw else None

    def u32(kind: int):
        raw = data.get(kind)
        return struct.unpack("=I", raw[:4])[0] if raw and len(raw) >= 4 else None

    kind = data.get(IFLA_TUN_TYPE)
    kind_name = {IFF_TUN: "tun", IFF_TAP: "tap"}.get(kind[0] if kind else 0, "")
    return {"type": kind_name, "pi": flag(IFLA_TUN_PI),
            "vnet_hdr": flag(IFLA_TUN_VNET_HDR), "persist": flag(IFLA_TUN_PERSIST),
            "multi_queue": flag(IFLA_TUN_MULTI_QUEUE),
            "owner": u32(IFLA_TUN_OWNER), "group": u32(IFLA_TUN_GROUP)}
