"""spawn.run under the real tools and real plugin calls (issue #12: the
plugins exec their tools and delegates with posix_spawn + memfds instead
of subprocess).

- iptables-restore / iptables-save and nft with rule sets of megabytes
  (in and out) in the test world's host namespace;
- a real bridge ADD/DEL (ipMasq, iptables and nftables) started with an
  fd leaked by its "runtime": the tools it runs and the IPAM plugin it
  execs see fds 0-2 only, and the IPAM plugin exactly the CNI environment.

Everything runs inside the test's own namespaces; nothing is left behind
(the world's namespaces take their rules with them).
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.netns

NET, BRIDGE, SUBNET = "spawnnet", "cnispawn0", "10.96.0.0/24"

# Prints the fds above 2 the process has open (a fresh -I -S interpreter
# keeps none of its own).
FDS = ("import os\n"
       "def is_open(fd):\n"
       "    try:\n"
       "        os.fstat(fd)\n"
       "        return True\n"
       "    except OSError:\n"
       "        return False\n"
       "print(*[fd for fd in range(3, 1024) if is_open(fd)])\n")   # no single quote: sh


def in_host(world, code: str, timeout: int = 120) -> str:
    """Run Python `code` (this test's interpreter, pycni importable) in the
    world's host namespace; its stdout."""
    proc = world.host.run(sys.executable, "-c", code, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode()


def test_iptables_megabyte_restore_and_save(world):
    """> 1 MB restored through stdin and read back through stdout."""
    code = textwrap.dedent("""
        from pycni import fwtools
        n = 12000
        lines = ["*filter", ":PYCNI-SPAWN - [0:0]"]
        lines += [f"-A PYCNI-SPAWN -s 10.{i // 256 % 256}.{i % 256}.0/24 -m comment "
                  f"--comment \\"spawn-test-rule-{i:05d}-{'x' * 60}\\" -j RETURN"
                  for i in range(n)]
        script = "\\n".join(lines + ["COMMIT", ""])
        assert len(script) > 1 << 20, len(script)
        fwtools.iptables_restore(4, script)
        out = fwtools.iptables_save(4, "filter")
        assert len(out) > 1 << 20, len(out)
        rules = [l for l in out.splitlines() if l.startswith("-A PYCNI-SPAWN ")]
        assert len(rules) == n, len(rules)
        assert "spawn-test-rule-11999-" in rules[-1]
        print("ok")
    """)
    assert in_host(world, code).strip() == "ok"


def test_nft_megabyte_script_and_listing(world):
    code = textwrap.dedent("""
        from pycni import fwtools
        n = 15000
        lines = ["table ip pycni_spawn {", " chain c {"]
        lines += [f"  ip saddr 10.{i // 256 % 256}.{i % 256}.0/24 counter return "
                  f"comment \\"spawn-{i:05d}-{'y' * 40}\\"" for i in range(n)]
        script = "\\n".join(lines + [" }", "}", ""])
        assert len(script) > 1 << 20
        rc, out, err = fwtools.run_nft(["-f", "-"], script)
        assert rc == 0, err
        rc, out, err = fwtools.run_nft(["list", "table", "ip", "pycni_spawn"])
        assert rc == 0, err
        assert len(out) > 1 << 20 and out.count("spawn-") == n, len(out)
        rc, out, err = fwtools.run_nft(["list", "table", "ip", "pycni_missing"])
        assert rc != 0 and err and not out
        print("ok")
    """)
    assert in_host(world, code).strip() == "ok"


def recording_tool(directory, name: str, real: str, log) -> None:
    """`name` that appends its open fds to `log`, then execs the real tool."""
    path = directory / name
    path.write_text(f"#!/bin/sh\n{sys.executable} -I -S -c '{FDS}' >> {log}\n"
                    f'exec {real} "$@"\n')
    path.chmod(0o755)


def recording_ipam(directory, log, env_log) -> None:
    """A trivial IPAM plugin (exec'ed: not one of ours) that records its
    fds and environment, then prints a fixed result."""
    result = {"cniVersion": "1.0.0",
              "ips": [{"address": "10.96.0.5/24", "gateway": "10.96.0.1"}]}
    path = directory / "recipam"
    path.write_text(f"#!/bin/sh\n{sys.executable} -I -S -c '{FDS}' >> {log}\n"
                    f"/usr/bin/env -0 > {env_log}.$CNI_COMMAND\n/bin/cat > /dev/null\n"
                    f"[ \"$CNI_COMMAND\" = ADD ] && echo '{json.dumps(result)}'\nexit 0\n")
    path.chmod(0o755)


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_plugin_children_get_only_0_1_2_and_the_cni_env(world, plugin_dir, tmp_path, backend):
    tools = tmp_path / "tools"
    tools.mkdir()
    fd_log, env_log = tmp_path / "fds", tmp_path / "env"
    for name in ("iptables-save", "iptables-restore", "ip6tables-save", "ip6tables-restore",
                 "nft"):
        real = f"/usr/sbin/{name}"
        if os.path.exists(real):
            recording_tool(tools, name, real, fd_log)
    cni = tmp_path / "cni"
    cni.mkdir()
    os.symlink(os.path.join(plugin_dir, "bridge"), cni / "bridge")
    recording_ipam(cni, fd_log, env_log)
    ctr = world.container()
    conf = {"cniVersion": "1.0.0", "name": NET, "type": "bridge", "bridge": BRIDGE,
            "isGateway": True, "ipMasq": True, "ipMasqBackend": backend,
            "ipam": {"type": "recipam"}}
    leaked = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)   # a runtime's leak
    result = None                   # ADD's, for DEL's prevResult
    try:
        for command in ("ADD", "DEL"):
            env = world.plugin_env(command, str(cni), ctr, extra={"PATH": str(tools)})
            stdin = conf if command == "ADD" else {**conf, "prevResult": result}
            proc = subprocess.run([shutil.which("ip"), "netns", "exec", world.host.name,
                                   os.path.join(cni, "bridge")],
                                  input=json.dumps(stdin).encode(), env=env,
                                  capture_output=True, pass_fds=(leaked,), timeout=60)
            assert proc.returncode == 0, (proc.stdout, proc.stderr)
            if command == "ADD":
                result = json.loads(proc.stdout)
            seen = dict(kv.split("=", 1) for kv in
                        (tmp_path / f"env.{command}").read_text().split("\0") if kv)
            seen.pop("PWD", None)           # the shell's own
            # Python's C-locale coercion (PEP 538) puts this into the
            # plugin's own os.environ, which it passes on (as it did with
            # subprocess)
            if seen.get("LC_CTYPE") == "C.UTF-8" and "LC_CTYPE" not in env:
                del seen["LC_CTYPE"]
            assert seen == {**env, "CNI_COMMAND": command}
    finally:
        os.close(leaked)
    lines = fd_log.read_text().splitlines()
    assert len(lines) >= 4            # IPAM ADD and DEL, and firewall tools
    assert all(line == "" for line in lines), lines


def test_tool_and_delegate_execs_import_no_subprocess(world, plugin_dir, tmp_path):
    """A bridge ipMasq ADD and DEL that exec their tools and an exec'ed
    host-local delegate load none of subprocess's tree (~15-26 ms)."""
    ctr = world.container()
    conf = {"cniVersion": "1.0.0", "name": NET, "type": "bridge", "bridge": BRIDGE,
            "isGateway": True, "ipMasq": True,
            "ipam": {"type": "host-local", "subnet": SUBNET, "dataDir": str(tmp_path / "ipam")}}
    result = None
    for command in ("ADD", "DEL"):
        env = world.plugin_env(command, plugin_dir, ctr, extra={"PYCNI_EXEC_DELEGATES": "1"})
        stdin = conf if result is None else {**conf, "prevResult": result}
        proc = world.host.run(sys.executable, "-X", "importtime", "-I", "-S", "-B",
                              os.path.join(plugin_dir, "bridge"), check=False,
                              input=json.dumps(stdin).encode(), env=env)
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        if command == "ADD":
            result = json.loads(proc.stdout)
        loaded = {line.split("|")[-1].strip() for line in proc.stderr.decode().splitlines()
                  if line.startswith("import time:")}
        assert "pycni.spawn" in loaded
        assert not loaded & {"subprocess", "selectors", "threading", "signal"}, command
