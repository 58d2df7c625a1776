"""Small file helpers for state that other processes read concurrently."""

import os


def write_atomic(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write `data` to a temporary file beside `path` and rename it over
    `path`: readers see the old or the new content, never half a file."""
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
