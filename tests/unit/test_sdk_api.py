"""The SDK's stable API (docs/sdk.md, issue #16): every name listed there
exists, has a docstring of its own (not the signature pycni.model writes
for a record class), and docs/sdk.md names it; every public method and
property of a stable class is documented too."""

import importlib
import inspect
import os

import pytest

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))), "docs", "sdk.md")

# Kept in step with docs/sdk.md's "Stable API" table.
STABLE = {
    "pycni.skel": ["Plugin", "Request", "main", "run", "is_valid_id"],
    "pycni.result": ["Result", "Interface", "IPConfig", "Route", "DNS", "parse_result"],
    "pycni.errors": ["CNIError", "invalid_config", "internal"],
    "pycni.decode": ["loads", "decode", "lenient", "lookup", "key", "DecodeError", "GoKeys"],
    "pycni.config": ["NetConf", "IPAMConf", "DNSConf", "IPAMPluginConf", "IPAMRuntimeConf"],
    "pycni.model": ["dataclass", "field", "fields", "replace", "asdict"],
    "pycni.args": ["CniArgs", "parse_cni_args"],
    "pycni.invoke": ["delegate_add", "delegate_del", "delegate_check", "delegate_gc",
                     "delegate_status", "ipam_allocation", "find_in_path"],
    "pycni.ipconfig": ["configure_iface", "check_iface", "plan_iface"],
    "pycni.netns": ["entered", "open_netns", "probe", "exists", "is_current", "setns",
                    "NetnsNotFound", "NotANetns"],
    "pycni.testing": ["run", "call", "Outcome", "plugin_instance"],
    "pycni.extplugins": ["discover", "ExtPlugin", "GROUP"],
}
ERROR_CODES = ["INCOMPATIBLE_VERSION", "UNSUPPORTED_FIELD", "UNKNOWN_CONTAINER",
               "INVALID_ENVIRONMENT", "IO_FAILURE", "DECODING_FAILURE",
               "INVALID_NETWORK_CONFIG", "INVALID_NETNS", "TRY_AGAIN_LATER",
               "PLUGIN_NOT_AVAILABLE", "PLUGIN_NOT_AVAILABLE_LIMITED_CONNECTIVITY", "INTERNAL"]
CASES = [(m, n) for m, names in STABLE.items() for n in names]


def own_doc(obj) -> str:
    doc = obj.__doc__ or ""
    if inspect.isclass(obj) and doc.startswith(obj.__name__ + "("):
        return ""   # the signature pycni.model writes, not a docstring
    return doc.strip()


@pytest.mark.parametrize("module, name", CASES)
def test_documented(module, name):
    obj = getattr(importlib.import_module(module), name)
    if isinstance(obj, str):
        return      # a constant
    assert own_doc(obj), f"{module}.{name} has no docstring"
    if inspect.isclass(obj):
        for attr, value in vars(obj).items():
            if attr.startswith("_"):
                continue
            if isinstance(value, (property, classmethod, staticmethod)) or inspect.isfunction(value):
                func = value.fget if isinstance(value, property) else value
                assert (getattr(func, "__doc__", None) or "").strip(), \
                    f"{module}.{name}.{attr} has no docstring"


@pytest.mark.parametrize("module", sorted(STABLE))
def test_module_documented(module):
    assert (importlib.import_module(module).__doc__ or "").strip()


def test_docs_list_every_stable_name():
    text = open(DOCS).read()
    missing = [f"{m}.{n}" for m, n in CASES if f"`{n}`" not in text and f"{n}(" not in text]
    assert not missing, f"docs/sdk.md does not name {missing}"
    for module in STABLE:
        assert f"`{module}`" in text, module


def test_error_codes_are_the_spec_ones():
    from pycni import errors
    assert [getattr(errors, n) for n in ERROR_CODES] == [1, 2, 3, 4, 5, 6, 7, 8, 11, 50, 51, 999]


def test_py_typed_is_installed():
    import pycni
    assert os.path.exists(os.path.join(os.path.dirname(pycni.__file__), "py.typed"))
