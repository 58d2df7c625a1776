"""Loading network configurations the way libcni does.

The parsing functions are pure (bytes in, `NetworkList` out); `load_network`
is the thin directory-walking layer:

1. every ``*.conflist`` in the directory, sorted lexically: the first whose
   ``name`` matches wins (a file that fails to parse aborts the search, as
   in libcni);
2. otherwise ``*.conf``/``*.json`` single-plugin configs, sorted, wrapped
   into a one-plugin list (a format removed in spec 1.0 but still loaded).

For a conflist with ``loadOnlyInlinedPlugins`` false (the default), every
``<dir>/<name>/*.conf`` plugin config is appended to the inlined plugins.
"""

import json
import os
from dataclasses import dataclass, field

from . import versions

CONFLIST_EXTENSIONS = (".conflist",)
SINGLE_EXTENSIONS = (".conf", ".json")


class ConfError(Exception):
    """A configuration that cannot be loaded (printed as is, exit 1)."""


@dataclass
class NetworkList:
    name: str
    cni_version: str = ""
    disable_check: bool = False
    disable_gc: bool = False
    load_only_inlined_plugins: bool = False
    plugins: list[dict] = field(default_factory=list)
    raw: bytes = b""        # the bytes the list came from (stored in the cache)


_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
               "\u2028": "\\u2028", "\u2029": "\\u2029"}
_GO_ESCAPE_TABLE = str.maketrans(_GO_ESCAPES)


def go_escape(text: str) -> str:
    """Go's encoding/json escapes <, >, & and U+2028/9 inside strings; those
    characters cannot occur outside strings, so a plain translation works."""
    return text.translate(_GO_ESCAPE_TABLE)


def go_json(obj) -> bytes:
    """JSON as Go's encoding/json writes a map: compact, keys sorted."""
    return go_escape(json.dumps(obj, sort_keys=True, separators=(",", ":"),
                                ensure_ascii=False)).encode()


def parse_plugin(data: bytes, what: str = "error parsing configuration") -> dict:
    """One plugin object; `type` is required."""
    try:
        conf = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfError(f"{what}: {exc}") from None
    if not isinstance(conf, dict):
        raise ConfError(f"{what}: plugin config is not a JSON object")
    for key in ("cniVersion", "name", "type"):
        if key in conf and conf[key] is not None and not isinstance(conf[key], str):
            raise ConfError(f"{what}: {key!r} must be a string")
    caps = conf.get("capabilities")
    if caps is not None and (not isinstance(caps, dict)
                             or not all(isinstance(v, bool) for v in caps.values())):
        raise ConfError(f"{what}: 'capabilities' must be an object of booleans")
    if not conf.get("type"):
        raise ConfError(f"{what}: missing 'type'")
    return conf


def _read_bool(raw: dict, key: str) -> bool:
    """A JSON bool or a case-insensitive "true"/"false" string."""
    if key not in raw:
        return False
    value = raw[key]
    if isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise ConfError(f"error parsing configuration list: invalid type "
                        f"{_go_type(value)} for {key}")
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise ConfError(f'error parsing configuration list: invalid value "{lowered}" for {key}')


def _go_type(value) -> str:
    if value is None:
        return "<nil>"
    return {bool: "bool", int: "float64", float: "float64", str: "string",
            list: "[]interface {}", dict: "map[string]interface {}"}.get(type(value), "?")


def pick_version(cni_version: str, cni_versions) -> str:
    """`cniVersions` plus `cniVersion`, minus versions newer than ours: the highest."""
    if not isinstance(cni_versions, list):
        raise ConfError("error parsing configuration list: invalid type for cniVersions: "
                        f"{_go_type(cni_versions)}")

    def usable(version: str, what: str) -> bool:
        try:
            return not versions.greater_than(version, versions.CURRENT)
        except ValueError as exc:
            raise ConfError(f"error parsing configuration list: invalid {what}: {exc}") from None

    candidates = []
    for index, entry in enumerate(cni_versions):
        if not isinstance(entry, str):
            raise ConfError("error parsing configuration list: invalid type for "
                            f"cniVersions index {index}: {_go_type(entry)}")
        if usable(entry, f"cniVersions entry {entry} at index {index}"):
            candidates.append(entry)
    if cni_version and usable(cni_version, f"cniVersion {cni_version}"):
        candidates.append(cni_version)
    if not candidates:
        return cni_version
    return max(candidates, key=versions.key)


def parse_list(data: bytes) -> NetworkList:
    """A conflist's own content (plugins from the side directory not included)."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfError(f"error parsing configuration list: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfError("error parsing configuration list: not a JSON object")
    if "name" not in raw:
        raise ConfError("error parsing configuration list: no name")
    name = raw["name"]
    if not isinstance(name, str):
        raise ConfError(f"error parsing configuration list: invalid name type {_go_type(name)}")
    cni_version = raw.get("cniVersion", "")
    if not isinstance(cni_version, str):
        raise ConfError("error parsing configuration list: invalid cniVersion type "
                        f"{_go_type(cni_version)}")
    if "cniVersions" in raw:
        cni_version = pick_version(cni_version, raw["cniVersions"])
    netlist = NetworkList(
        name=name, cni_version=cni_version,
        disable_check=_read_bool(raw, "disableCheck"),
        disable_gc=_read_bool(raw, "disableGC"),
        load_only_inlined_plugins=_read_bool(raw, "loadOnlyInlinedPlugins"),
        raw=data)
    if "plugins" not in raw:
        if netlist.load_only_inlined_plugins:
            raise ConfError("error parsing configuration list: `loadOnlyInlinedPlugins` "
                            "is true, and no 'plugins' key")
        return netlist
    plugins = raw["plugins"]
    if not isinstance(plugins, list):
        raise ConfError(f"error parsing configuration list: invalid 'plugins' type "
                        f"{_go_type(plugins)}")
    if not plugins:
        raise ConfError("error parsing configuration list: no plugins in list")
    for index, plugin in enumerate(plugins):
        netlist.plugins.append(parse_plugin(go_json(plugin),
                                            f"failed to parse plugin config {index}: "
                                            "error parsing configuration"))
    return netlist


def wrap_single(data: bytes) -> tuple[str, bytes]:
    """A single-plugin config as the bytes of an equivalent one-plugin list.

    Returns (network name, list bytes); the bytes are what libcni builds
    (and caches): ``{"cniVersion":..,"name":..,"plugins":[<config>]}``.
    """
    conf = parse_plugin(data)
    name = conf.get("name") or ""
    wrapped = {"name": name, "cniVersion": conf.get("cniVersion") or "", "plugins": [conf]}
    return name, go_json(wrapped)


# --- the file layer ---------------------------------------------------------

def conf_files(directory: str, extensions) -> list[str]:
    """Files (not directories) in `directory` with one of the extensions,
    sorted; a missing directory has none."""
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ConfError(str(exc)) from None
    out = []
    for entry in entries:
        if entry.is_dir():
            continue
        if os.path.splitext(entry.name)[1] in extensions:
            out.append(os.path.join(directory, entry.name))
    return sorted(out)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ConfError(f"error reading {path}: {exc}") from None


def load_list_file(path: str) -> NetworkList:
    netlist = parse_list(_read(path))
    if not netlist.load_only_inlined_plugins:
        side_dir = os.path.join(os.path.dirname(path), netlist.name)
        for plugin_file in conf_files(side_dir, (".conf",)):
            netlist.plugins.append(parse_plugin(_read(plugin_file)))
    if not netlist.plugins:
        raise ConfError("no plugin configs found")
    return netlist


def load_network(directory: str, name: str) -> NetworkList:
    lists = conf_files(directory, CONFLIST_EXTENSIONS)
    for path in lists:
        netlist = load_list_file(path)
        if netlist.name == name:
            return netlist
    singles = conf_files(directory, SINGLE_EXTENSIONS)
    if not singles:
        if lists:
            raise ConfError(f'no net configuration with name "{name}" in {directory}')
        raise ConfError(f"no net configurations found in {directory}")
    for path in singles:
        conf_name, list_bytes = wrap_single(_read(path))
        if conf_name == name:
            return parse_list(list_bytes)
    raise ConfError(f'no net configuration with name "{name}" in {directory}')
