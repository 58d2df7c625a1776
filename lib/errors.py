"""CNI error codes and the error type every plugin raises.

The spec reserves codes 0-99; plugin-specific codes start at 100. The
reference Go library also uses 8 (invalid netns) and 999 (internal).
"""

INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENVIRONMENT = 4
IO_FAILURE = 5
DECODING_FAILURE = 6
INVALID_NETWORK_CONFIG = 7
INVALID_NETNS = 8
TRY_AGAIN_LATER = 11
PLUGIN_NOT_AVAILABLE = 50
PLUGIN_NOT_AVAILABLE_LIMITED_CONNECTIVITY = 51
INTERNAL = 999


class CNIError(Exception):
    """A failure reported to the runtime as a spec error object."""

    def __init__(self, code: int, msg: str, details: str = ""):
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_dict(self, cni_version: str) -> dict:
        """The spec's error object (details only when set)."""
        out = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "CNIError":
        """The error an error object describes (a code that is no
        integer becomes INTERNAL)."""
        code = data.get("code")
        if not isinstance(code, int) or isinstance(code, bool):
            code = INTERNAL
        return cls(code, str(data.get("msg", "")), str(data.get("details", "") or ""))

    def __str__(self) -> str:
        return f"{self.msg}; {self.details}" if self.details else self.msg

    def __repr__(self) -> str:
        return f"CNIError({self.code}, {self.msg!r}, {self.details!r})"


class Failures:
    """The failures of steps that must all run (GC: IPAM's, then the
    firewall's, each also when the other failed): `with failures:` around
    each step keeps its CNIError and goes on; `raise_any()` at the end."""

    def __init__(self) -> None:
        self.errors: list[CNIError] = []

    def __enter__(self) -> "Failures":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if isinstance(exc, CNIError):
            self.errors.append(exc)
            return True
        return False

    def raise_any(self) -> None:
        """Nothing if every step succeeded; one failure as it is; several
        as one code 999 error, their messages joined by "; "."""
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise CNIError(INTERNAL, "; ".join(e.msg for e in self.errors))


class on_netlink_error:
    """`with on_netlink_error(msg):` around a netlink request: the kernel's
    refusal (a netlink.NetlinkError) leaves as CNIError(code, msg, the
    kernel's words); any other exception passes as it is."""

    def __init__(self, msg: str, code: int = INTERNAL):
        self.msg = msg
        self.code = code

    def __enter__(self) -> "on_netlink_error":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        from .netlink import NetlinkError
        if isinstance(exc, NetlinkError):
            raise CNIError(self.code, self.msg, exc.strerror or str(exc)) from None


def invalid_config(msg: str, details: str = "") -> CNIError:
    """A CNIError with code 7 (INVALID_NETWORK_CONFIG)."""
    return CNIError(INVALID_NETWORK_CONFIG, msg, details)


def internal(msg: str, details: str = "") -> CNIError:
    """A CNIError with code 999 (INTERNAL)."""
    return CNIError(INTERNAL, msg, details)
