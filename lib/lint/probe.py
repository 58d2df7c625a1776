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
    return list(DEFAULT_CNI_PATH), ("CNI_PATH is not set: containerd's and CRI-O's default; "
                                    "podman's cni_plugin_dirs also hold /usr/libexec/cni and "
                                    "/usr/lib/cni: pass --cni-path")


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

    def store_problem(self, directory: str) -> str | None:
        """The module's store_problem (a method, as the stand-ins have it)."""
        return store_problem(directory)

    def _ask(self, path: str) -> tuple[list[str] | None, str]:
        env = {"CNI_COMMAND": "VERSION", "CNI_PATH": ":".join(self.dirs),
               "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        try:
            code, out, timed_out = run_bounded([path], env, self.timeout)
        except OSError as exc:
            return None, f"cannot be run: {exc.strerror}"
        try:
            answer = json.loads(out)
        except ValueError:
            answer = None
        if timed_out:
            # an answer written by a plugin that then lingered still counts
            supported = answer.get("supportedVersions") if isinstance(answer, dict) else None
            if isinstance(supported, list) and all(isinstance(v, str) for v in supported):
                return supported, ""
            return None, f"no answer to VERSION within {self.timeout:g} s (killed)"
        if code != 0:
            msg = answer.get("msg") if isinstance(answer, dict) else None
            return None, f"VERSION failed (exit {code}" + (f": {msg})" if msg else ")")
        supported = answer.get("supportedVersions") if isinstance(answer, dict) else None
        if not (isinstance(supported, list) and all(isinstance(v, str) for v in supported)):
            return None, "VERSION answered no supportedVersions list"
        return supported, ""


def run_bounded(argv, env, timeout: float) -> tuple[int | None, bytes, bool]:
    """Run `argv` in its own process group, stdin /dev/null, stderr dropped;
    (exit code, stdout up to MAX_OUTPUT, timed out). On timeout or too much
    output the whole group is killed, so a child the plugin left behind
    cannot keep lint waiting."""
    import selectors
    import signal
    import time
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, cwd="/", close_fds=True,
                            start_new_session=True)
    stdout = proc.stdout
    assert stdout is not None           # stdout=PIPE
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size, timed_out = 0, False
    with selectors.DefaultSelector() as sel:
        sel.register(stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            if not sel.select(left):
                continue
            chunk = os.read(stdout.fileno(), 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_OUTPUT:
                break
    stdout.close()
    try:
        code = proc.wait(timeout=max(0.0, deadline - time.monotonic()) if not timed_out else 0)
    except subprocess.TimeoutExpired:
        code = None
    if code is None or timed_out or size > MAX_OUTPUT:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        code = proc.wait()
        timed_out = timed_out or size <= MAX_OUTPUT
    else:
        try:                        # what the plugin started and left running
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
    return code, b"".join(chunks)[:MAX_OUTPUT], timed_out


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

