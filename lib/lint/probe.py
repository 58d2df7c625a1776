"""lint's side effects: finding plugins on CNI_PATH, asking them VERSION,
looking at who can write a store directory.

Only programs that `execpath.lookup` accepts are run (absolute CNI_PATH
directories and files nobody but root can change), with VERSION in a
fixed environment, no stdin, a timeout, and their output read no further
than a bound. What a runtime would find elsewhere is reported, not run.
"""

import json
import os
import stat
import subprocess

from pycni import execpath

DEFAULT_CNI_PATH = ("/opt/cni/bin",)
VERSION_TIMEOUT = 5.0
MAX_OUTPUT = 1 << 16


def cni_path(env, override: str | None = None) -> tuple[list[str], str]:
    """The plugin directories and where they came from."""
    if override is not None:
        return [d for d in override.split(":") if d], "--cni-path"
    if env.get("CNI_PATH"):
        return [d for d in env["CNI_PATH"].split(":") if d], "CNI_PATH"
    return list(DEFAULT_CNI_PATH), "the runtimes' default (CNI_PATH is not set)"


def runtime_lookup(name: str, dirs) -> str | None:
    """What libcni's FindInPath would run: the first `dir/name` that is a file."""
    for d in dirs:
        candidate = os.path.join(d, name)
        try:
            if stat.S_ISREG(os.stat(candidate).st_mode):
                return candidate
        except (OSError, ValueError):
            continue
    return None


class Prober:
    """Looks plugins up once each and asks each binary VERSION once."""

    def __init__(self, dirs: list[str], source: str = "CNI_PATH", run_version: bool = True,
                 timeout: float = VERSION_TIMEOUT):
        self.dirs = dirs
        self.source = source
        self.run_version = run_version
        self.timeout = timeout
        self._found: dict = {}
        self._versions: dict = {}

    def find(self, name: str) -> tuple[str | None, str | None, list[str]]:
        """(trusted path or None, what a runtime would run, entries skipped)."""
        if name not in self._found:
            found, skipped = execpath.lookup(name, self.dirs)
            self._found[name] = (found, runtime_lookup(name, self.dirs), skipped)
        return self._found[name]

    def versions(self, path: str) -> tuple[list[str] | None, str]:
        """The versions the plugin at `path` supports, or (None, why not)."""
        if not self.run_version:
            return None, "not asked (--no-exec)"
        if path not in self._versions:
            self._versions[path] = self._ask(path)
        return self._versions[path]

    def _ask(self, path: str) -> tuple[list[str] | None, str]:
        env = {"CNI_COMMAND": "VERSION", "CNI_PATH": ":".join(self.dirs),
               "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        try:
            proc = subprocess.run([path], env=env, stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=self.timeout, cwd="/",
                                  close_fds=True)
        except subprocess.TimeoutExpired:
            return None, f"no answer to VERSION within {self.timeout:g} s"
        except OSError as exc:
            return None, f"cannot be run: {exc.strerror}"
        out = proc.stdout[:MAX_OUTPUT]
        try:
            answer = json.loads(out)
        except ValueError:
            answer = None
        if proc.returncode != 0:
            msg = answer.get("msg") if isinstance(answer, dict) else None
            return None, f"VERSION failed (exit {proc.returncode}" + (f": {msg})" if msg else ")")
        supported = answer.get("supportedVersions") if isinstance(answer, dict) else None
        if not (isinstance(supported, list) and all(isinstance(v, str) for v in supported)):
            return None, "VERSION answered no supportedVersions list"
        return supported, ""


def store_problem(path: str) -> str | None:
    """Why others could change what is stored in (or create) directory `path`."""
    current = os.path.abspath(path)
    while not os.path.lexists(current):
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent
    problem = execpath.entry_problem(current)
    if problem is None or problem == "missing":
        return None
    if current != os.path.abspath(path):
        return (f"{path} does not exist yet and {problem}: someone else could create it "
                "before the plugin does")
    return problem


Prober.store_problem = staticmethod(store_problem)
