"""Which modules each plugin's process loads, per command: the start-up path
must not silently grow (issue #12: every CNI call is a fresh process, and
`subprocess`, `json` (with `re` and `enum`), `hashlib`, `typing`,
`inspect`, `ipaddress`, `ctypes`, `dataclasses` each cost milliseconds
where they load; none of them loads on any plugin path).

Each case runs the plugin the way its launcher does: the launcher text
`pycni install` writes (launcher.py), under `python -I -S -B`, with a
CNI_PATH of real launchers (so bridge and macvlan delegate to host-local
in-process as in production). A few lines in front of it wrap `os._exit`
so that, when `skel.main` ends the process, `sys.modules` is written to an
extra fd first; a plugin that ended any other way reports nothing, and
the case fails.

Nothing here needs root or touches the machine: ADD and CHECK get a
CNI_NETNS that does not exist and stop there, after the config was
decoded and validated; host-local's store lives in a temporary directory
(allowed through PYCNI_STATE_DIRS); DEL runs to its end where it only
releases that store or finds nothing to remove, and stops at config
validation (an unknown portmap backend or firewall ingressPolicy, bad
limits) where it would run iptables or nft on the host.

The allowed sets are what loads today, split into what every case loads
(BASE), what a plugin's cases all load (PLUGIN) and the rest (COMMAND);
modules the bare interpreter loads are allowed anyway, and pycni's own
modules are not listed (a plugin may use any of the library, but no other
plugin's package). When a set must change on purpose, regenerate:

    python tests/unit/test_import_sets.py    # prints BASE, PLUGIN, COMMAND

and review the difference: a module that appears in it is paid on every
call of that plugin and command.
"""

import json
import os
import subprocess
import sys

import pytest

import pycni
from pycni.launcher import launcher_text
from pycni.registry import PLUGINS

COMMANDS = ("VERSION", "ADD", "CHECK", "DEL", "GC", "STATUS")
MISSING_NETNS = "/nonexistent/pycni-import-sets"
CONTAINER_ID = "pycni-import-sets"

# In front of the launcher text: report sys.modules when skel.main ends the
# process (os._exit), written to the inherited fd {fd} before anything
# else can load.
PRELUDE = """\
import posix, sys
def _pycni_report_and_exit(code, _exit=posix._exit):
    posix.write({fd}, "\\n".join(sorted(sys.modules)).encode())
    _exit(code)
posix._exit = _pycni_report_and_exit
"""


# ----------------------------------------------------------------- cases

def _ipam(tmp: str) -> dict:
    return {"type": "host-local", "subnet": "10.250.0.0/24",
            "dataDir": os.path.join(tmp, "ipam")}


def _prev() -> dict:
    return {"cniVersion": "1.1.0",
            "interfaces": [{"name": "eth0", "sandbox": MISSING_NETNS}],
            "ips": [{"address": "10.250.0.2/24", "interface": 0}]}


def _conf(plugin: str, **keys) -> dict:
    return {"cniVersion": "1.1.0", "name": "importsets", "type": plugin, **keys}


def case_config(plugin: str, command: str, tmp: str) -> dict:
    """The config of one (plugin, command) case; see the module docstring
    for where each stops."""
    if plugin == "loopback":
        return _conf("loopback")
    if plugin == "bridge":
        if command == "GC":      # L3 GC also sweeps ipMasq rules with iptables/nft
            return _conf("bridge", bridge="pycni-is0")
        return _conf("bridge", bridge="pycni-is0", ipam=_ipam(tmp))
    if plugin == "macvlan":
        return _conf("macvlan", master="pycni-is-m0", ipam=_ipam(tmp))
    if plugin == "ptp":           # GC stops at a malformed attachment list, before iptables/nft
        if command == "GC":
            return _conf("ptp", ipam=_ipam(tmp), **{"cni.dev/valid-attachments": "pycni-is"})
        return _conf("ptp", ipam=_ipam(tmp))
    if plugin == "host-local":
        return _conf("host-local", ipam=_ipam(tmp))
    if plugin == "static":        # no state, no kernel: every command runs to its end
        return _conf("static", prevResult=_prev(),
                     ipam={"type": "static", "addresses": [{"address": "10.250.0.2/24"}]})
    if plugin == "dhcp":          # no daemon listens: each call stops at the socket
        return _conf("dhcp", ipam={"type": "dhcp",
                                   "daemonSocketPath": os.path.join(tmp, "dhcp.sock")})
    if plugin == "portmap":       # an unknown backend stops before iptables/nft
        return _conf("portmap", backend="pycni-import-sets", prevResult=_prev(),
                     runtimeConfig={"portMappings": [
                         {"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]})
    if plugin == "firewall":      # an unknown ingressPolicy stops before iptables/nft
        return _conf("firewall", ingressPolicy="pycni-import-sets", prevResult=_prev())
    if plugin == "tuning":
        return _conf("tuning", prevResult=_prev(), dataDir=os.path.join(tmp, "tuning"),
                     sysctl={"net.ipv4.conf.eth0.arp_notify": "1"})
    if plugin == "bandwidth":     # DEL reads no limits: it looks for its IFB and stops
        return _conf("bandwidth", prevResult=_prev(), ingressRate=-1, ingressBurst=-1)
    if plugin == "sbr":           # ADD/CHECK stop at the missing netns, DEL finds it gone
        return _conf("sbr", prevResult=_prev())
    if plugin == "tap":           # STATUS stops at a bad mtu (the device check needs /dev/net/tun)
        return _conf("tap", mtu="pycni-import-sets") if command == "STATUS" else _conf("tap")
    if plugin == "host-device":   # ADD stops at the missing device, CHECK at the netns
        return _conf("host-device", device="pycni-is-hd0",
                     dataDir=os.path.join(tmp, "host-device"))
    raise KeyError(plugin)


# (plugin, command) -> exit code: says the case took the path meant above
EXPECTED_CODE = {
    **{(p, "VERSION"): 0 for p in PLUGINS},
    ("loopback", "ADD"): 1, ("loopback", "CHECK"): 1, ("loopback", "DEL"): 0,
    ("loopback", "GC"): 0, ("loopback", "STATUS"): 0,
    ("bridge", "ADD"): 1, ("bridge", "CHECK"): 1, ("bridge", "DEL"): 0,
    ("bridge", "GC"): 0, ("bridge", "STATUS"): 0,
    ("macvlan", "ADD"): 1, ("macvlan", "CHECK"): 1, ("macvlan", "DEL"): 0,
    ("macvlan", "GC"): 0, ("macvlan", "STATUS"): 1,
    ("ptp", "ADD"): 1, ("ptp", "CHECK"): 1, ("ptp", "DEL"): 0,
    ("ptp", "GC"): 1, ("ptp", "STATUS"): 0,
    ("host-local", "ADD"): 0, ("host-local", "CHECK"): 0, ("host-local", "DEL"): 0,
    ("host-local", "GC"): 0, ("host-local", "STATUS"): 0,
    ("static", "ADD"): 0, ("static", "CHECK"): 0, ("static", "DEL"): 0,
    ("static", "GC"): 0, ("static", "STATUS"): 0,
    ("dhcp", "ADD"): 1, ("dhcp", "CHECK"): 1, ("dhcp", "DEL"): 1,
    ("dhcp", "GC"): 1, ("dhcp", "STATUS"): 1,
    ("portmap", "ADD"): 1, ("portmap", "CHECK"): 1, ("portmap", "DEL"): 1,
    ("portmap", "GC"): 1, ("portmap", "STATUS"): 0,
    ("firewall", "ADD"): 1, ("firewall", "CHECK"): 1, ("firewall", "DEL"): 1,
    ("firewall", "GC"): 1, ("firewall", "STATUS"): 0,
    ("tuning", "ADD"): 1, ("tuning", "CHECK"): 1, ("tuning", "DEL"): 0,
    ("tuning", "GC"): 0, ("tuning", "STATUS"): 0,
    ("bandwidth", "ADD"): 1, ("bandwidth", "CHECK"): 1, ("bandwidth", "DEL"): 0,
    ("bandwidth", "GC"): 0, ("bandwidth", "STATUS"): 0,
    ("sbr", "ADD"): 1, ("sbr", "CHECK"): 1, ("sbr", "DEL"): 0,
    ("sbr", "GC"): 0, ("sbr", "STATUS"): 0,
    ("tap", "ADD"): 1, ("tap", "CHECK"): 1, ("tap", "DEL"): 0,
    ("tap", "GC"): 0, ("tap", "STATUS"): 1,
    ("host-device", "ADD"): 1, ("host-device", "CHECK"): 1, ("host-device", "DEL"): 0,
    ("host-device", "GC"): 0, ("host-device", "STATUS"): 0,
}


# ------------------------------------------------------------ observing

def needs_allocation(plugin: str, command: str) -> bool:
    """The cases that act on host-local's store find an allocation in it
    (made by a host-local ADD first), as after a real ADD."""
    return plugin in ("host-local", "bridge", "macvlan", "ptp") and \
        command not in ("VERSION", "ADD")


def run_case(plugin: str, command: str, tmp: str, cni_path: str):
    """(exit code, stdout, stderr, loaded modules or None) of one plugin
    process; `tmp` holds its state (a fresh directory per case)."""
    if needs_allocation(plugin, command):
        code, out, err, _ = _call("host-local", "ADD", _conf("host-local", ipam=_ipam(tmp)),
                                  tmp, cni_path)
        assert code == 0, (out, err)
    config = case_config(plugin, command, tmp) if command != "VERSION" else None
    return _call(plugin, command, config, tmp, cni_path)


def _call(plugin: str, command: str, config, tmp: str, cni_path: str):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command,
           "PYCNI_STATE_DIRS": tmp}
    stdin = b""
    if command != "VERSION":
        env.update(CNI_CONTAINERID=CONTAINER_ID, CNI_IFNAME="eth0", CNI_PATH=cni_path,
                   CNI_NETNS=MISSING_NETNS)
        stdin = json.dumps(config).encode()
    return _run(launcher_text(plugin, cni_path), env, stdin)


def _run(body: str, env: dict, stdin: bytes = b""):
    r, w = os.pipe()
    try:
        code = PRELUDE.format(fd=w) + body
        proc = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", code], input=stdin,
                              env=env, capture_output=True, pass_fds=(w,), timeout=60)
    finally:
        os.close(w)
    with os.fdopen(r, "rb") as f:
        report = f.read().decode()
    modules = set(report.split("\n")) if report else None
    return proc.returncode, proc.stdout, proc.stderr, modules


def interpreter_floor() -> set[str]:
    """What `python -I -S` loads before any pycni code: always allowed
    (it differs between Python versions)."""
    code, _out, err, modules = _run("posix._exit(0)\n", {})
    assert code == 0 and modules, err
    return modules


def stdlib_only(modules: set[str]) -> set[str]:
    return {m for m in modules if m != "pycni" and not m.startswith("pycni.")}


# ------------------------------------------------------- allowed sets
# What loads today (Python 3.11, skel.main ending with os._exit), beyond the
# interpreter floor: C extension modules only, and `struct`/`errno`. System
# calls come from pycni.posixos (the `posix` built-in): `os` itself, with
# `stat`, `posixpath` and `_collections_abc`, loads on no plugin path. JSON
# is pycni.jsontext on `_json`, addresses pycni.ipaddr on `_socket`, chain
# names pycni.digest on `_sha512`; `json`, `re`, `enum`, `ipaddress`,
# `hashlib`, `ctypes`, `functools`, `collections` load on no plugin path
# (test_heavy_modules_allowed_nowhere). No case reaches a tool exec or a
# netns (see above), so setns on Python 3.11 (the extension
# pycni._pycni_linux, or `_ctypes` where it was not built) is not listed:
# tests/unit/test_netns.py checks what a process entering a netns loads.

BASE = {'_json', 'gc'}   # gc: built in; entry.serve turns the cycle collector off

PLUGIN = {
}

COMMAND = {
    ('loopback', 'ADD'): {'_socket', '_stat', '_struct', 'errno', 'struct'},
    ('loopback', 'CHECK'): {'_socket', '_stat', '_struct', 'errno', 'struct'},
    ('loopback', 'DEL'): {'_socket', '_stat', '_struct', 'errno', 'struct'},
    ('loopback', 'GC'): {'_socket', '_struct', 'errno', 'struct'},
    ('loopback', 'STATUS'): {'_socket', '_struct', 'errno', 'struct'},
    ('macvlan', 'ADD'): {'_socket', '_stat', '_struct', 'errno', 'struct'},
    ('macvlan', 'CHECK'): {'_socket', '_stat', '_struct', 'errno', 'struct'},
    ('macvlan', 'DEL'): {'_socket', '_stat', '_struct', 'errno', 'fcntl', 'struct', 'zlib'},
    ('macvlan', 'GC'): {'_socket', '_stat', '_struct', 'errno', 'fcntl', 'struct', 'zlib'},
    ('macvlan', 'STATUS'): {'_socket', '_struct', 'errno', 'struct'},
    ('ptp', 'ADD'): {'_socket', '_stat', '_struct', 'errno', 'struct'},
    ('ptp', 'CHECK'): {'_socket', '_stat', '_struct', 'errno', 'struct'},
    ('ptp', 'DEL'): {'_socket', '_stat', '_struct', 'errno', 'fcntl', 'struct', 'zlib'},
    ('ptp', 'GC'): {'_socket', '_struct', 'errno', 'struct'},
    ('ptp', 'STATUS'): {'_socket', '_stat', '_struct', 'errno', 'fcntl', 'struct'},
    ('bridge', 'ADD'): {'_socket', '_stat', '_struct', 'errno', 'struct'},
    ('bridge', 'CHECK'): {'_socket', '_stat', '_struct', 'errno', 'struct'},
    ('bridge', 'DEL'): {'_socket', '_stat', '_struct', 'errno', 'fcntl', 'struct', 'zlib'},
    ('bridge', 'GC'): {'_socket', '_struct', 'errno', 'struct'},
    ('bridge', 'STATUS'): {'_socket', '_stat', '_struct', 'errno', 'fcntl', 'struct'},
    ('portmap', 'ADD'): {'errno'},
    ('portmap', 'DEL'): {'errno'},
    ('host-local', 'ADD'): {'_socket', '_stat', 'errno', 'fcntl', 'zlib'},
    ('host-local', 'CHECK'): {'_socket', '_stat', 'errno', 'fcntl', 'zlib'},
    ('host-local', 'DEL'): {'_socket', '_stat', 'errno', 'fcntl', 'zlib'},
    ('host-local', 'GC'): {'_socket', '_stat', 'errno', 'fcntl', 'zlib'},
    ('host-local', 'STATUS'): {'_socket', '_stat', 'errno', 'fcntl'},
    ('static', 'ADD'): {'_socket', 'errno'},
    ('static', 'CHECK'): {'_socket'},
    ('static', 'DEL'): {'errno'},
    ('dhcp', 'ADD'): {'_socket', 'errno'},
    ('dhcp', 'CHECK'): {'_socket'},
    ('dhcp', 'DEL'): {'_socket', 'errno'},
    ('dhcp', 'GC'): {'_socket'},
    ('dhcp', 'STATUS'): {'_socket'},
    ('tuning', 'ADD'): {'_socket', '_stat', '_struct', 'errno', 'struct'},
    ('tuning', 'CHECK'): {'_socket', '_stat', '_struct', 'errno', 'struct'},
    ('tuning', 'DEL'): {'_socket', '_stat', '_struct', 'errno', 'struct'},
    ('tuning', 'GC'): {'_socket', '_stat', '_struct', 'errno', 'struct'},
    ('tuning', 'STATUS'): {'_socket', '_stat', '_struct', 'errno', 'struct'},
    ('firewall', 'ADD'): {'errno'},
    ('firewall', 'DEL'): {'errno'},
    ('bandwidth', 'ADD'): {'_socket', '_struct', 'errno', 'struct'},
    ('bandwidth', 'CHECK'): {'_socket', '_struct', 'errno', 'struct'},
    ('bandwidth', 'DEL'): {'_sha512', '_socket', '_struct', 'errno', 'struct'},
    ('bandwidth', 'GC'): {'_socket', '_struct', 'errno', 'struct'},
    ('bandwidth', 'STATUS'): {'_socket', '_struct', 'errno', 'struct'},
    ('sbr', 'ADD'): {'_socket', '_stat', '_struct', 'errno', 'struct'},
    ('sbr', 'CHECK'): {'_socket', '_stat', '_struct', 'errno', 'struct'},
    ('sbr', 'DEL'): {'_socket', '_stat', '_struct', 'errno', 'struct'},
    ('sbr', 'GC'): {'_socket', '_struct', 'errno', 'struct'},
    ('sbr', 'STATUS'): {'_socket', '_struct', 'errno', 'struct'},
    ('host-device', 'ADD'): {'_socket', '_stat', '_struct', 'errno', 'struct'},
    ('host-device', 'CHECK'): {'_socket', '_stat', '_struct', 'errno', 'struct'},
    ('host-device', 'DEL'): {'_socket', '_stat', '_struct', 'errno', 'struct'},
    ('host-device', 'GC'): {'_socket', '_stat', '_struct', 'errno', 'struct'},
    ('host-device', 'STATUS'): {'_socket', '_stat', '_struct', 'errno', 'struct'},
    ('tap', 'ADD'): {'_socket', '_stat', '_struct', 'errno', 'struct'},
    ('tap', 'CHECK'): {'_socket', '_stat', '_struct', 'errno', 'struct'},
    ('tap', 'DEL'): {'_socket', '_stat', '_struct', 'errno', 'struct'},
    ('tap', 'GC'): {'_socket', '_struct', 'errno', 'struct'},
    ('tap', 'STATUS'): {'_socket', '_struct', 'errno', 'struct'},
}


def allowed(plugin: str, command: str) -> set[str]:
    return BASE | PLUGIN.get(plugin, set()) | COMMAND.get((plugin, command), set())


def own_package(plugin: str) -> str:
    return PLUGINS[plugin].rsplit(".", 1)[0]


def foreign_plugin_modules(plugin: str, modules: set[str]) -> list[str]:
    """Modules of another plugin's package (host-local may serve bridge's
    and macvlan's IPAM in-process)."""
    mine = {own_package(plugin)}
    if plugin in ("bridge", "macvlan", "ptp"):
        mine.add(own_package("host-local"))
    packages = {own_package(p) for p in PLUGINS} - mine
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in packages))


# --------------------------------------------------------------- tests

@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A CNI_PATH of real launchers, and the interpreter floor."""
    if os.path.basename(os.path.dirname(os.path.abspath(pycni.__file__))) != "pycni":
        pytest.skip("needs a regular (non-editable) install of the package")
    cni_path = str(tmp_path_factory.mktemp("import-sets-bin"))
    proc = subprocess.run([sys.executable, "-m", "pycni.cli", "install", "--dir", cni_path],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        pytest.skip(f"pycni install refused this installation: {proc.stderr.strip()}")
    return cni_path, interpreter_floor()


CASES = [(p, c) for p in PLUGINS for c in COMMANDS]


@pytest.mark.parametrize("plugin,command", CASES, ids=[f"{p}-{c}" for p, c in CASES])
def test_import_set(installed, tmp_path, plugin, command):
    cni_path, floor = installed
    code, out, err, modules = run_case(plugin, command, str(tmp_path), cni_path)
    assert modules is not None, \
        f"{plugin} {command} did not end through skel.main's os._exit: {err.decode()}"
    assert code == EXPECTED_CODE[plugin, command], \
        f"{plugin} {command} took another path than this case means: {out.decode()} {err.decode()}"
    added = sorted(stdlib_only(modules) - floor - allowed(plugin, command))
    assert added == [], (
        f"{plugin} {command} now loads {added}: each costs start-up time on every call; "
        "import it where it is needed, or regenerate the sets (see the module docstring)")
    assert foreign_plugin_modules(plugin, modules) == []


def test_heavy_modules_allowed_nowhere():
    """Modules no plugin path loads stay out of every allowed set: the
    stdlib's json, re, ipaddress, hashlib and ctypes (and what they drag in:
    enum, functools, collections, operator, types, importlib) are replaced
    by pycni.jsontext, pycni.ipaddr, pycni.digest and netns' setns (the
    pycni._pycni_linux extension; `_ctypes` only where it was not built);
    record classes come from pycni.model, not dataclasses; `os` (with stat,
    posixpath, _collections_abc) by pycni.posixos."""
    for name in ("subprocess", "typing", "inspect", "logging", "asyncio", "socket", "ssl",
                 "selectors", "threading", "tempfile", "pathlib", "shlex", "argparse",
                 "dataclasses", "copy", "weakref", "_weakrefset", "json", "re", "enum",
                 "ipaddress", "hashlib", "_hashlib", "ctypes", "functools", "collections",
                 "operator", "types", "importlib", "warnings", "os", "stat", "posixpath",
                 "genericpath", "_collections_abc", "_ctypes"):
        listed = [key for key, mods in [("BASE", BASE), *PLUGIN.items(), *COMMAND.items()]
                  if name in mods]
        assert listed == [], f"{name} is allowed for {listed}"


def test_a_new_module_is_caught(installed, tmp_path):
    """The guard itself: a plugin path that imports one more module fails
    the comparison (here loopback VERSION, with `hashlib` planted in front
    of its launcher text)."""
    cni_path, floor = installed
    env = {"PATH": "/usr/bin:/bin", "CNI_COMMAND": "VERSION"}
    code, _out, err, modules = _run("import hashlib\n" + launcher_text("loopback", cni_path), env)
    assert code == 0 and modules, err
    added = stdlib_only(modules) - floor - allowed("loopback", "VERSION")
    assert "hashlib" in added


# ------------------------------------------------------ regenerating

def observe_all() -> dict:
    import tempfile
    with tempfile.TemporaryDirectory(prefix="pycni-import-sets-") as top:
        cni_path = os.path.join(top, "bin")
        subprocess.run([sys.executable, "-m", "pycni.cli", "install", "--dir", cni_path],
                       check=True, capture_output=True)
        floor = interpreter_floor()
        seen = {}
        for plugin, command in CASES:
            tmp = tempfile.mkdtemp(dir=top)
            code, out, err, modules = run_case(plugin, command, tmp, cni_path)
            if modules is None:
                raise SystemExit(f"{plugin} {command}: no report ({err.decode()})")
            if code != EXPECTED_CODE[plugin, command]:
                print(f"# warning: {plugin} {command} exited {code}: {out.decode()[:200]}")
            seen[plugin, command] = stdlib_only(modules) - floor
        return seen


def _fmt(mods) -> str:
    return "{" + ", ".join(repr(m) for m in sorted(mods)) + "}" if mods else "set()"


def main() -> None:
    seen = observe_all()
    base = set.intersection(*seen.values())
    print(f"BASE = {_fmt(base)}\n")
    print("PLUGIN = {")
    per_plugin = {}
    for plugin in PLUGINS:
        mods = set.intersection(*(seen[plugin, c] for c in COMMANDS)) - base
        per_plugin[plugin] = mods
        if mods:
            print(f"    {plugin!r}: {_fmt(mods)},")
    print("}\n\nCOMMAND = {")
    for (plugin, command), mods in seen.items():
        rest = mods - base - per_plugin[plugin]
        if rest:
            print(f"    ({plugin!r}, {command!r}): {_fmt(rest)},")
    print("}")


if __name__ == "__main__":
    main()
