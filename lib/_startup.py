"""Start-up cost trimming, applied once when the pycni package is imported.

Every CNI call is a fresh process, so each millisecond of imports is paid
on every ADD/DEL. `dataclasses` imports `inspect` (which pulls in ast, dis,
tokenize, linecache: ~11 ms, a quarter of a plugin's import time) only to
write a default docstring for classes that have none. While `dataclasses`
is imported, a stand-in takes the place of `inspect`: the docstring gets a
plain signature built from the field names, and any other use of `inspect`
through dataclasses loads the real module on first access.
"""

import sys
import types


def _plain_signature(obj):
    fields = getattr(obj, "__dataclass_fields__", {})
    return "(" + ", ".join(fields) + ")"


class _DeferredInspect(types.ModuleType):
    def __getattr__(self, name):
        if name == "signature":
            return _plain_signature
        import importlib
        return getattr(importlib.import_module("inspect"), name)


def import_dataclasses_without_inspect() -> None:
    if "dataclasses" in sys.modules or "inspect" in sys.modules:
        return
    stand_in = _DeferredInspect("inspect")
    sys.modules["inspect"] = stand_in
    try:
        import dataclasses  # noqa: F401  (binds the stand-in as its `inspect`)
    finally:
        if sys.modules.get("inspect") is stand_in:
            del sys.modules["inspect"]
