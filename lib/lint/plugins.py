"""Plugin objects through their plugin's own config model.

For pycni's plugins the loaders are the plugins' own (plugins/*/config.py,
ipam/*/config.py): what they refuse, ADD refuses with the same message;
what they log as a warning, ADD accepts but does not do as written. The
keys each plugin reads are derived from its config model classes, so they
cannot drift from what the plugin decodes.
"""

import difflib
import importlib
from collections.abc import Iterator
from contextlib import contextmanager

from pycni import decode, model

from . import refdata

# type -> (config module, the model class of the plugin object)
MODELS = {
    "bridge": ("pycni.plugins.bridge.config", "BridgeConf"),
    "macvlan": ("pycni.plugins.macvlan.config", "MacvlanConf"),
    "ptp": ("pycni.plugins.ptp.config", "PtpConf"),
    "tap": ("pycni.plugins.tap.config", "TapConf"),
    "host-device": ("pycni.plugins.host_device.config", "HostDeviceConf"),
    "tuning": ("pycni.plugins.tuning.config", "TuningConf"),
    "portmap": ("pycni.plugins.portmap.config", "PortMapConf"),
    "firewall": ("pycni.plugins.firewall.config", "FirewallConf"),
    "bandwidth": ("pycni.plugins.bandwidth.config", "BandwidthConf"),
    "sbr": ("pycni.plugins.sbr.config", "SbrConf"),
    "loopback": ("pycni.config", "NetConf"),
}
IPAM_MODELS = {
    "host-local": ("pycni.ipam.host_local.config", "HostLocalIPAMConf"),
    "static": ("pycni.ipam.static.config", "StaticIPAMConf"),
    # pycni's dhcp when this installation has it (else refdata's key set)
    "dhcp": ("pycni.ipam.dhcp.config", "DhcpIPAMConf"),
}
# Keys a plugin reads from the raw config, outside its model.
RAW_KEYS = {
    "bandwidth": ("ingressRate", "ingressBurst", "egressRate", "egressBurst"),
}
# Subtrees written by the runtime, or free-form: their keys are not checked
# (ipam: against the IPAM plugin's model instead).
UNCHECKED = ("runtimeConfig", "args", "prevResult", "capabilities", "ipam")


class _NoDevices:
    """The sysfs tree host-device's loader asks about devices the runtime
    names at run time (deviceID): lint has none to look at."""

    def device_id_kind(self, device_id):
        return "pci"

    def has_dpdk_driver(self, pci):
        return False


def _model(spec):
    module, name = spec
    return getattr(importlib.import_module(module), name)


def _available(spec) -> bool:
    try:
        _model(spec)
    except (ImportError, AttributeError):
        return False
    return True


def ours(plugin_type: str) -> bool:
    """A pycni plugin whose config model this installation has."""
    spec = MODELS.get(plugin_type) or IPAM_MODELS.get(plugin_type)
    return spec is not None and _available(spec)


def _unwrap(tp):
    """The record class inside T, T | None, list[T], list[list[T]]; else None."""
    for _ in range(4):
        args = decode._union_args(tp)
        if args is not None:
            inner = [a for a in args if a is not type(None)]
            if len(inner) != 1:
                return None
            tp = inner[0]
            continue
        if getattr(tp, "__origin__", None) is list:
            tp = tp.__args__[0]
            continue
        break
    return tp if isinstance(tp, type) and model.is_dataclass(tp) else None


def model_keys(cls) -> dict:
    """fold(key) -> (key as spelled, nested record class or None) of `cls`."""
    hints = decode._field_types(cls)
    out = {}
    for f, name, folded in decode._json_fields(cls):
        out[folded] = (name, _unwrap(hints[f.name]))
    return out


def known_keys(plugin_type: str) -> dict | None:
    """The top-level keys `plugin_type` reads (as model_keys), None if
    lint does not know the plugin."""
    if plugin_type in MODELS:
        keys = model_keys(_model(MODELS[plugin_type]))
        extra: tuple[str, ...] = RAW_KEYS.get(plugin_type, ())
    elif plugin_type in refdata.REFERENCE_KEYS:
        keys = {}
        extra = refdata.REFERENCE_KEYS[plugin_type]
    else:
        return None
    for name in (*refdata.COMMON_KEYS, *refdata.PYCNI_KEYS, *extra):
        keys.setdefault(decode.fold(name), (name, None))
    return keys


def known_ipam_keys(ipam_type: str) -> dict | None:
    if ipam_type in IPAM_MODELS and ours(ipam_type):
        keys = model_keys(_model(IPAM_MODELS[ipam_type]))
    elif ipam_type in refdata.REFERENCE_IPAM_KEYS:
        keys = {decode.fold(k): (k, None) for k in refdata.REFERENCE_IPAM_KEYS[ipam_type]}
    else:
        return None
    keys.setdefault("type", ("type", None))
    return keys


def closest(name: str, candidates) -> str | None:
    """The known key a typo most likely meant."""
    by_fold = {decode.fold(c): c for c in candidates}
    hits = difflib.get_close_matches(decode.fold(name), list(by_fold), n=1, cutoff=0.6)
    return by_fold[hits[0]] if hits else None


def unknown_keys(obj: dict, keys: dict, path: tuple = (), skip=UNCHECKED):
    """(path, key, closest known key or None) of every key of `obj` (and of
    the records below it) that the plugin never reads."""
    out = []
    for k, value in obj.items():
        if not isinstance(k, str):
            continue
        folded = decode.fold(k)
        if path == () and (k in skip or folded in {decode.fold(s) for s in skip}):
            continue
        if k.startswith("cni.dev/"):
            continue
        entry = keys.get(folded)
        if entry is None:
            out.append((path, k, closest(k, [n for n, _ in keys.values()])))
            continue
        sub = entry[1]
        if sub is None:
            continue
        sub_keys = model_keys(sub)
        if isinstance(value, dict):
            out.extend(unknown_keys(value, sub_keys, (*path, k), skip=()))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    out.extend(unknown_keys(item, sub_keys, (*path, k, i), skip=()))
                elif isinstance(item, list):        # list[list[T]]: host-local ranges
                    for j, x in enumerate(item):
                        if isinstance(x, dict):
                            out.extend(unknown_keys(x, sub_keys, (*path, k, i, j), skip=()))
    return out


@contextmanager
def captured_warnings() -> Iterator[list[str]]:
    """What the loaders warn about (pycni.log.warning, nodeconf.warn),
    collected instead of written to stderr."""
    from pycni import log, nodeconf
    seen: list[str] = []

    def collect(message: str) -> None:
        if message not in seen:
            seen.append(message)

    saved = (log.warn, nodeconf.warn, list(log._warnings))
    log.warn = nodeconf.warn = collect
    try:
        yield seen
    finally:
        log.warn, nodeconf.warn = saved[0], saved[1]
        log._warnings[:] = saved[2]


# What ADD of each plugin checks of the config before it touches anything,
# through the plugin's own loaders (plugins/*/config.py, ipam/*/config.py).
# One function per plugin, so that each names its own config module (and a
# type checker sees that module's functions, not another plugin's).

def _bridge(config: dict, stdin: bytes, env) -> None:
    from pycni.plugins.bridge import config as bridge_config
    settings = bridge_config.load(config, None)
    bridge_config.validate_add(settings)
    if settings.mac_error is not None:
        raise settings.mac_error


def _macvlan(config: dict, stdin: bytes, env) -> None:
    from pycni.plugins.macvlan import config as macvlan_config
    macvlan_config.load(config, None)


def _tap(config: dict, stdin: bytes, env) -> None:
    from pycni.plugins.tap import config as tap_config
    tap_config.load(config, None)


def _ptp(config: dict, stdin: bytes, env) -> None:
    from pycni.plugins.ptp import config as ptp_config
    ptp_config.load(config, masq_setup=True)


def _host_device(config: dict, stdin: bytes, env) -> None:
    from pycni.plugins.host_device import config as host_device_config
    host_device_config.load(config, _NoDevices(), env)


def _sbr(config: dict, stdin: bytes, env) -> None:
    from pycni.plugins.sbr import config as sbr_config
    sbr_config.load(config)


def _tuning(config: dict, stdin: bytes, env) -> None:
    from pycni import nodeconf
    from pycni.plugins.tuning import config as tuning_config
    tuning_config.check_duplicate_sysctl_keys(stdin)
    conf = tuning_config.decode_conf(config)
    settings = tuning_config.build_settings(conf, "eth0", "", tuning_config.read_allowlist())
    nodeconf.require_state_dir(settings.data_dir, env)


def _portmap(config: dict, stdin: bytes, env) -> None:
    from pycni.plugins.portmap import config as portmap_config
    portmap_config.parse_config(config, lambda: "iptables", scripts=True)


def _firewall(config: dict, stdin: bytes, env) -> None:
    from pycni.plugins.firewall import config as firewall_config
    firewall_config.parse_config(config, lambda: "iptables")


def _bandwidth(config: dict, stdin: bytes, env) -> None:
    from pycni.plugins.bandwidth import config as bandwidth_config
    bandwidth_config.parse_config(config)


def _host_local(config: dict, stdin: bytes, env) -> None:
    from pycni import nodeconf
    from pycni.ipam.host_local import config as host_local_config
    settings = host_local_config.load(config, "")
    nodeconf.require_state_dir(settings.data_dir, env)


def _static(config: dict, stdin: bytes, env) -> None:
    from pycni.ipam.static import config as static_config
    static_config.load(config, "")


def _dhcp(config: dict, stdin: bytes, env) -> None:
    # pycni's dhcp only when this installation has it (ours() says)
    importlib.import_module(IPAM_MODELS["dhcp"][0]).load(config)


def _loopback(config: dict, stdin: bytes, env) -> None:
    """loopback reads nothing beyond the common keys."""


VALIDATORS = {
    "bridge": _bridge,
    "macvlan": _macvlan,
    "tap": _tap,
    "ptp": _ptp,
    "host-device": _host_device,
    "sbr": _sbr,
    "tuning": _tuning,
    "portmap": _portmap,
    "firewall": _firewall,
    "bandwidth": _bandwidth,
    "loopback": _loopback,
    "host-local": _host_local,
    "static": _static,
    "dhcp": _dhcp,
}


def validate(plugin_type: str, config: dict, stdin: bytes, env) -> None:
    """What ADD of `plugin_type` checks of the config before it touches
    anything; raises the CNIError ADD would fail with."""
    check = VALIDATORS.get(plugin_type)
    if check is not None:
        check(config, stdin, env)


def data_dirs(plugin_type: str, config: dict) -> list[tuple[tuple, str]]:
    """(pointer path, directory) of the stores `plugin_type` writes."""
    out: list[tuple[tuple, str]] = []
    if plugin_type == "host-local":
        ipam = decode.lookup(config, "ipam")
        value = decode.lookup(ipam, "dataDir") if isinstance(ipam, dict) else None
        if isinstance(value, str) and value:
            out.append((("ipam", "dataDir"), value))
        elif value is None:
            out.append((("ipam",), "/var/lib/cni/networks"))
    elif plugin_type in ("tuning", "host-device"):
        value = decode.lookup(config, "dataDir")
        if isinstance(value, str) and value:
            out.append((("dataDir",), value))
    return out
