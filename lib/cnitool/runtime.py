"""Running a network list: libcni's AddNetworkList, CheckNetworkList,
DelNetworkList, GCNetworkList and GetStatusNetworkList.

`Runtime` holds the plugin search path, the cache directory, the base
environment and the function that executes one plugin (`run_plugin`,
replaceable in tests); the decisions come from the pure modules.
"""

import json
from dataclasses import dataclass, field
from typing import Callable

from pycni import version as spec_versions
from pycni.errors import CNIError, DECODING_FAILURE
from pycni.result import parse_result

from . import cache, versions
from .conf import NetworkList, go_json
from .request import (RuntimeConf, describe_plugin, gc_config, plugin_env, plugin_stdin,
                      status_config, validate_container_id, validate_ifname,
                      validate_network_name)


class CnitoolError(Exception):
    """A failed cnitool operation, printed as its message (not
    pycni.fwtools.ToolError, a CNIError of a firewall tool's run)."""


def exec_plugin(plugin_type: str, path: list[str], stdin: bytes, env: dict) -> bytes:
    from pycni.execpath import find_in_path
    from pycni.pluginexec import exec_plugin as run
    return run(find_in_path(plugin_type, path), stdin, env)


@dataclass
class Runtime:
    path: list[str]
    cache_dir: str = cache.DEFAULT_CACHE_DIR
    environ: dict = field(default_factory=dict)
    run_plugin: Callable[[str, list[str], bytes, dict], bytes] = exec_plugin

    def _call(self, plugin: dict, command: str, stdin: bytes, rt: RuntimeConf | None) -> bytes:
        env = plugin_env(self.environ, command, rt, self.path)
        return self.run_plugin(plugin["type"], self.path, stdin, env)

    # --- ADD --------------------------------------------------------------

    def add(self, netlist: NetworkList, rt: RuntimeConf) -> dict | None:
        """Each plugin in order, each getting the previous result; the final
        result is cached and returned (as JSON-ready dict, in the version
        the last plugin answered in; None for a list of no plugins, which
        conf.load refuses)."""
        result: dict | None = None
        for plugin in netlist.plugins:
            try:
                result = self._add_one(netlist, plugin, result, rt)
            except CNIError as err:
                raise CnitoolError(f"plugin {describe_plugin(plugin)} failed (add): "
                                   f"{err}") from None
        try:
            cache.write(self.cache_dir, netlist.name, rt, netlist.raw, result)
        except (OSError, cache.CacheError) as exc:
            raise CnitoolError(f'failed to set network "{netlist.name}" cached result: '
                            f'{exc}') from None
        return result

    def _add_one(self, netlist: NetworkList, plugin: dict, prev: dict | None,
                 rt: RuntimeConf) -> dict:
        from pycni.execpath import find_in_path
        find_in_path(plugin["type"], self.path)
        validate_container_id(rt.container_id)
        validate_network_name(netlist.name)
        validate_ifname(rt.ifname)
        stdin = plugin_stdin(plugin, netlist.name, netlist.cni_version, prev, rt)
        return parse_add_output(self._call(plugin, "ADD", stdin, rt), netlist.cni_version)

    # --- CHECK ------------------------------------------------------------

    def check(self, netlist: NetworkList, rt: RuntimeConf) -> None:
        if not versions.at_least(netlist.cni_version, "0.4.0"):
            raise CnitoolError(f'configuration version "{netlist.cni_version}" '
                            "does not support the CHECK command")
        if netlist.disable_check:
            return
        try:
            prev = self._cached_result(netlist, rt)
        except (cache.CacheError, CNIError) as exc:
            raise CnitoolError(f'failed to get network "{netlist.name}" cached result: '
                            f'{exc}') from None
        for plugin in netlist.plugins:
            stdin = plugin_stdin(plugin, netlist.name, netlist.cni_version, prev, rt)
            self._call(plugin, "CHECK", stdin, rt)

    # --- DEL --------------------------------------------------------------

    def delete(self, netlist: NetworkList, rt: RuntimeConf) -> None:
        """Each plugin in reverse order with the cached ADD result (lists
        >= 0.4.0). An unreadable cache is removed and DEL goes on without
        prevResult. The cache is removed once every plugin succeeded."""
        prev = None
        if versions.at_least(netlist.cni_version, "0.4.0"):
            try:
                prev = self._cached_result(netlist, rt)
            except (cache.CacheError, CNIError):
                cache.delete(self.cache_dir, netlist.name, rt)
                prev = None
        for plugin in reversed(netlist.plugins):
            stdin = plugin_stdin(plugin, netlist.name, netlist.cni_version, prev, rt)
            try:
                self._call(plugin, "DEL", stdin, rt)
            except CNIError as err:
                raise CnitoolError(f"plugin {describe_plugin(plugin)} failed (delete): "
                                f"{err}") from None
        cache.delete(self.cache_dir, netlist.name, rt)

    def _cached_result(self, netlist: NetworkList, rt: RuntimeConf) -> dict | None:
        data = cache.read(self.cache_dir, netlist.name, rt)
        if data is None:
            return None
        return cache.cached_result(data, netlist.cni_version)

    # --- GC ---------------------------------------------------------------

    def gc(self, netlist: NetworkList, valid: list[dict] | None) -> None:
        """DEL every cached attachment of this network not in `valid` (None:
        none is valid), then, for 1.1.0 lists, GC to every plugin. Errors
        are collected and reported together."""
        if netlist.disable_gc:
            return
        try:
            cached = cache.attachments(self.cache_dir)
        except OSError:
            return
        keep = {(a.get("containerID"), a.get("ifname")) for a in valid or []}
        errors = []
        for att in cached:
            if att.network != netlist.name or (att.container_id, att.ifname) in keep:
                continue
            rt = RuntimeConf(container_id=att.container_id, netns=att.netns,
                             ifname=att.ifname, args=att.cni_args,
                             capability_args=att.capability_args)
            try:
                self.delete(netlist, rt)
            except (CnitoolError, CNIError) as err:
                errors.append(f"failed to delete stale attachment {rt.container_id} "
                              f"{rt.ifname}: {err}")
        if versions.at_least(netlist.cni_version, "1.1.0"):
            for plugin in netlist.plugins:
                config = gc_config(plugin, netlist.name, netlist.cni_version, valid)
                try:
                    self._call(plugin, "GC", go_json(config), None)
                except CNIError as err:
                    errors.append(f"failed to GC plugin {plugin['type']}: {err}")
        if errors:
            raise CnitoolError("\n".join(errors))

    # --- STATUS -----------------------------------------------------------

    def status(self, netlist: NetworkList) -> None:
        """STATUS to each plugin in order (1.1.0 lists); the first error wins."""
        if not versions.at_least(netlist.cni_version, "1.1.0"):
            return
        for plugin in netlist.plugins:
            config = status_config(plugin, netlist.name, netlist.cni_version)
            self._call(plugin, "STATUS", go_json(config), None)


def parse_add_output(stdout: bytes, config_version: str) -> dict:
    """A plugin's ADD answer as a result dict in the version it answered in
    (the config's version when it gives none)."""
    try:
        data = json.loads(stdout)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CNIError(DECODING_FAILURE, "failed to parse plugin result", str(exc)) from None
    if not isinstance(data, dict):
        raise CNIError(DECODING_FAILURE, "failed to parse plugin result",
                       "result is not a JSON object")
    version = data.get("cniVersion") or config_version
    if version not in spec_versions.ALL:
        raise CNIError(DECODING_FAILURE, f'unsupported CNI result version "{version}"')
    return parse_result(data, version).to_dict(version)
