"""Network configurations as libcni loads them, every problem a finding.

Pure over bytes (`parse_conflist`, `parse_single`, `parse_plugin`) plus a
thin directory layer (`load_dir`, `load_file`). What libcni does
(containernetworking/cni libcni/conf.go, v1.3):

- `ConfFiles(dir, exts)`: the directory's entries that are not
  directories whose extension (from the last dot) is exactly one of
  `exts`; a missing directory has none;
- lookup by name (`LoadNetworkConf`): `*.conflist` sorted, the first whose
  `name` matches; a file that does not load stops the search with its
  error; then `*.conf`/`*.json` sorted, wrapped as a one-plugin list;
- the default network of containerd (go-cni) and CRI-O (ocicni): the
  first of `*.conf`, `*.conflist`, `*.json` sorted together; containerd
  gives up on the whole directory at a file that does not load, CRI-O and
  podman (which reads `*.conflist` only) skip it;
- a conflist's top-level keys are matched exactly (a Go map); a plugin
  object is decoded into types.PluginConf (keys in any case);
- `disableCheck`, `disableGC`, `loadOnlyInlinedPlugins`: JSON booleans
  or "true"/"false" in any case; `cniVersions`: the highest not newer
  than 1.1.0, `cniVersion` included;
- unless `loadOnlyInlinedPlugins`, `<dir>/<name>/*.conf` plugin objects
  are appended to the inlined ones (a list with none at all fails).
"""

import os
from dataclasses import dataclass, field

from pycni import decode
from pycni.errors import CNIError
from pycni.skel import MAX_ID_LEN, is_valid_id

from .findings import ERROR, WARNING, Finding, join

CONFLIST_EXTS = (".conflist",)
SINGLE_EXTS = (".conf", ".json")
ALL_EXTS = (".conf", ".conflist", ".json")
MAX_FILE = 16 << 20      # bigger than any config; a larger file is read no further
LIBCNI_CURRENT = "1.1.0"


@dataclass
class PluginEntry:
    file: str           # the file holding this plugin object
    pointer: str        # where it is in that file ("" = the whole file)
    conf: dict          # the object as written (Go key order)
    index: int          # its place in the chain


@dataclass
class Network:
    file: str
    kind: str                   # "conflist" or "conf"
    name: str
    cni_version: str            # what libcni sends the plugins
    declared_version: str = ""  # `cniVersion` as written
    disable_check: bool = False
    disable_gc: bool = False
    load_only_inlined: bool = False
    plugins: list[PluginEntry] = field(default_factory=list)
    loads: bool = True          # False: libcni refuses this network
    doc: dict = field(default_factory=dict)
    shadowed_by: str = ""       # a file libcni finds first under the same name


@dataclass
class Loaded:
    """What a set of paths holds, in libcni's order."""
    networks: list[Network] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    directories: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)      # every config file looked at, in order
    defaults: dict = field(default_factory=dict)        # file -> runtimes taking it by default


def go_type(value) -> str:
    """The Go type encoding/json gives a JSON value (for libcni's messages)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    return {int: "float64", float: "float64", str: "string", list: "[]interface {}",
            dict: "map[string]interface {}"}.get(type(value), type(value).__name__)


def _describe(value) -> str:
    from pycni import jsontext
    text = jsontext.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def version_key(version: str):
    """libcni's ordering of versions ("" is 0.1.0, "1.0" is 1.0.0); None if invalid."""
    from pycni.cnitool import versions
    try:
        return versions.key(version)
    except ValueError:
        return None


def parse_json(file: str, data: bytes, findings: list, what: str):
    try:
        return decode.loads(data, what)
    except CNIError as err:
        detail = f": {err.details}" if err.details else ""
        findings.append(Finding(file, "", ERROR, f"not valid JSON ({err.msg}{detail})"))
        return None


def parse_plugin(file: str, ptr: str, obj, findings: list) -> bool:
    """libcni's checks of one plugin object (types.PluginConf); False if it
    refuses it."""
    ok = True

    def bad(where: str, message: str):
        nonlocal ok
        ok = False
        findings.append(Finding(file, where, ERROR, message))

    if not isinstance(obj, dict):
        bad(ptr, f"a plugin configuration must be a JSON object, not {_describe(obj)}")
        return False
    for key in ("cniVersion", "name", "type"):
        value = decode.lookup(obj, key)
        if value is not None and not isinstance(value, str):
            bad(join(ptr, key), f"{key} must be a string, not {_describe(value)}")
    caps = decode.lookup(obj, "capabilities")
    if caps is not None and not (isinstance(caps, dict)
                                 and all(isinstance(v, bool) or v is None for v in caps.values())):
        bad(join(ptr, "capabilities"), "capabilities must be an object of booleans, "
            f"not {_describe(caps)}")

    def member(key: str) -> dict | None:
        """obj[key] when it is an object; None when absent or (reported) not one."""
        value = decode.lookup(obj, key)
        if value is None or isinstance(value, dict):
            return value
        bad(join(ptr, key), f"{key} must be an object, not {_describe(value)}")
        return None

    ipam = member("ipam")
    if ipam is not None:
        ipam_type = decode.lookup(ipam, "type")
        if ipam_type is not None and not isinstance(ipam_type, str):
            bad(join(ptr, "ipam", "type"),
                f"ipam.type must be a string, not {_describe(ipam_type)}")
    dns = member("dns")
    if dns is not None:
        for key in ("nameservers", "search", "options"):
            value = decode.lookup(dns, key)
            if value is not None and not (isinstance(value, list) and all(
                    isinstance(v, str) or v is None for v in value)):
                bad(join(ptr, "dns", key), f"dns.{key} must be a list of strings")
        domain = decode.lookup(dns, "domain")
        if domain is not None and not isinstance(domain, str):
            bad(join(ptr, "dns", "domain"), "dns.domain must be a string")
    if ok and not decode.lookup(obj, "type"):
        hint = ""
        if "plugins" in obj:
            hint = (": this is a configuration list (it has `plugins`); libcni reads "
                    "it as one only from a .conflist file")
        bad(ptr, f"missing 'type'{hint}")
    return ok


def _read_bool(file: str, doc: dict, key: str, findings: list) -> bool | None:
    if key not in doc:
        return False
    value = doc[key]
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    findings.append(Finding(file, join("", key), ERROR,
                            f'{key} must be a boolean or "true"/"false", not {_describe(value)}'))
    return None


def _check_name(file: str, ptr: str, name: str, findings: list) -> None:
    if not name:
        findings.append(Finding(file, ptr, ERROR, "the network name is empty: every plugin "
                                "refuses it (missing network name)"))
    elif len(name) > MAX_ID_LEN or not is_valid_id(name):
        findings.append(Finding(file, ptr, ERROR, f"network name {_describe(name)}: plugins "
                                "refuse it (invalid characters found in network name; "
                                "letters, digits, then also _ . -)"))


def pick_version(file: str, doc: dict, cni_version: str, findings: list) -> str:
    raw = doc["cniVersions"]
    if not isinstance(raw, list):
        findings.append(Finding(file, "/cniVersions", ERROR,
                                f"cniVersions must be a list of versions, not {_describe(raw)}"))
        return cni_version
    current = version_key(LIBCNI_CURRENT)
    candidates = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, str):
            findings.append(Finding(file, join("/cniVersions", i), ERROR,
                                    f"a version must be a string, not {_describe(entry)}"))
            return cni_version
        key = version_key(entry)
        if key is None:
            findings.append(Finding(file, join("/cniVersions", i), ERROR,
                                    f"invalid version {_describe(entry)}: libcni refuses "
                                    "the list"))
            return cni_version
        if key > current:
            findings.append(Finding(file, join("/cniVersions", i), WARNING,
                                    f"version {entry} is newer than libcni's {LIBCNI_CURRENT}: "
                                    "it is skipped"))
        else:
            candidates.append(entry)
    if cni_version:
        key = version_key(cni_version)
        if key is None:
            findings.append(Finding(file, "/cniVersion", ERROR,
                                    f"invalid version {_describe(cni_version)}: libcni "
                                    "refuses the list"))
            return cni_version
        if key <= current:
            candidates.append(cni_version)
    if not candidates:
        return cni_version
    return max(candidates, key=version_key)


def parse_conflist(file: str, data: bytes, findings: list) -> Network | None:
    doc = parse_json(file, data, findings, "network configuration list")
    if doc is None:
        return None
    if not isinstance(doc, dict):
        findings.append(Finding(
            file, "", ERROR, f"a configuration list must be a JSON object, not {_describe(doc)}"))
        return None
    net = Network(file=file, kind="conflist", name="", cni_version="", doc=doc)
    if "name" not in doc:
        other = [k for k in doc if isinstance(k, str) and k.lower() == "name"]
        hint = f" (libcni matches top-level keys exactly: {other[0]!r} is not 'name')" \
            if other else ""
        findings.append(Finding(file, "", ERROR, f"no name{hint}"))
        net.loads = False
    elif not isinstance(doc["name"], str):
        findings.append(Finding(file, "/name", ERROR,
                                f"invalid name type {go_type(doc['name'])}"))
        net.loads = False
    else:
        net.name = doc["name"]
        _check_name(file, "/name", net.name, findings)
    version = doc.get("cniVersion", "")
    if not isinstance(version, str):
        findings.append(Finding(file, "/cniVersion", ERROR,
                                f"invalid cniVersion type {go_type(version)}"))
        net.loads = False
        version = ""
    net.declared_version = version
    if "cniVersions" in doc:
        before = len(findings)
        version = pick_version(file, doc, version, findings)
        if any(f.severity == ERROR for f in findings[before:]):
            net.loads = False
    net.cni_version = version
    flags = {}
    for key in ("disableCheck", "disableGC", "loadOnlyInlinedPlugins"):
        flags[key] = _read_bool(file, doc, key, findings)
        if flags[key] is None:
            net.loads = False
    net.disable_check = bool(flags["disableCheck"])
    net.disable_gc = bool(flags["disableGC"])
    net.load_only_inlined = bool(flags["loadOnlyInlinedPlugins"])
    if "plugins" not in doc:
        if net.load_only_inlined:
            findings.append(Finding(file, "", ERROR,
                                    "loadOnlyInlinedPlugins is true, and no 'plugins' key"))
            net.loads = False
        return net
    plugins = doc["plugins"]
    if not isinstance(plugins, list):
        findings.append(Finding(file, "/plugins", ERROR,
                                f"invalid 'plugins' type {go_type(plugins)}: must be a list"))
        net.loads = False
        return net
    if not plugins:
        findings.append(Finding(file, "/plugins", ERROR, "no plugins in list"))
        net.loads = False
        return net
    for i, obj in enumerate(plugins):
        ptr = join("/plugins", i)
        if parse_plugin(file, ptr, obj, findings):
            net.plugins.append(PluginEntry(file, ptr, obj, len(net.plugins)))
        else:
            net.loads = False
    return net


def parse_single(file: str, data: bytes, findings: list) -> Network | None:
    """A single-plugin .conf/.json file, as libcni wraps it into a list."""
    obj = parse_json(file, data, findings, "network configuration")
    if obj is None:
        return None
    if not parse_plugin(file, "", obj, findings):
        return None
    name = decode.lookup(obj, "name") or ""
    version = decode.lookup(obj, "cniVersion") or ""
    _check_name(file, "/name" if decode.lookup(obj, "name") is not None else "", name, findings)
    net = Network(file=file, kind="conf", name=name, cni_version=version,
                  declared_version=version, doc=obj)
    net.plugins.append(PluginEntry(file, "", obj, 0))
    return net


# --- the file layer --------------------------------------------------------------

def read_config(path: str, findings: list) -> bytes | None:
    """A config file's bytes, without following it into a FIFO or device."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        findings.append(Finding(path, "", ERROR, f"cannot be read: {exc.strerror}"))
        return None
    try:
        import stat
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            findings.append(Finding(path, "", ERROR, "is a directory (a symlink to one?): "
                                    "libcni lists it as a file and fails to read it"))
            return None
        if not stat.S_ISREG(st.st_mode):
            findings.append(Finding(path, "", ERROR, "is not a regular file"))
            return None
        chunks, size = [], 0
        while size <= MAX_FILE:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_FILE:
            findings.append(Finding(path, "", ERROR, f"is larger than {MAX_FILE >> 20} MiB"))
            return None
        return b"".join(chunks)
    except OSError as exc:
        findings.append(Finding(path, "", ERROR, f"cannot be read: {exc.strerror}"))
        return None
    finally:
        os.close(fd)


def conf_files(directory: str, exts, findings: list) -> list[str]:
    """libcni's ConfFiles, sorted."""
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    except OSError as exc:
        findings.append(Finding(directory, "", ERROR, f"cannot be listed: {exc.strerror}"))
        return []
    out = []
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                continue
        except OSError:
            pass
        if os.path.splitext(entry.name)[1] in exts:
            out.append(os.path.join(directory, entry.name))
    return sorted(out)


def ignored_lookalikes(directory: str) -> list[Finding]:
    """Files that look like configs but that libcni never reads."""
    out: list[Finding] = []
    try:
        names = sorted(e.name for e in os.scandir(directory)
                       if not e.is_dir(follow_symlinks=False))
    except OSError:
        return out
    for name in names:
        ext = os.path.splitext(name)[1]
        if ext in ALL_EXTS:
            continue
        lowered = name.lower()
        if ext.lower() in ALL_EXTS or any(e in lowered for e in ALL_EXTS):
            out.append(Finding(os.path.join(directory, name), "", WARNING,
                               f"ignored: libcni reads only files ending in .conflist, .conf "
                               f"or .json (exactly), this one ends in {ext or 'no extension'}"))
    return out


def _side_plugins(net: Network, findings: list) -> None:
    """`<dir>/<name>/*.conf`, appended to a conflist's plugins."""
    if net.load_only_inlined or not net.name or "/" in net.name:
        return
    side = os.path.join(os.path.dirname(net.file), net.name)
    for path in conf_files(side, (".conf",), findings):
        data = read_config(path, findings)
        if data is None:
            net.loads = False
            continue
        obj = parse_json(path, data, findings, "plugin configuration")
        if obj is None or not parse_plugin(path, "", obj, findings):
            net.loads = False
            continue
        net.plugins.append(PluginEntry(path, "", obj, len(net.plugins)))


def load_file(path: str, loaded: Loaded, kind: str | None = None) -> Network | None:
    """One config file; `kind` from its extension unless given."""
    if kind is None:
        kind = "conflist" if path.endswith(".conflist") else "conf"
    loaded.files.append(path)
    data = read_config(path, loaded.findings)
    if data is None:
        return None
    if kind == "conflist":
        net = parse_conflist(path, data, loaded.findings)
        if net is not None:
            _side_plugins(net, loaded.findings)
            if net.loads and not net.plugins:
                loaded.findings.append(Finding(path, "", ERROR, "no plugin configs found "
                                               "(no `plugins` and no "
                                               f"{os.path.join(os.path.dirname(path), net.name)}"
                                               "/*.conf)"))
                net.loads = False
    else:
        net = parse_single(path, data, loaded.findings)
    if net is not None:
        loaded.networks.append(net)
    return net


def load_dir(directory: str, loaded: Loaded) -> None:
    """Every config of a directory, in libcni's lookup order: the
    conflists, then the single-plugin files."""
    loaded.directories.append(directory)
    if not os.path.isdir(directory):
        loaded.findings.append(Finding(directory, "", ERROR, "no such directory"))
        return
    for exts, kind in ((CONFLIST_EXTS, "conflist"), (SINGLE_EXTS, "conf")):
        paths = conf_files(directory, exts, loaded.findings)
        stopped = False
        for i, path in enumerate(paths):
            before = len(loaded.findings)
            net = load_file(path, loaded, kind)
            if not stopped and (net is None or not net.loads) and i + 1 < len(paths):
                stopped = True
                later = "later .conflist file" if kind == "conflist" else "later .conf/.json file"
                loaded.findings.insert(before, Finding(
                    path, "", ERROR, "libcni cannot load this file, and a lookup by name "
                    f"stops at it: no network of a {later} of this directory can be used"))
    runtime_defaults(directory, loaded)
    loaded.findings.extend(ignored_lookalikes(directory))
    if not conf_files(directory, ALL_EXTS, []):
        loaded.findings.append(Finding(directory, "", WARNING,
                                       "no network configurations (.conflist, .conf, .json)"))


def runtime_defaults(directory: str, loaded: Loaded) -> None:
    """The default network of containerd (go-cni, one network: the first
    file of .conf/.conflist/.json in lexical order, or none at all when it
    does not load) and of CRI-O (ocicni: the first file that loads)."""
    order = conf_files(directory, ALL_EXTS, [])
    if not order:
        return
    nets = {n.file: n for n in loaded.networks}
    loads = [f for f in order if f in nets and nets[f].loads]
    if loads and loads[0] == order[0]:
        loaded.defaults.setdefault(order[0], []).extend(["containerd", "CRI-O"])
        return
    if loads:
        loaded.defaults.setdefault(loads[0], []).append("CRI-O")
    loaded.findings.append(Finding(
        order[0], "", ERROR, "the first configuration in lexical order does not load: "
        "containerd, which takes its default network from this file alone, has no pod "
        "network" + (f"; CRI-O skips it and takes {loads[0]}" if loads else "")))


def load_paths(paths: list[str]) -> Loaded:
    loaded = Loaded()
    for path in paths:
        if os.path.isdir(path):
            load_dir(path, loaded)
        elif os.path.lexists(path):
            load_file(path, loaded)
        else:
            loaded.findings.append(Finding(path, "", ERROR, "no such file or directory"))
    mark_shadowed(loaded.networks)
    return loaded


def mark_shadowed(networks: list[Network]) -> None:
    """A name defined twice: libcni takes the first conflist, and a single
    file only when no conflist has the name."""
    first: dict[str, Network] = {}
    for net in sorted(networks, key=lambda n: n.kind != "conflist"):   # stable
        if not net.name:
            continue
        if net.name in first:
            net.shadowed_by = first[net.name].file
        else:
            first[net.name] = net
