"""Reading and writing sysctls under /proc/sys.

`net.*` sysctls are per network namespace: a file opened while inside
`netns.entered(...)` belongs to that namespace. Keys are given as path
parts, so interface names containing dots ("eth0.100") need no escaping.
"""

from . import posixos as os

ROOT = "/proc/sys"


def path(*parts: str) -> str:
    for part in parts:
        if not part or "/" in part or part in (".", ".."):
            raise ValueError(f"invalid sysctl path part {part!r}")
    return os.path.join(ROOT, *parts)


def read(*parts: str) -> str:
    with open(path(*parts)) as f:
        return f.read().strip()


def write(value: str, *parts: str) -> None:
    with open(path(*parts), "w") as f:
        f.write(str(value))


def ensure(value: str, *parts: str) -> bool:
    """Write `value` unless already set; True if it was changed."""
    if read(*parts) == str(value):
        return False
    write(value, *parts)
    return True
