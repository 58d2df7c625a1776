"""pycni: CNI plugins and the shared library they are built on.

Kept empty on purpose: every plugin call is a fresh process, so importing
the package must cost nothing. Import the module you need.
"""
