"""The launcher scripts `pycni install` writes, one per plugin.

A launcher runs this Python with -I -S -B: isolated (no PYTHON* variables,
no user site-packages, no script or working directory on sys.path), no
site processing (about 10 ms less per call; also no .pth files) and no
bytecode writing (a root process never creates __pycache__ directories with
the caller's umask). Its import path is the interpreter's standard library
followed by the one directory this installation of pycni lives in, nothing
else: never a PYTHONPATH entry, never ~/.local, never the working
directory. The plugins need only the standard library, so pycni's own
directory is all that is added, and it is appended, so a stray `enum/`
beside pycni cannot shadow the standard library.

`pycni install` (cli.py) refuses an installation that anyone but root (or
the installing user) could change; see cli.py for the rule. The second
line is the marker by which install recognises a launcher as its own (and
replaces it) where no manifest records it. Kept apart
from cli.py (argparse) because invoke.py reads it on the hot path: it
compares an executable with launcher_text() to recognise our own launchers.
"""

from . import posixos as os
import sys

from .registry import PLUGINS

TEMPLATE = """#!{python} -ISB
# pycni v{version} {name} plugin, written by `pycni install`; reinstall after upgrading.
import sys
sys.path += {paths!r}
from pycni.entry import serve
serve({name!r}, {bundle!r})
"""


def import_paths() -> list[str]:
    """Directories the launcher adds after the standard library: the one
    that holds the pycni package (pycni has no dependencies to add)."""
    import pycni
    return [os.path.dirname(os.path.dirname(os.path.abspath(pycni.__file__)))]


def launcher_text(name: str, directory: str, python: str | None = None) -> str:
    """The launcher of plugin `name` installed in `directory` (where the
    pycni.bundle file `pycni install` writes beside it lies)."""
    if name not in PLUGINS:
        raise KeyError(name)
    from . import __version__
    from .bundle import FILE_NAME
    return TEMPLATE.format(python=python or sys.executable, name=name, paths=import_paths(),
                           version=__version__,
                           bundle=os.path.join(os.path.abspath(directory), FILE_NAME))
