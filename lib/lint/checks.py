"""The checks: over one network (its version, each plugin through its own
model, the chain) and across the networks of a node (subnets, bridges,
stores). Pure but for the `probe` object (CNI_PATH, VERSION, file modes)
passed in, which tests replace."""

import ipaddress
from dataclasses import dataclass, field

from pycni import decode
from pycni import version as spec
from pycni.errors import CNIError

from . import plugins, refdata
from .findings import ERROR, WARNING, Finding, join
from .load import Network, PluginEntry, version_key

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .probe import Prober

RUNTIME_CAPS = ("ips", "ipRanges", "portMappings", "mac", "bandwidth", "deviceID")


@dataclass
class Context:
    probe: "Prober"         # or a stand-in with its methods (tests)
    env: dict
    findings: list = field(default_factory=list)

    def add(self, file, ptr, severity, message):
        self.findings.append(Finding(file, ptr, severity, message))


def commands_of(version: str) -> str:
    """What the runtime can ask of a network of this version."""
    v = version or spec.DEFAULT
    if v not in spec.ALL:
        return "?"
    if spec.has_gc_and_status(v):
        return "ADD DEL CHECK GC STATUS"
    if spec.has_check(v):
        return "ADD DEL CHECK (GC, STATUS need 1.1.0)"
    return "ADD DEL (CHECK needs 0.4.0, GC and STATUS 1.1.0)"


def _type(obj: dict) -> str:
    value = decode.lookup(obj, "type")
    return value if isinstance(value, str) else ""


def _ipam_type(obj: dict) -> str:
    ipam = decode.lookup(obj, "ipam")
    value = decode.lookup(ipam, "type") if isinstance(ipam, dict) else None
    return value if isinstance(value, str) else ""


def request_config(net: Network, entry: PluginEntry) -> dict:
    """The object the plugin gets on stdin: libcni sets name and cniVersion."""
    conf = dict(entry.conf)
    conf["name"] = net.name
    conf["cniVersion"] = net.cni_version
    return conf


def check_version(net: Network, ctx: Context) -> None:
    f = net.file
    where = "/cniVersion" if net.kind == "conflist" and "cniVersion" in net.doc else ""
    if net.kind == "conf" and decode.lookup(net.doc, "cniVersion") is not None:
        where = "/cniVersion"
    v = net.cni_version
    if not v:
        ctx.add(f, where, WARNING, "no cniVersion: plugins take it as 0.1.0 (no CHECK, "
                "GC or STATUS, results in the 0.1.0 format)")
    elif version_key(v) is None:
        ctx.add(f, where, ERROR, f"cniVersion {v!r} is not a version")
        return
    elif v not in spec.ALL:
        newest = spec.ALL[-1]
        if version_key(v) > version_key(newest):
            ctx.add(f, where, ERROR, f"cniVersion {v} is newer than any spec version "
                    f"({newest} is the newest): libcni cannot read the plugins' results")
        else:
            ctx.add(f, where, ERROR, f"cniVersion {v} is not a spec version (those are "
                    f"{', '.join(spec.ALL)})")
    if v in spec.ALL or not v:
        if net.disable_check and not spec.has_check(v or spec.DEFAULT):
            ctx.add(f, "/disableCheck", WARNING, f"disableCheck has no effect: a {v or '0.1.0'} "
                    "network has no CHECK (it needs 0.4.0)")
        if net.disable_gc and not spec.has_gc_and_status(v or spec.DEFAULT):
            ctx.add(f, "/disableGC", WARNING, f"disableGC has no effect: a {v or '0.1.0'} "
                    "network has no GC (it needs 1.1.0)")


def check_binary(net: Network, entry: PluginEntry, ptr: str, name: str, what: str,
                 ctx: Context) -> None:
    """`name` (a plugin type) on CNI_PATH, and the version it speaks."""
    if "/" in name or "\\" in name or name in (".", "..") or "\0" in name:
        ctx.add(entry.file, ptr, ERROR, f"{what} {name!r} is a path: runtimes look types up "
                "on CNI_PATH and refuse a name with a path separator")
        return
    probe = ctx.probe
    found, runtime_would, skipped = probe.find(name)
    dirs = ":".join(probe.dirs) or "(nothing)"
    if found is None:
        if runtime_would is not None:
            ctx.add(entry.file, ptr, ERROR,
                    f"{what} {name!r}: a runtime would run {runtime_would}, which others "
                    f"can change ({'; '.join(skipped) or 'not trusted'}): whoever can write "
                    "there decides what runs as root; lint did not run it")
        else:
            ctx.add(entry.file, ptr, ERROR, f"{what} {name!r} not found in {dirs} "
                    f"({probe.source}): ADD fails")
        return
    if runtime_would is not None and not _same_file(runtime_would, found):
        ctx.add(entry.file, ptr, ERROR,
                f"{what} {name!r}: a runtime would run {runtime_would}, which others can "
                f"change ({'; '.join(skipped) or 'not trusted'}), not {found}: whoever can "
                "write there decides what runs as root; lint did not run it")
        return
    supported, why = probe.versions(found)
    version = net.cni_version or spec.DEFAULT
    if supported is None:
        if why:
            ctx.add(entry.file, ptr, WARNING, f"{what} {name!r} ({found}): {why}; its "
                    "versions are unknown")
        return
    if version not in supported:
        ctx.add(entry.file, ptr, ERROR,
                f"{what} {name!r} ({found}) does not support cniVersion {version} "
                f"(it supports {', '.join(supported)}): ADD fails with "
                "'incompatible CNI versions'")


def decode_pointer(config: dict, path: str, base: str) -> str:
    """The pointer of a decode error's `config.a.b[0].c` path, with the keys
    spelled as the document spells them; `base` when it names nothing."""
    if not path.startswith("config."):
        return base
    parts: list = []
    for token in path[len("config."):].split("."):
        name, _, rest = token.partition("[")
        parts.append(name)
        for index in rest.replace("]", "").split("[") if rest else ():
            if not index.isdigit():
                return base
            parts.append(int(index))
    node, spelled = config, []
    for part in parts:
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                return base
            node = node[part]
        else:
            if not isinstance(node, dict):
                return base
            key = next((k for k in reversed(node) if decode.fold(k) == decode.fold(part)), None)
            if key is None:
                return base
            part, node = key, node[key]
        spelled.append(part)
    return join(base, *spelled)


def _same_file(a: str, b: str) -> bool:
    import os
    return os.path.realpath(a) == os.path.realpath(b)


def check_ours(plugin_type: str, config: dict, file: str, ptr: str, caps: set,
               ctx: Context, plugin_ptr: str) -> None:
    """The config through the plugin's own loader; findings at `ptr`, or
    where in the plugin object (at `plugin_ptr`) a decode error points."""
    from pycni import jsontext
    stdin = jsontext.dumps(config).encode()
    with plugins.captured_warnings() as warned:
        try:
            plugins.validate(plugin_type, config, stdin, ctx.env)
        except CNIError as err:
            message = err.msg + (f" ({err.details})" if err.details else "")
            where = decode_pointer(config, getattr(err, "path", ""), plugin_ptr)
            ptr = ptr if where == plugin_ptr else where
            runtime = [c for c in caps if c in RUNTIME_CAPS]
            if runtime:
                ctx.add(file, ptr, WARNING, f"{plugin_type} refuses this configuration "
                        f"unless the runtime's {', '.join(sorted(runtime))} supplies what "
                        f"is missing: {message}")
            else:
                ctx.add(file, ptr, ERROR, f"{plugin_type} refuses it (ADD fails, code "
                        f"{err.code}): {message}")
        except Exception as exc:    # a loader bug must not stop the lint
            ctx.add(file, ptr, WARNING, f"lint could not check it through {plugin_type}'s "
                    f"model: {type(exc).__name__}: {exc}")
    for message in warned:
        ctx.add(file, ptr, WARNING, f"{plugin_type} accepts it but warns: {message}")


def check_unknown_keys(obj: dict, keys: dict, file: str, ptr: str, who: str,
                       ctx: Context, skip=plugins.UNCHECKED) -> None:
    for path, key, near in plugins.unknown_keys(obj, keys, skip=skip):
        hint = f" (did you mean {near!r}?)" if near else ""
        ctx.add(file, join(ptr, *path, key), WARNING,
                f"unknown key {key!r}: {who} ignores it{hint}")


def check_plugin(net: Network, entry: PluginEntry, ctx: Context) -> None:
    obj, f, ptr = entry.conf, entry.file, entry.pointer
    ptype, ipam_type = _type(obj), _ipam_type(obj)
    caps_raw = decode.lookup(obj, "capabilities")
    caps = {k for k, v in caps_raw.items() if v} if isinstance(caps_raw, dict) else set()
    type_ptr = join(ptr, "type")
    check_binary(net, entry, type_ptr, ptype, "plugin type", ctx)
    if ipam_type:
        check_binary(net, entry, join(ptr, "ipam", "type"), ipam_type, "IPAM type", ctx)
    # the chain
    if entry.index == 0 and ptype in refdata.CHAINED:
        ctx.add(f, type_ptr, ERROR, f"{ptype} acts on the result of the plugins before it: "
                "first in a chain its ADD fails (must be called as chained plugin)")
    if entry.index > 0 and ptype in refdata.INTERFACE_PLUGINS:
        ctx.add(f, type_ptr, WARNING, f"{ptype} creates the container's interface and "
                "ignores the results before it: its result replaces theirs "
                "(put it first in the chain)")
    if ptype in refdata.IPAM_REQUIRED and not ipam_type and not plugins.ours(ptype):
        ctx.add(f, join(ptr, "ipam") if decode.lookup(obj, "ipam") is not None else ptr,
                ERROR, f"{ptype} needs an IPAM plugin (\"ipam\": {{\"type\": ...}}): ADD fails")
    if ipam_type and ptype in refdata.CHAINED:
        ctx.add(f, join(ptr, "ipam"), WARNING, f"{ptype} never calls an IPAM plugin: "
                "this ipam section is ignored")
    # capabilities
    if ptype in refdata.CAPABILITIES and (not ipam_type or ipam_type in refdata.CAPABILITIES):
        usable = set(refdata.CAPABILITIES[ptype]) | set(refdata.CAPABILITIES.get(ipam_type, ()))
        for cap in sorted(caps - usable):
            users = ", ".join(t for t, c in refdata.CAPABILITIES.items() if cap in c)
            ctx.add(f, join(ptr, "capabilities", cap), WARNING,
                    f"{ptype}{' with ' + ipam_type if ipam_type else ''} does not use the "
                    f"{cap!r} capability: what the runtime passes for it is ignored"
                    + (f" (it is for {users})" if users else ""))
    # keys
    keys = plugins.known_keys(ptype)
    if keys is not None:
        check_unknown_keys(obj, keys, f, ptr, ptype, ctx)
    ipam = decode.lookup(obj, "ipam")
    if isinstance(ipam, dict) and ipam_type:
        ikeys = plugins.known_ipam_keys(ipam_type)
        if ikeys is not None:
            ipam_key = next(k for k in reversed(obj) if decode.fold(k) == "ipam")
            check_unknown_keys(ipam, ikeys, f, join(ptr, ipam_key), ipam_type, ctx, skip=())
    # the models
    config = request_config(net, entry)
    if ptype in plugins.MODELS and plugins.ours(ptype):
        check_ours(ptype, config, f, ptr, caps, ctx, ptr)
    if plugins.ours(ipam_type) and ptype not in refdata.CHAINED:
        check_ours(ipam_type, config, f, join(ptr, "ipam"), caps, ctx, ptr)
    # stores
    for path, directory in plugins.data_dirs(ipam_type, config) + plugins.data_dirs(ptype, config):
        problem = ctx.probe.store_problem(directory)
        if problem:
            ctx.add(f, join(ptr, *path), ERROR, f"store directory {directory}: {problem}: "
                    "others could plant or change the plugin's state")


def check_network(net: Network, ctx: Context) -> None:
    if net.shadowed_by:
        ctx.add(net.file, "/name" if net.kind == "conflist" else "", WARNING,
                f"network {net.name!r} is also defined in {net.shadowed_by}, which libcni "
                "finds first: this definition is never used")
    check_version(net, ctx)
    for entry in net.plugins:
        check_plugin(net, entry, ctx)


# --- across the node's networks -------------------------------------------------

@dataclass
class Subnet:
    net: Network
    file: str
    pointer: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    bridge: str | None


def _subnets(net: Network) -> list[Subnet]:
    out = []
    for entry in net.plugins:
        obj = entry.conf
        ptype, ipam_type = _type(obj), _ipam_type(obj)
        bridge = None
        if ptype == "bridge":
            name = decode.lookup(obj, "bridge")
            bridge = name if isinstance(name, str) and name else "cni0"
        ipam = decode.lookup(obj, "ipam")
        if not isinstance(ipam, dict):
            continue
        found: list[tuple[tuple, str]] = []
        if ipam_type == "host-local":
            subnet = decode.lookup(ipam, "subnet")
            if isinstance(subnet, str):
                found.append((("ipam", "subnet"), subnet))
            ranges = decode.lookup(ipam, "ranges")
            for i, rs in enumerate(ranges if isinstance(ranges, list) else []):
                for j, r in enumerate(rs if isinstance(rs, list) else []):
                    s = decode.lookup(r, "subnet") if isinstance(r, dict) else None
                    if isinstance(s, str):
                        found.append((("ipam", "ranges", i, j, "subnet"), s))
        elif ipam_type == "static":
            addresses = decode.lookup(ipam, "addresses")
            for i, a in enumerate(addresses if isinstance(addresses, list) else []):
                s = decode.lookup(a, "address") if isinstance(a, dict) else None
                if isinstance(s, str):
                    found.append((("ipam", "addresses", i, "address"), s))
        for path, text in found:
            try:
                network = ipaddress.ip_network(text, strict=False)
            except ValueError:
                continue
            out.append(Subnet(net, entry.file, join(entry.pointer, *path), network, bridge))
    return out


def check_node(networks: list[Network], ctx: Context) -> None:
    live = [n for n in networks if n.loads and not n.shadowed_by]
    subnets = [s for n in live for s in _subnets(n)]
    for i, a in enumerate(subnets):
        for b in subnets[i + 1:]:
            if a.net is b.net or a.network.version != b.network.version:
                continue
            if not a.network.overlaps(b.network):
                continue
            if a.bridge and a.bridge == b.bridge:
                ctx.add(b.file, b.pointer, ERROR,
                        f"{b.network} of network {b.net.name!r} overlaps {a.network} of network "
                        f"{a.net.name!r} ({a.file}) on the same bridge {a.bridge}: each "
                        "network has its own address store, so both hand out the same "
                        "addresses on one link")
            else:
                ctx.add(b.file, b.pointer, WARNING,
                        f"{b.network} of network {b.net.name!r} overlaps {a.network} of network "
                        f"{a.net.name!r} ({a.file}): the host's routes to the two networks "
                        "conflict")
    by_bridge: dict = {}
    for s in subnets:
        if s.bridge:
            by_bridge.setdefault(s.bridge, []).append(s)
    for bridge, items in by_bridge.items():
        names: dict[str, Subnet] = {}
        for s in items:
            names.setdefault(s.net.name, s)
        if len(names) < 2:
            continue
        first, *others = list(names.values())
        for s in others:
            mine = {x.network for x in items if x.net is s.net}
            theirs = {x.network for x in items if x.net is first.net}
            if mine != theirs and not any(m.overlaps(t) for m in mine for t in theirs
                                          if m.version == t.version):
                ctx.add(s.file, s.pointer, WARNING,
                        f"network {s.net.name!r} uses bridge {bridge} like network "
                        f"{first.net.name!r} ({first.file}), with other subnets: the bridge "
                        "gets the gateway addresses of both and their containers share "
                        "one link")
