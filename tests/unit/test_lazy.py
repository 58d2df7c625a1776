"""pycni.lazy: a module proxy that imports on first use."""

import sys

from pycni.lazy import lazy


def test_imports_on_first_attribute_access_only():
    sys.modules.pop("pycni.fwquote", None)
    proxy = lazy("pycni.fwquote")
    assert "pycni.fwquote" not in sys.modules
    assert proxy.control_char("a\x01") is not None
    assert "pycni.fwquote" in sys.modules
    assert proxy.control_char is sys.modules["pycni.fwquote"].control_char
    assert "pycni.fwquote" in repr(proxy)


def test_exceptions_in_except_clauses():
    from pycni import netns as real
    proxy = lazy("pycni.netns")
    try:
        raise real.NetnsNotFound("/x")
    except proxy.GONE as err:
        assert err.code == 3
