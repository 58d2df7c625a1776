"""The conventions that tools check (CONTRIBUTING.md "Conventions
checked"), checked themselves: pyproject's package list is the tree's, the
wheel holds every module and README, the start-up lint rule exempts only
modules no plugin call loads, the lint tools' pins agree, and the lint
runner reports the tree's paths."""

import ast
import glob
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest

from pycni.registry import PLUGINS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

with open(os.path.join(ROOT, "pyproject.toml"), "rb") as _f:
    PYPROJECT = tomllib.load(_f)
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
# (import package, source directory), outermost first
MAPPING = sorted(SETUPTOOLS["package-dir"].items(), key=lambda item: item[0].count("."))


def source_files() -> dict[str, str]:
    """Every file of the tree the wheel ships: its path in the wheel ->
    its path in the tree (the package-dir mapping applied)."""
    out = {}
    for package, source in MAPPING:
        top = os.path.join(ROOT, source)
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if d != "__pycache__" and not d.startswith(".")]
            rel = os.path.relpath(dirpath, top)
            inner = package.replace(".", "/") + ("" if rel == "." else "/" + rel)
            for name in filenames:
                if name.endswith(".py") or name in ("README.md", "py.typed"):
                    out[f"{inner}/{name}"] = os.path.join(source, rel, name)
    return out


def source_packages() -> set[str]:
    return {wheel_path.rsplit("/", 1)[0].replace("/", ".")
            for wheel_path in source_files() if wheel_path.endswith("/__init__.py")}


def module_of(path: str) -> str | None:
    """The import name of a tree file (lib/cnitool/main.py -> pycni.cnitool.main)."""
    for wheel_path, tree_path in source_files().items():
        if os.path.normpath(tree_path) == os.path.normpath(path) and wheel_path.endswith(".py"):
            name = wheel_path[:-3].replace("/", ".")
            return name[:-len(".__init__")] if name.endswith(".__init__") else name
    return None


def file_of(module: str) -> str | None:
    files = source_files()
    base = module.replace(".", "/")
    for candidate in (base + ".py", base + "/__init__.py"):
        if candidate in files:
            return os.path.join(ROOT, files[candidate])
    return None


# ------------------------------------------------------------ packaging

def test_every_package_directory_is_listed():
    """A new plugin folder (with its __init__.py) is in [tool.setuptools]
    packages, and every listed package exists: a package left out would
    install without its modules."""
    listed = set(SETUPTOOLS["packages"])
    found = source_packages()
    assert sorted(found - listed) == [], "add these to [tool.setuptools] packages"
    assert sorted(listed - found) == [], "these listed packages have no directory"


def test_the_wheel_holds_every_module_and_readme(tmp_path):
    """The wheel built from a copy of the tree holds every module, README
    and py.typed of the package directories, and no module the tree does
    not have (a stale build/lib cannot leak into it: the copy has none)."""
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    probe = subprocess.run([python, "-c", "import setuptools, wheel"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"{python} has no setuptools/wheel to build offline with")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if os.path.exists(os.path.join(ROOT, name)):
            shutil.copy(os.path.join(ROOT, name), src / name)
    for _package, source in MAPPING:
        shutil.copytree(os.path.join(ROOT, source), src / source,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    proc = subprocess.run([python, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "--disable-pip-version-check", "-w", str(tmp_path / "out"),
                           str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = (tmp_path / "out").glob("pycni-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        shipped = {n for n in zf.namelist() if not n.split("/", 1)[0].endswith(".dist-info")}
    expected = set(source_files())
    assert sorted(expected - shipped) == [], "missing from the wheel"
    assert sorted(n for n in shipped - expected if n.endswith(".py")) == [], "not in the tree"
    for plugin_module in PLUGINS.values():
        package = plugin_module.rsplit(".", 1)[0].replace(".", "/")
        assert f"{package}/README.md" in shipped


# ----------------------------------------------------- the start-up rule

# Entered by a plugin executable, but not for a CNI call: the dhcp
# plugin's long-lived `dhcp daemon` mode. What only it imports may use
# the standard library freely.
NOT_PER_CALL = {"pycni.ipam.dhcp.daemon"}


def _imports(module: str) -> set[str]:
    """The pycni modules `module` may import: every import statement at
    any depth (lazy ones inside functions too), `lazy("...")` and
    `import_module("...")` with a literal name, and the packages above."""
    path = file_of(module)
    if path is None:
        return set()
    with open(path) as f:
        tree = ast.parse(f.read())
    package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = parent + ("." + node.module if node.module else "")
            names.add(base)
            names |= {f"{base}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("lazy", "import_module", "__import__"):
                names.add(node.args[0].value)
    out = set()
    for name in names:
        if isinstance(name, str) and (name == "pycni" or name.startswith("pycni.")):
            parts = name.split(".")
            out |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)
                    if file_of(".".join(parts[:i]))}
    return out


def per_call_modules() -> set[str]:
    """Every pycni module a plugin process may load for a CNI call."""
    seen: set[str] = set()
    todo = [*PLUGINS.values(), "pycni.entry", "pycni.launcher"]
    while todo:
        module = todo.pop()
        if module in seen or module in NOT_PER_CALL:
            continue
        seen.add(module)
        todo.extend(_imports(module) - seen)
    return seen


def tid253_exempt_files() -> dict[str, str]:
    """Files of lib/, plugins/, ipam/ that pyproject exempts from TID253:
    file -> the pattern that exempts it."""
    ignores = PYPROJECT["tool"]["ruff"]["lint"]["per-file-ignores"]
    out = {}
    for pattern, codes in ignores.items():
        if "TID253" not in codes:
            continue
        for path in glob.glob(pattern, root_dir=ROOT, recursive=True):
            if path.endswith(".py") and path.split("/", 1)[0] in ("lib", "plugins", "ipam"):
                out[path] = pattern
    return out


def test_the_start_up_ban_exempts_no_module_a_plugin_call_loads():
    """A module exempt from TID253 (banned module-level imports) is one no
    plugin call can load, not even lazily; put the import inside the
    function that needs it instead (CONTRIBUTING.md "Start-up budget")."""
    loaded = per_call_modules()
    assert "pycni.skel" in loaded and "pycni.plugins.bridge.config" in loaded   # the walk works
    wrong = sorted(f"{path} ({pattern})" for path, pattern in tid253_exempt_files().items()
                   if module_of(path) in loaded)
    assert wrong == [], "exempt from the start-up rule, yet a plugin call may load them"


def test_the_start_up_ban_names_what_test_import_sets_forbids():
    """The lint rule bans at module level every module that
    test_import_sets.py allows on no plugin path (and the CONTRIBUTING
    table replaces), so the two say the same."""
    banned = set(PYPROJECT["tool"]["ruff"]["lint"]["flake8-tidy-imports"]
                 ["banned-module-level-imports"])
    for name in ("os", "stat", "posixpath", "json", "re", "enum", "ipaddress", "hashlib",
                 "subprocess", "shlex", "socket", "ctypes", "dataclasses", "typing",
                 "functools", "collections", "pathlib", "glob", "asyncio", "threading",
                 "logging", "argparse", "tempfile", "inspect"):
        assert name in banned, name


# ----------------------------------------------------------- the tools

def test_the_lint_pins_agree():
    """pre-commit's hooks install the versions of pyproject's lint extra."""
    extra = dict(spec.split("==") for spec in PYPROJECT["project"]["optional-dependencies"]["lint"])
    with open(os.path.join(ROOT, ".pre-commit-config.yaml")) as f:
        hooks = dict(re.findall(r'"(ruff|mypy)==([^"]+)"', f.read()))
    assert hooks == extra


def test_every_type_checked_module_exists():
    missing = [m for m in PYPROJECT["tool"]["mypy"]["modules"] if file_of(m) is None]
    assert missing == []


def test_every_lint_exclude_and_exemption_names_files_of_the_tree():
    """ruff's (temporary) excludes and per-file exemptions match files that
    exist: an entry left behind for a file that moved or went would exempt
    whatever takes its name later."""
    ruff = PYPROJECT["tool"]["ruff"]
    patterns = [*ruff.get("extend-exclude", []), *ruff["lint"]["per-file-ignores"]]
    stale = [p for p in patterns
             if not glob.glob(p.rstrip("/"), root_dir=ROOT, recursive=True)]
    assert stale == []


def _lint_module():
    spec = importlib.util.spec_from_file_location("pycni_lint_script",
                                                  os.path.join(ROOT, "scripts", "lint.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("reported, tree", [
    ("build/typecheck/pycni/model.py:3: error: x", "lib/model.py:3: error: x"),
    ("build/typecheck/pycni/cnitool/main.py:1: note", "lib/cnitool/main.py:1: note"),
    ("build/typecheck/pycni/plugins/tap/config.py:9: e", "plugins/tap/config.py:9: e"),
    ("build/typecheck/pycni/ipam/static/plugin.py:2: e", "ipam/static/plugin.py:2: e"),
    ("build/typecheck/pycni/netns_fixtures/world.py:5: e", "netns-fixtures/world.py:5: e"),
    ("Found 1 error in 1 file", "Found 1 error in 1 file"),
])
def test_the_type_check_reports_the_tree_paths(reported, tree):
    lint = _lint_module()
    assert lint.to_tree_path(reported, lint.package_dirs()) == tree


def test_the_type_check_copy_is_laid_out_as_installed(tmp_path, monkeypatch):
    lint = _lint_module()
    monkeypatch.setattr(lint, "SHADOW", str(tmp_path / "typecheck"))
    lint.build_shadow(lint.package_dirs())
    top = tmp_path / "typecheck" / "pycni"
    for inner in ("__init__.py", "model.py", "py.typed", "cnitool/main.py",
                  "plugins/bridge/config.py", "ipam/host_local/allocator.py",
                  "netns_fixtures/world.py"):
        assert (top / inner).is_file(), inner
    assert not list(top.rglob("__pycache__"))
