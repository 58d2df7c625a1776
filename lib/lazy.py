"""Modules imported when first used: `veth = lazy("pycni.veth")`.

A plugin module names everything its commands use at the top, as usual,
but a command that never touches `veth` (bridge CHECK, say) should not pay
for loading it (issue #12: every call is a fresh process). The proxy
imports the module at its first attribute access and then behaves as the
module for attribute access (functions, classes, exceptions in `except`
clauses); it is not the module object itself, so do not pass it where a
module is expected, and do not use it in annotations evaluated at import
time (they would load it at once).
"""


class LazyModule:
    __slots__ = ("_name", "_module")

    def __init__(self, name: str):
        self._name = name
        self._module: object = None

    def __getattr__(self, attr: str):
        module = self._module
        if module is None:
            module = self._module = __import__(self._name, fromlist=("_",))
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy(name: str) -> LazyModule:
    return LazyModule(name)
