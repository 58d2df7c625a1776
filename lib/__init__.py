"""pycni: CNI plugins and the shared library they are built on.

Importing the package costs next to nothing on purpose: every plugin call
is a fresh process. Import the module you need. The one thing done here
is `_startup`, which keeps `dataclasses` from importing `inspect`.
"""

from ._startup import import_dataclasses_without_inspect as _trim

_trim()
del _trim
