"""bandwidth configuration: limits from the config or the runtime, checked,
and the token-bucket parameters the kernel gets for them. Pure.

Rates are in bit/s and bursts in bits, as in the reference plugin and the
`bandwidth` capability. The limits come from the top-level keys
`ingressRate`, `ingressBurst`, `egressRate`, `egressBurst` if any of them
is present, else from runtimeConfig `bandwidth` (containerd sends it with
capitalised keys and a burst of 2^32-1 when the pod sets none).
"""

from pycni.model import dataclass, field

from pycni.config import NetConf
from pycni.decode import decode, lookup
from pycni.digest import hashed_name
from pycni.errors import CNIError, INVALID_NETWORK_CONFIG

UINT32_MAX = (1 << 32) - 1
UINT64_MAX = (1 << 64) - 1

IFB_PREFIX = "bwp"
IFB_NAME_LENGTH = 15
# The queue may hold what the bucket lets through in this much time plus
# one burst; beyond that packets are dropped (the reference's constant).
LATENCY_MS = 25
TIME_UNITS_PER_SEC = 1_000_000   # tc's time unit: microseconds
LIMIT_KEYS = ("ingressRate", "ingressBurst", "egressRate", "egressBurst")


@dataclass
class BandwidthEntry:
    ingress_rate: int = 0     # bit/s, 0 = no limit
    ingress_burst: int = 0    # bits
    egress_rate: int = 0
    egress_burst: int = 0

    def is_zero(self) -> bool:
        return not (self.ingress_rate or self.ingress_burst
                    or self.egress_rate or self.egress_burst)

    @property
    def shapes_ingress(self) -> bool:
        return self.ingress_rate > 0 and self.ingress_burst > 0

    @property
    def shapes_egress(self) -> bool:
        return self.egress_rate > 0 and self.egress_burst > 0


@dataclass
class BandwidthConf(NetConf):
    """The config; `bandwidth` is the effective entry (None: no limits given)."""
    bandwidth: BandwidthEntry | None = field(default=None, init=False)


def parse_config(raw: dict) -> BandwidthConf:
    """Decode and validate; raises CNIError (code 7) on bad limits."""
    conf = decode(BandwidthConf, raw)
    conf.bandwidth = effective_bandwidth(raw)
    if conf.bandwidth is not None:
        validate(conf.bandwidth)
    return conf


def effective_bandwidth(raw: dict) -> BandwidthEntry | None:
    """Static keys win as a whole: one of them present means runtimeConfig
    `bandwidth` is ignored, as in the reference."""
    if any(lookup(raw, k, _MISSING) is not _MISSING for k in LIMIT_KEYS):
        return _entry(raw, "config")
    runtime = lookup(raw, "runtimeConfig")
    if isinstance(runtime, dict):
        entry = lookup(runtime, "bandwidth")
        if entry is not None:
            return _entry(entry, "runtimeConfig.bandwidth")
    return None


_MISSING = object()


def _entry(obj, path: str) -> BandwidthEntry:
    entry = decode(BandwidthEntry, obj, path)
    for key in LIMIT_KEYS:
        value = getattr(entry, _attr(key))
        if value < 0 or value > UINT64_MAX:
            raise CNIError(INVALID_NETWORK_CONFIG,
                           "rate and burst must be a positive integer",
                           f"{path}.{key} = {value}")
    return entry


def _attr(key: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in key)


def validate(bw: BandwidthEntry) -> None:
    validate_rate_and_burst(bw.ingress_rate, bw.ingress_burst, "ingress")
    validate_rate_and_burst(bw.egress_rate, bw.egress_burst, "egress")


def validate_rate_and_burst(rate: int, burst: int, direction: str) -> None:
    """The reference's rules, plus a floor the kernel needs: the token bucket
    works in whole bytes, so a rate or burst under 8 bits would reach the
    kernel as 0 (the reference then fails with a bare EINVAL)."""
    problem = None
    if burst == 0 and rate != 0:
        problem = "if rate is set, burst must also be set"
    elif rate == 0 and burst != 0:
        problem = "if burst is set, rate must also be set"
    elif burst // 8 >= UINT32_MAX:
        problem = "burst cannot be more than 4GB"
    elif rate and rate < 8:
        problem = "rate must be at least 8 bit/s"
    elif burst and burst < 8:
        problem = "burst must be at least 8 bits"
    if problem:
        raise CNIError(INVALID_NETWORK_CONFIG, problem,
                       f"{direction}Rate={rate} {direction}Burst={burst}")


def ifb_name(network: str, container_id: str) -> str:
    """`bwp` + hex sha512(network + container ID), 15 characters."""
    return hashed_name(IFB_PREFIX, network + container_id, IFB_NAME_LENGTH)


# --- token bucket parameters -----------------------------------------------------

@dataclass(frozen=True)
class Clock:
    """The packet scheduler's clock (/proc/net/psched), as tc reads it."""
    tick_in_usec: float = 15.625   # what every current kernel reports

    @classmethod
    def parse(cls, text: str) -> "Clock":
        t2us, us2t, clock_res = (int(v, 16) for v in text.split()[:3])
        if clock_res == 1_000_000_000:
            t2us = us2t
        return cls(t2us / us2t * (clock_res / TIME_UNITS_PER_SEC))

    @classmethod
    def read(cls) -> "Clock":
        try:
            with open("/proc/net/psched") as f:
                return cls.parse(f.read())
        except (OSError, ValueError):
            return cls()


@dataclass(frozen=True)
class TbfParams:
    """A TBF qdisc's settings: rate in bytes/s, limit in bytes, buffer in
    scheduler ticks (the time one burst takes at `rate`)."""
    rate: int
    limit: int
    buffer: int


def tbf_params(rate_bits: int, burst_bits: int, clock: Clock = Clock(),
               reference: bool = False) -> TbfParams:
    """The reference's computation (same float operations, same order).

    Where its float-to-uint32 conversions overflow, the reference wraps
    around (Go on amd64 keeps the low 32 bits) and ends up with an arbitrary
    smaller bucket: containerd's 2^32-1 bits burst at 10 Mbit/s gives 154 s
    of tokens instead of 429 s, and other rates give far less. Here such
    values saturate at 2^32-1 instead; `reference=True` reproduces the
    wrapped values (CHECK accepts the state either plugin made).
    """
    to_u32 = _go_uint32 if reference else _saturated_uint32
    rate = rate_bits // 8
    burst = burst_bits // 8
    xmit_usec = to_u32(float(burst) * float(TIME_UNITS_PER_SEC) / float(rate))
    buffer = to_u32(float(xmit_usec) * clock.tick_in_usec)
    latency = float(TIME_UNITS_PER_SEC) * (LATENCY_MS / 1000.0)
    limit = to_u32(float(rate) * latency / float(TIME_UNITS_PER_SEC)) + burst
    limit = limit & UINT32_MAX if reference else min(limit, UINT32_MAX)
    return TbfParams(rate=rate, limit=limit, buffer=buffer)


def accepted_readbacks(rate_bits: int, burst_bits: int,
                       clock: Clock = Clock()) -> tuple[set[int], set[int]]:
    """(limits, buffers) a kernel may report for a TBF made by this plugin or
    the reference for these limits. Some kernels store the bucket time in
    nanoseconds capped to 32 bits, so a long one reads back as the cap."""
    ours = tbf_params(rate_bits, burst_bits, clock)
    ref = tbf_params(rate_bits, burst_bits, clock, reference=True)
    buffers = {ours.buffer, ref.buffer}
    buffers |= {min(b * 64, UINT32_MAX) >> 6 for b in buffers}
    return {ours.limit, ref.limit}, buffers


def _saturated_uint32(value: float) -> int:
    """Truncate toward zero and saturate to [0, 2^32-1]."""
    if value != value or value <= 0:
        return 0
    if value >= UINT32_MAX:
        return UINT32_MAX
    return int(value)


def _go_uint32(value: float) -> int:
    """Go's uint32(float64) on amd64: convert to int64 (out of range gives
    the "integer indefinite" 1<<63), keep the low 32 bits."""
    if value != value or not -2.0 ** 63 <= value < 2.0 ** 63:
        return 0
    return int(value) & UINT32_MAX
