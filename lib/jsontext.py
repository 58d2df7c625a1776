"""JSON text in and out, on the C accelerator `_json` alone.

The stdlib `json` package imports `re` (and with it `enum`, `functools`,
`collections`, ...) for its whitespace and number patterns: ~10 ms of every
plugin process, more than the rest of pycni's imports together (issue #12).
This module gives the part of its surface pycni uses, with the same
results to the byte, built on what `json` itself uses underneath:
`_json.make_scanner` parses, `_json.make_encoder` writes compact text,
`_json.encode_basestring_ascii` quotes strings.

- `loads(text, object_pairs_hook=None, parse_float=None, parse_constant=None)`
  is `json.loads`. Any text it cannot parse is handed to the
  stdlib decoder with the same hooks, so the exception (type, message,
  position) is exactly `json`'s: errors are rare and may pay its import.
- `dumps(value, indent=None, separators=None, sort_keys=False)` is
  `json.dumps` with `ensure_ascii=True`; indented output (which the C
  encoder cannot write) comes from a small recursive writer here. Values
  other than dict/list/tuple/str/int/float/bool/None, and keys that are
  not strings, go to the stdlib encoder, which also raises its TypeError.

tests/unit/test_jsontext.py compares both directions with `json` on
generated and hand-picked values.
"""

import _json

_SCANNERS: dict = {}
_WHITESPACE = " \t\n\r"
_quote = _json.encode_basestring_ascii


class _Context:
    """What `_json.make_scanner` reads its options from (json.JSONDecoder
    passes itself)."""

    __slots__ = ("strict", "object_hook", "object_pairs_hook", "parse_float",
                 "parse_int", "parse_constant", "memo")

    def __init__(self, object_pairs_hook, parse_float, parse_constant):
        self.strict = True
        self.object_hook = None
        self.object_pairs_hook = object_pairs_hook
        self.parse_float = parse_float or float
        self.parse_int = int
        self.parse_constant = parse_constant or _CONSTANTS.__getitem__
        self.memo = {}


_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def _scanner(object_pairs_hook, parse_float, parse_constant):
    key = (object_pairs_hook, parse_float, parse_constant)
    scan = _SCANNERS.get(key)
    if scan is None:
        scan = _SCANNERS[key] = _json.make_scanner(
            _Context(object_pairs_hook, parse_float, parse_constant))
    return scan


def loads(text, object_pairs_hook=None, parse_float=None, parse_constant=None):
    """`json.loads(text, ...)` for the hooks named; see the module docstring."""
    data = text
    if isinstance(data, (bytes, bytearray)):
        # json.loads also takes UTF-16/32 and a BOM: those go to it
        if data[:3] == b"\xef\xbb\xbf" or b"\x00" in data[:4]:
            return _stdlib_loads(data, object_pairs_hook, parse_float, parse_constant)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return _stdlib_loads(data, object_pairs_hook, parse_float, parse_constant)
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scanner(object_pairs_hook, parse_float, parse_constant)(text, start)
    except (StopIteration, ValueError, SystemError):
        # A syntax error: the scanner raises json.decoder's JSONDecodeError,
        # found in sys.modules only; without `json` loaded it ends in a
        # SystemError ("returned NULL without setting an exception").
        value, end = None, -1
    if end < 0 or text[end:].strip(_WHITESPACE):
        return _stdlib_loads(data, object_pairs_hook, parse_float, parse_constant)
    return value


def _stdlib_loads(text, object_pairs_hook, parse_float, parse_constant):
    import json
    return json.loads(text, object_pairs_hook=object_pairs_hook,
                      parse_float=parse_float, parse_constant=parse_constant)


def _float_text(value: float) -> str:
    if value != value:
        return "NaN"
    if value == _INF:
        return "Infinity"
    if value == -_INF:
        return "-Infinity"
    return float.__repr__(value)


_INF = float("inf")


def dumps(value, indent=None, separators=None, sort_keys: bool = False) -> str:
    """`json.dumps(value, indent=..., separators=..., sort_keys=...)`; see
    the module docstring."""
    if indent is None:
        item_sep, key_sep = separators or (", ", ": ")
        encode = _json.make_encoder(None, _unsupported, _quote, None, key_sep, item_sep,
                                    sort_keys, False, True)
        try:
            return "".join(encode(value, 0))
        except _Unsupported:
            return _stdlib_dumps(value, indent, separators, sort_keys)
    if not isinstance(indent, str):
        indent = " " * indent
    item_sep, key_sep = separators or (",", ": ")
    out: list[str] = []
    try:
        _write(value, out, "\n", indent, item_sep, key_sep, sort_keys)
    except _Unsupported:
        return _stdlib_dumps(value, indent, separators, sort_keys)
    return "".join(out)


class _Unsupported(Exception):
    """A value or key this module leaves to the stdlib encoder."""


def _unsupported(_value):
    raise _Unsupported


def _stdlib_dumps(value, indent, separators, sort_keys):
    import json
    return json.dumps(value, indent=indent, separators=separators, sort_keys=sort_keys)


def _write(value, out: list, newline: str, indent: str, item_sep: str, key_sep: str,
           sort_keys: bool) -> None:
    """Append `value` as indented JSON text to `out`, `newline` being the
    line break and indentation of the level `value` sits at."""
    if isinstance(value, str):
        out.append(_quote(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(_float_text(value))
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        inner = newline + indent
        out.append("[")
        first = True
        for item in value:
            out.append(inner if first else item_sep + inner)
            first = False
            _write(item, out, inner, indent, item_sep, key_sep, sort_keys)
        out.append(newline + "]")
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = newline + indent
        out.append("{")
        items = sorted(value.items()) if sort_keys else value.items()
        first = True
        for key, item in items:
            if not isinstance(key, str):
                raise _Unsupported
            out.append(inner if first else item_sep + inner)
            first = False
            out.append(_quote(key))
            out.append(key_sep)
            _write(item, out, inner, indent, item_sep, key_sep, sort_keys)
        out.append(newline + "}")
    else:
        raise _Unsupported
