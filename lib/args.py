"""CNI_ARGS: the deprecated but still universal "K=V;K=V" environment channel.

podman sends ``IgnoreUnknown=1;K8S_POD_NAME=x`` (plus ``MAC=``/``IP=``),
containerd ``IgnoreUnknown=1;K8S_POD_NAMESPACE=..;K8S_POD_NAME=..;..``.
The reference matches keys case-sensitively against the plugin's known
fields and rejects unknown keys unless IgnoreUnknown is true.
"""

from .model import dataclass, field

from .errors import CNIError, INVALID_ENVIRONMENT

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
