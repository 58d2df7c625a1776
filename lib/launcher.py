"""The launcher scripts `pycni install` writes, one per plugin.

A launcher runs this Python with -I -S (isolated, no site processing:
about 10 ms less per call) and the exact import path pycni was installed
in, so it works whatever the caller's environment and PATH are. Kept apart
from cli.py (argparse) because invoke.py reads it on the hot path.
"""

import os
import sys

from .registry import PLUGINS

TEMPLATE = """#!{python} -IS
# pycni {name} plugin, written by `pycni install`; reinstall after upgrading.
import sys
sys.path[:0] = {paths!r}
from {module} import main
main()
"""


def import_paths() -> list[str]:
    """Directories the launcher needs: where pycni and its deps live."""
    import pycni
    here = os.path.dirname(os.path.dirname(os.path.abspath(pycni.__file__)))
    paths = [here]
    for p in sys.path:
        if p and p.endswith(("site-packages", "dist-packages")) and p not in paths:
            paths.append(p)
    return paths


def launcher_text(name: str, python: str | None = None) -> str:
    return TEMPLATE.format(python=python or sys.executable, name=name,
                           paths=import_paths(), module=PLUGINS[name])
