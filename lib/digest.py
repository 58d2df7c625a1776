"""Names derived from a SHA-512 digest, as the reference derives them.

The reference names per-container firewall chains, nft comments and ifb
devices after sha512(network name + container ID) in hex. `hashlib` would
load OpenSSL for that (~5 ms per process, issue #12); CPython's own
SHA-512 module (`_sha512`, `_sha2` from 3.12) is a small builtin
extension and gives the same digest.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_sha512: "Callable | None" = None


def _load_sha512() -> "Callable":
    try:
        from _sha512 import sha512  # type: ignore[import-not-found]  # Python 3.11
    except ImportError:
        try:
            from _sha2 import sha512  # type: ignore[import-not-found]  # Python 3.12+
        except ImportError:                                        # a build without them
            from hashlib import sha512
    return sha512


def sha512_hex(text: str) -> str:
    global _sha512
    if _sha512 is None:   # loaded on first use: a VERSION or CHECK may need none
        _sha512 = _load_sha512()
    return _sha512(text.encode()).hexdigest()


def hashed_name(prefix: str, text: str, length: int) -> str:
    """`prefix` + the hex SHA-512 of `text`, cut to `length` characters
    (iptables chain names: 28, link names: 15)."""
    return (prefix + sha512_hex(text))[:length]
