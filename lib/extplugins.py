"""Third-party plugins: the `pycni.plugins` entry-point group (stable API).

A package that provides a CNI plugin written with pycni declares it in its
pyproject.toml:

    [project.entry-points."pycni.plugins"]
    extra-routes = "pycni_extra_routes.plugin"     # name = module with main()

`pycni install --dir D` then writes a launcher `D/extra-routes` beside
pycni's own (and `pycni install --dir D extra-routes` that one alone), and
`pycni list` shows it. The name is the executable's file name, so the
`type` a network config uses; the value is a module whose `main()` serves
one call (``def main(): skel.main(MyPlugin())``); ``module:main`` is
accepted too. pycni's own plugin names always win: an entry point that
names one of them is ignored with a warning, as is a second entry point
with a name already taken, a name that cannot be a file name or a module
that is not a dotted name.

Entry points are read here, by the CLI, through importlib.metadata, never
on a plugin path: the launcher names the module, so a plugin call costs
what one of ours costs, plus its own modules. See docs/sdk.md for what the
launcher of a third-party plugin does (the bundle, VERSION) and how
install checks its files.
"""

import os

from .registry import PLUGINS

GROUP = "pycni.plugins"

TEMPLATE = """#!{python} -ISB
# pycni third-party plugin {name} ({module}), written by `pycni install`; reinstall after upgrading.
import sys
sys.path += {paths!r}
from pycni.entry import serve_module
serve_module({module!r}, {bundle!r})
"""


class ExtPlugin:
    """One third-party plugin: executable `name`, `module` (with main()),
    the distribution that declared it, and `root`, the directory its
    top-level package or module lives in (added to the launcher's import
    path); `files`, what install checks (the package directory or the
    module file). `root` is None when the module cannot be found."""

    def __init__(self, name: str, module: str, dist: str = ""):
        self.name = name
        self.module = module
        self.dist = dist
        self.root, self.files, self.problem = _locate(module)

    def __repr__(self) -> str:
        return f"ExtPlugin({self.name!r}, {self.module!r}, dist={self.dist!r})"


def valid_name(name: str) -> bool:
    """A name that can be an executable in CNI_PATH and a network config's
    `type`: the rule of container IDs (letters, digits, `_`, `.`, `-`,
    starting with a letter or digit), at most 64 characters."""
    from .skel import is_valid_id
    return 0 < len(name) <= 64 and is_valid_id(name)


def valid_module(module: str) -> bool:
    return bool(module) and all(part.isidentifier() and part.isascii()
                                for part in module.split("."))


def discover(warn=None) -> dict:
    """name -> ExtPlugin of every usable entry point of the group, in the
    order importlib.metadata lists them; `warn(text)` hears about those
    that are ignored."""
    from importlib.metadata import entry_points
    warn = warn or (lambda text: None)
    found: dict = {}
    for ep in entry_points(group=GROUP):
        dist = ""
        if getattr(ep, "dist", None) is not None:
            dist = f"{ep.dist.name} {ep.dist.version}"
        module, _, attr = ep.value.partition(":")
        module, attr = module.strip(), attr.strip()
        where = f"entry point {ep.name!r} of {dist or 'an unknown distribution'}"
        if ep.name in PLUGINS:
            warn(f"{where} ignored: {ep.name!r} is one of pycni's own plugins")
        elif not valid_name(ep.name):
            warn(f"{where} ignored: not a plugin name (letters, digits, '_', '.', '-')")
        elif not valid_module(module) or attr not in ("", "main"):
            warn(f"{where} ignored: {ep.value!r} is not a module (with main())")
        elif ep.name in found:
            warn(f"{where} ignored: {ep.name!r} is already provided by {found[ep.name].dist}")
        else:
            found[ep.name] = ExtPlugin(ep.name, module, dist)
    return found


def _locate(module: str):
    """(root, files to check, problem) of `module`, without running it: its
    top-level package is found, not imported."""
    import importlib.util
    top = module.split(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError) as err:
        return None, [], f"{top} cannot be found: {err}"
    if spec is None:
        return None, [], f"module {top} is not installed"
    if spec.submodule_search_locations is not None:
        locations = list(spec.submodule_search_locations)
        if spec.origin in (None, "namespace") or len(locations) != 1:
            return None, [], (f"{top} is a namespace package: its files cannot be "
                              "checked; give it an __init__.py")
        package = locations[0]
        return os.path.dirname(package), [package], None
    if spec.origin and spec.origin.endswith(".py"):
        return os.path.dirname(spec.origin), [spec.origin], None
    return None, [], f"{top} is not a Python source module ({spec.origin})"


def launcher_text(plugin: ExtPlugin, directory: str, python: str) -> str:
    """The launcher of a third-party plugin installed in `directory`: the
    one of pycni's plugins, with the plugin's root on the import path
    after pycni's, serving `plugin.module` (pycni.entry.serve_module)."""
    from .bundle import FILE_NAME
    from .launcher import import_paths
    if plugin.root is None:
        raise ValueError(plugin.problem)
    paths = import_paths()
    if plugin.root not in paths:
        paths.append(plugin.root)
    return TEMPLATE.format(python=python, name=plugin.name, module=plugin.module,
                           paths=paths, bundle=os.path.join(os.path.abspath(directory),
                                                            FILE_NAME))


def installation_problems(plugins, owners) -> list:
    """What makes these plugins' files untrustworthy, by the rule `pycni
    install` applies to pycni's own (cli.py): the root directory and each
    of its ancestors, and every file of the package."""
    from .cli import check_path, check_tree
    problems: list = []
    for plugin in plugins:
        if plugin.root is None:
            problems.append(f"third-party plugin {plugin.name} ({plugin.dist}): {plugin.problem}")
            continue
        check_path(plugin.root, owners, problems)
        for path in plugin.files:
            real = check_path(path, owners, problems)
            if real is not None and os.path.isdir(real):
                check_tree(real, owners, problems)
    return problems
