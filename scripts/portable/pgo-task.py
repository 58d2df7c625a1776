"""The training run of the portable interpreter's profile-guided build
(build-python.sh runs it with the instrumented interpreter in its build
tree; the profile each process leaves at its exit guides the final
compile).

What the profile should see is what a node runs: many short plugin
processes, each an interpreter start, 30-80 imports of pycni's modules,
config decoding, a little JSON and file I/O, an exit. So this starts the
instrumented interpreter as the launchers do (-I -S) on pycni's own
code, copied into a temporary directory laid out as installed and
compiled once (a plugin process unmarshals its modules; it does not
compile them): every
plugin answering VERSION and refusing a bad config, host-local's ADD,
CHECK and DEL on a store in the temporary directory, each plugin module
imported. Nothing here touches the network, a namespace or a firewall:
no plugin is given a config it would act on but host-local, which only
writes below the temporary directory.

    python pgo-task.py REPO_ROOT
"""

import os
import shutil
import subprocess
import sys
import tempfile

ROUNDS = 8


def stage(root: str, dest: str) -> None:
    """pycni as pyproject maps it: lib/ -> pycni, plugins/ -> pycni.plugins,
    ipam/ -> pycni.ipam."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(os.path.join(root, "lib"), os.path.join(dest, "pycni"), ignore=ignore)
    for pkg in ("plugins", "ipam"):
        shutil.copytree(os.path.join(root, pkg), os.path.join(dest, "pycni", pkg), ignore=ignore)


def run(tree: str, plugin: str, command: str, stdin: str, extra: dict | None = None) -> None:
    # posix._exit would skip the exit handlers that write the profile
    # (the plugins leave with it): a normal exit instead, in training only.
    code = ("import sys, posix; posix._exit = sys.exit; sys.path.insert(0, sys.argv[1]); "
            "from pycni.entry import serve; serve(sys.argv[2])")
    # PYCNI_STATE_DIRS: host-local may keep its store in the temporary directory
    env = {"PATH": "/nonexistent", "CNI_COMMAND": command, "CNI_CONTAINERID": "pgo-train",
           "PYCNI_STATE_DIRS": os.path.dirname(tree),
           "CNI_NETNS": "/nonexistent/netns", "CNI_IFNAME": "eth0", "CNI_PATH": "/nonexistent",
           **(extra or {})}
    # compiled once into a cache of the training's own (the launchers' -B
    # would make every run compile its modules again: a plugin process
    # unmarshals them, it does not compile them)
    cache = os.path.join(os.path.dirname(tree), "pycache")
    subprocess.run([sys.executable, "-I", "-S", "-X", f"pycache_prefix={cache}", "-c", code,
                    tree, plugin],
                   input=stdin.encode(), env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60, check=False)


def main() -> None:
    root = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="pycni-pgo-") as tmp:
        tree = os.path.join(tmp, "tree")
        stage(root, tree)
        sys.path.insert(0, tree)
        from pycni.registry import PLUGINS
        store = os.path.join(tmp, "store")
        hl = ('{"cniVersion":"1.0.0","name":"pgo","type":"host-local","ipam":{"type":"host-local",'
              '"ranges":[[{"subnet":"10.255.0.0/24"}],[{"subnet":"fd00:255::/64"}]],'
              '"routes":[{"dst":"0.0.0.0/0"}],"dataDir":"%s"}}' % store)
        for _ in range(ROUNDS):
            for name in sorted(PLUGINS):
                run(tree, name, "VERSION", "")
                # refused at the edge: no netns, nothing acted on
                run(tree, name, "ADD", '{"cniVersion":"1.0.0","name":"pgo","type":"%s",'
                    '"mtu":"not a number","ipam":{"type":""}}' % name)
            for i in range(4):
                cid = {"CNI_CONTAINERID": f"pgo-{i}"}
                run(tree, "host-local", "ADD", hl, cid)
                run(tree, "host-local", "CHECK", hl, cid)
                run(tree, "host-local", "DEL", hl, cid)
        # each module once in this process as well (their top-level code)
        import importlib
        for name in sorted(PLUGINS.values()):
            try:
                importlib.import_module(name)
            except Exception:
                pass


if __name__ == "__main__":
    main()
