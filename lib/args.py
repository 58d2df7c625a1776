"""CNI_ARGS: the deprecated but still universal "K=V;K=V" environment channel.

podman sends ``IgnoreUnknown=1;K8S_POD_NAME=x`` (plus ``MAC=``/``IP=``),
containerd ``IgnoreUnknown=1;K8S_POD_NAMESPACE=..;K8S_POD_NAME=..;..``.
The reference matches keys case-sensitively against the plugin's known
fields and rejects unknown keys unless IgnoreUnknown is true.

Also here: reading the per-container MAC a link plugin may be given
(CNI_ARGS MAC=, runtimeConfig.mac, args.cni.mac), without pycni.mac.
"""

from .model import dataclass, field

from .errors import CNIError, INVALID_ENVIRONMENT, INVALID_NETWORK_CONFIG

# Keys every plugin understands (reference types.CommonArgs and the K8S set
# that kubelet/containerd/CRI-O send).
COMMON_KEYS = frozenset({
    "IgnoreUnknown", "K8S_POD_NAMESPACE", "K8S_POD_NAME",
    "K8S_POD_INFRA_CONTAINER_ID", "K8S_POD_UID",
})


@dataclass
class CniArgs:
    """CNI_ARGS as (key, value) pairs in order (Request.cni_args)."""
    pairs: list[tuple[str, str]] = field(default_factory=list)

    def get(self, key: str, default: str = "") -> str:
        """The value of `key`; the last one if repeated, as in the reference."""
        for k, v in reversed(self.pairs):
            if k == key:
                return v
        return default

    @property
    def ignore_unknown(self) -> bool:
        """IgnoreUnknown's value (1/0/true/false, any case); default false."""
        return parse_go_bool(self.get("IgnoreUnknown", "false"), "IgnoreUnknown")

    def require_known(self, known) -> None:
        """Reject keys the plugin does not know, unless IgnoreUnknown."""
        if self.ignore_unknown:
            return
        allowed = COMMON_KEYS | set(known)
        for k, _ in self.pairs:
            if k not in allowed:
                raise CNIError(INVALID_ENVIRONMENT,
                               f'unknown CNI_ARGS key "{k}"',
                               "set IgnoreUnknown=1 to ignore unknown keys")


def parse_cni_args(text: str) -> CniArgs:
    """Parse "K=V;K=V"; a pair without exactly one "=" is code 4."""
    args = CniArgs()
    if not text:
        return args
    for pair in text.split(";"):
        parts = pair.split("=")
        if len(parts) != 2:
            raise CNIError(INVALID_ENVIRONMENT,
                           f'invalid CNI_ARGS pair "{pair}"')
        args.pairs.append((parts[0], parts[1]))
    return args


def parse_go_bool(value: str, name: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true"):
        return True
    if lowered in ("0", "false"):
        return False
    raise CNIError(INVALID_ENVIRONMENT, f'boolean CNI_ARGS value for {name} '
                   f'must be one of 1, 0, true, false, got "{value}"')


# --- the MAC a plugin puts on the link it creates (macvlan, tap) ---------------
# Read here, where CNI_ARGS are: pycni.mac, which checks and normalises
# the chosen address, loads only when one of these is set.

def mac_from_cni_args(cni_args: CniArgs | None) -> str:
    """CNI_ARGS MAC= ("" without CNI_ARGS); any other key but the common
    ones is code 4 unless IgnoreUnknown, as the reference's args struct
    knows MAC only. `cni_args`: a skel.Request's cni_args, or None."""
    if cni_args is None or not cni_args.pairs:
        return ""
    cni_args.require_known({"MAC"})
    return cni_args.get("MAC")


def config_string(obj, path: str, *keys: str) -> str:
    """obj[k1][k2].. looked up Go-style (a MAC under runtimeConfig or
    args): "" where a level is absent or no object, code 7 where the value
    is no string; `path` names it in the error."""
    from .decode import lookup
    value = obj
    for k in keys:
        if not isinstance(value, dict):
            return ""
        value = lookup(value, k)
        if value is None:
            return ""
    if not isinstance(value, str):
        raise CNIError(INVALID_NETWORK_CONFIG, f"invalid value for {path}: expected a string")
    return value
