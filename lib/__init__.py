"""pycni: CNI plugins and the shared library they are built on.

Importing the package costs next to nothing on purpose: every plugin call
is a fresh process. Import the module you need. Record classes come from
`pycni.model` (no `dataclasses`, whose import and per-class code
generation cost milliseconds per call).
"""

# The one place pycni's version is written: pyproject.toml reads it
# (setuptools dynamic version), `pycni --version`, `cnitool --version` and
# the plugins' about text print it. Importing it costs nothing: every
# pycni module already loads this package.
__version__ = "0.1.0"
