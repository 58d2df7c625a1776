"""The one thing pyproject.toml cannot say to every setuptools that builds
pycni: the optional C extension pycni._pycni_linux (lib/_pycni_linux.c,
setns(2) for Python 3.11, whose os has none; issue #12). Everything else
is configured in pyproject.toml.

Why a setup.py: setuptools reads extension modules from pyproject.toml
only from 74.1 on ([tool.setuptools] ext-modules, still marked
experimental), and the offline install the README describes builds with
Debian 12's setuptools 66 (--no-build-isolation), which would reject that
key. `optional=True`: where no C compiler or Python headers are found the
build warns, skips the extension and installs everything else (pycni.netns
then calls setns through _ctypes).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("pycni._pycni_linux", ["lib/_pycni_linux.c"], optional=True)])
