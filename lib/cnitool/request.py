"""What one plugin invocation gets: its stdin config and its environment.

All pure. The runtime injects ``name`` and ``cniVersion`` into every plugin
object of a list, ``prevResult`` where there is one, and ``runtimeConfig``
holding only the capability arguments the plugin declares (``true``) and
the caller supplies; with none, the key is left as the file has it.
"""

import hashlib
import json
import os
import re
from dataclasses import dataclass, field

from pycni.errors import (CNIError, INVALID_ENVIRONMENT, INVALID_NETWORK_CONFIG,
                          UNKNOWN_CONTAINER)

from .conf import go_escape, go_json

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")
MAX_IFNAME_LEN = 15
VALID_ATTACHMENTS_KEY = "cni.dev/valid-attachments"
LEGACY_ATTACHMENTS_KEY = "cni.dev/attachments"


@dataclass
class RuntimeConf:
    """The per-attachment arguments (libcni's RuntimeConf)."""
    container_id: str
    netns: str
    ifname: str
    args: list[tuple[str, str]] = field(default_factory=list)
    capability_args: dict | None = None


def quote(text: str) -> str:
    """A string in double quotes, as Go's %q prints plain text."""
    return json.dumps(text, ensure_ascii=False)


def parse_cni_args(text: str) -> list[tuple[str, str]]:
    """cnitool's CNI_ARGS: ``K=V;K=V``, each pair exactly one '=' with both
    sides non-empty."""
    pairs = []
    for pair in text.split(";"):
        parts = pair.split("=")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise ValueError(f"invalid CNI_ARGS pair {quote(pair)}")
        pairs.append((parts[0], parts[1]))
    return pairs


def parse_capability_args(text: str) -> dict | None:
    """CAP_ARGS: a JSON object (empty text: none)."""
    if not text:
        return None
    value = json.loads(text)
    if value is not None and not isinstance(value, dict):
        raise ValueError("CAP_ARGS must be a JSON object")
    return value


def absolute_netns(path: str) -> str:
    """Like Go's filepath.Abs: joined with the cwd and cleaned."""
    clean = os.path.abspath(path)
    if clean.startswith("//"):
        clean = "/" + clean.lstrip("/")
    return clean


def container_id_for(netns_path: str) -> str:
    """cnitool's container ID: ``cnitool-`` + hex of the first 10 bytes of
    SHA-512 over the absolute netns path."""
    return "cnitool-" + hashlib.sha512(netns_path.encode()).digest()[:10].hex()


def validate_container_id(cid: str) -> None:
    if not cid:
        raise CNIError(UNKNOWN_CONTAINER, "missing containerID")
    if not NAME_RE.match(cid):
        raise CNIError(INVALID_ENVIRONMENT, "invalid characters in containerID", cid)


def validate_network_name(name: str) -> None:
    if not name:
        raise CNIError(INVALID_NETWORK_CONFIG, "missing network name:")
    if not NAME_RE.match(name):
        raise CNIError(INVALID_NETWORK_CONFIG, "invalid characters found in network name", name)


def validate_ifname(name: str) -> None:
    if not name:
        raise CNIError(INVALID_ENVIRONMENT, "interface name is empty")
    if len(name) > MAX_IFNAME_LEN:
        raise CNIError(INVALID_ENVIRONMENT, "interface name is too long",
                       f"interface name should be less than {MAX_IFNAME_LEN + 1} characters")
    if name in (".", ".."):
        raise CNIError(INVALID_ENVIRONMENT, "interface name is . or ..")
    if any(c in "/:" or c.isspace() for c in name):
        raise CNIError(INVALID_ENVIRONMENT,
                       "interface name contains / or : or whitespace characters")


def runtime_config(plugin: dict, capability_args: dict | None) -> dict:
    """The capability arguments this plugin asked for and the caller gave."""
    supplied = capability_args or {}
    return {cap: supplied[cap]
            for cap, enabled in (plugin.get("capabilities") or {}).items()
            if enabled is True and cap in supplied}


def plugin_config(plugin: dict, name: str, cni_version: str, prev_result: dict | None,
                  rt: RuntimeConf | None) -> dict:
    """The stdin object for one plugin of a list (ADD, CHECK, DEL)."""
    config = dict(plugin)
    config["name"] = name
    config["cniVersion"] = cni_version
    if prev_result is not None:
        config["prevResult"] = prev_result
    if rt is not None:
        rc = runtime_config(plugin, rt.capability_args)
        if rc:
            config["runtimeConfig"] = rc
    return config


def plugin_stdin(plugin: dict, name: str, cni_version: str, prev_result: dict | None,
                 rt: RuntimeConf | None) -> bytes:
    """`plugin_config` serialized byte for byte as libcni does: compact,
    keys sorted, except that `prevResult` keeps the result's own field
    order unless a runtimeConfig was injected (libcni re-encodes the whole
    object only in that case)."""
    config = plugin_config(plugin, name, cni_version, prev_result, rt)
    resorted = rt is not None and bool(runtime_config(plugin, rt.capability_args))
    if prev_result is None or resorted:
        return go_json(config)
    parts = []
    for key in sorted(config):
        if key == "prevResult":
            value = go_escape(json.dumps(prev_result, separators=(",", ":"), ensure_ascii=False))
        else:
            value = go_json(config[key]).decode()
        parts.append(f"{go_json(key).decode()}:{value}")
    return ("{" + ",".join(parts) + "}").encode()


def gc_config(plugin: dict, name: str, cni_version: str,
              valid_attachments: list[dict] | None) -> dict:
    """The stdin object for GC. With no valid list (None) the keys are not
    sent, which tells plugins that no attachment is valid."""
    config = dict(plugin)
    config["name"] = name
    config["cniVersion"] = cni_version
    if valid_attachments is not None:
        config[VALID_ATTACHMENTS_KEY] = valid_attachments
        config[LEGACY_ATTACHMENTS_KEY] = valid_attachments
    return config


def status_config(plugin: dict, name: str, cni_version: str) -> dict:
    config = dict(plugin)
    config["name"] = name
    config["cniVersion"] = cni_version
    return config


def plugin_env(base: dict, command: str, rt: RuntimeConf | None, cni_path: list[str]) -> dict:
    """The caller's environment with every CNI_* variable set for this call
    (empty where the command has no attachment, as for GC and STATUS)."""
    env = dict(base)
    env.update({
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": rt.container_id if rt else "",
        "CNI_NETNS": rt.netns if rt else "",
        "CNI_ARGS": ";".join(f"{k}={v}" for k, v in rt.args) if rt else "",
        "CNI_IFNAME": rt.ifname if rt else "",
        "CNI_PATH": os.pathsep.join(cni_path),
    })
    return env


def describe_plugin(plugin: dict) -> str:
    out = f"type={quote(plugin.get('type') or '')}"
    if plugin.get("name"):
        out += f" name={quote(plugin['name'])}"
    return out
