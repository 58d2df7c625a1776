"""Spec versions: the list we speak and the feature gates between them."""

ALL: tuple[str, ...] = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
CURRENT = "1.1.0"
# A config without cniVersion is a 0.1.0 config (spec and reference).
DEFAULT = "0.1.0"


def answer(supported) -> str:
    """A plugin's VERSION answer (one line of compact JSON), for pycni.entry's
    short cut and skel's full path alike."""
    from . import jsontext
    return jsontext.dumps({"cniVersion": CURRENT, "supportedVersions": list(supported)},
                          separators=(",", ":")) + "\n"


def parse(version: str) -> tuple[int, int, int]:
    """'0.3.1' -> (0, 3, 1). Raises ValueError on anything else."""
    parts = version.split(".")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts):
        raise ValueError(f"invalid version {version!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])


def at_least(version: str, minimum: str) -> bool:
    return parse(version) >= parse(minimum)


def has_check(version: str) -> bool:
    return at_least(version, "0.4.0")


def has_gc_and_status(version: str) -> bool:
    return at_least(version, "1.1.0")


def is_legacy_result(version: str) -> bool:
    """0.1.0/0.2.0 results use the ip4/ip6 shape."""
    return version in ("0.1.0", "0.2.0")


def has_ip_version_field(version: str) -> bool:
    """0.3.x/0.4.0 results carry ips[].version."""
    return version in ("0.3.0", "0.3.1", "0.4.0")
