"""pycni: CNI plugins and the shared library they are built on.

Importing the package costs next to nothing on purpose: every plugin call
is a fresh process. Import the module you need. Record classes come from
`pycni.model` (no `dataclasses`, whose import and per-class code
generation cost milliseconds per call).
"""
