"""Decode JSON objects into typed record classes (pycni.model) the way Go's encoding/json does.

Runtimes differ in key spelling: containerd sends ``HostPort`` where podman
sends ``hostPort``, and the reference plugins (Go) accept both because
encoding/json matches keys case-insensitively. Go walks the object's keys
in document order and sets the field each one matches, so when several
keys match one field (``dataDir`` and ``DataDir``, or ``a`` repeated) the
*last* one wins. `loads` therefore keeps document order (a repeated key
moves to its last position) and `lookup` returns the last key that folds
to the name. `decode` applies every matching key in order as Go does (a
later null keeps a non-pointer field, a later object merges into the
struct or map an earlier one filled). One difference remains: of a key
repeated with the *exact* same spelling only the last value is kept, so
two objects under one spelling do not merge. Configs are decoded here
once, at the edge, so plugin logic sees typed fields only.

`loads` is the one JSON parser for configs: Go's limits and choices
(nesting up to 10,000 levels, no NaN/Infinity, numbers in float64 range,
invalid UTF-8 and lone surrogates replaced by U+FFFD), failing with a
DECODING_FAILURE error, never a traceback.

A field's JSON key is its name in lowerCamelCase (``ip_masq`` -> ``ipMasq``)
unless ``key("...")`` names it. Supported field types: str, int, float,
bool, dict, list[T], T | None, nested dataclasses and ``object`` (raw JSON).
Unknown keys are ignored, as the spec asks (they pass through untouched in
the raw config). JSON null keeps a field's default, except for optional
fields (None), lists ([]), maps ({}) and ``object`` fields (None), which
is what Go does with pointers, slices and maps.
"""

import sys

from . import jsontext, model
from .errors import CNIError, DECODING_FAILURE, INVALID_NETWORK_CONFIG

# Go encoding/json's maxNestingDepth: 10,000 nested arrays/objects parse,
# 10,001 do not.
MAX_DEPTH = 10000
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
# Fewer brackets than this cannot nest deeper than Python's default
# recursion limit allows (with room for the frames around the parse).
_SHALLOW = 500
_UNION = type(int | None)   # types.UnionType, without importing `types`


def utf8_as_go(data) -> str:
    """JSON input as text, invalid UTF-8 replaced the way Go's decoder
    replaces it (U+FFFD per bad byte); str passes through."""
    if isinstance(data, (bytes, bytearray)):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return _decode_utf8_as_go(data)
    return data


def loads(data, what: str = "network config"):
    """Parse JSON text (bytes or str) as Go's encoding/json accepts it.

    Objects keep document order, a repeated key taking its last position
    (see `lookup`). Raises CNIError(DECODING_FAILURE) for anything Go
    refuses: syntax errors, NaN/Infinity, numbers beyond float64, nesting
    deeper than MAX_DEPTH. Like Go, invalid UTF-8 and lone surrogate
    escapes become U+FFFD instead of failing.
    """
    text = utf8_as_go(data)
    opens = text.count("[") + text.count("{")
    allowed = MAX_DEPTH
    if opens > _SHALLOW:
        allowed = allow_depth(MAX_DEPTH)
    try:
        value = jsontext.loads(text, object_pairs_hook=_ordered_object,
                               parse_constant=_reject_constant, parse_float=_parse_float)
    except RecursionError:
        raise _too_deep(what, allowed) from None
    except ValueError as exc:
        raise CNIError(DECODING_FAILURE, f"error unmarshalling {what}", str(exc)) from None
    if opens > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        raise _too_deep(what)
    if "\\ud" in text or "\\uD" in text:
        value = _replace_surrogates(value)
    return value


# C stack a nesting level may take in json's C parser/encoder and other
# recursive walks (measured: ~130 bytes; 2x to spare).
_STACK_PER_LEVEL = 256
_STACK_WANTED = 16 << 20


def allow_depth(depth: int) -> int:
    """Raise the recursion limit so that a value nested `depth` deep can
    be parsed, dumped and compared from here (and from a little deeper);
    return the depth allowed. Kept for the rest of the process: later
    walks need it too. The main thread's stack limit is raised to match
    if it can be; if it cannot, the depth allowed is what fits, so that a
    deeper value is a RecursionError, never a crash."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    if soft != resource.RLIM_INFINITY and soft < _STACK_WANTED:
        raised = _STACK_WANTED if hard == resource.RLIM_INFINITY else min(hard, _STACK_WANTED)
        if raised > soft:
            try:
                resource.setrlimit(resource.RLIMIT_STACK, (raised, hard))
                soft = raised
            except (OSError, ValueError):
                pass
    if soft != resource.RLIM_INFINITY:
        depth = min(depth, max(0, (soft - (256 << 10)) // _STACK_PER_LEVEL))
    frames, frame = 0, sys._getframe()
    while frame is not None:
        frames, frame = frames + 1, frame.f_back
    needed = frames + depth + 500
    if sys.getrecursionlimit() < needed:
        sys.setrecursionlimit(needed)
    return depth


def _too_deep(what: str, depth: int = MAX_DEPTH) -> CNIError:
    return CNIError(DECODING_FAILURE, f"error unmarshalling {what}",
                    f"exceeded max depth: JSON nested deeper than {depth} levels")


def _ordered_object(pairs: list) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):   # a repeated key: it goes where it was last
        obj = {}
        for k, v in pairs:
            obj.pop(k, None)
            obj[k] = v
    return obj


def _reject_constant(name: str):
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value "
                     f"({name} is not JSON)")


def _parse_float(text: str) -> float:
    value = float(text)
    if value - value != 0:   # inf: beyond float64, which Go refuses
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _decode_utf8_as_go(data: bytes) -> str:
    """Go replaces each byte of an invalid UTF-8 sequence with U+FFFD."""
    import codecs
    try:
        codecs.lookup_error("pycni-go-utf8")
    except LookupError:
        codecs.register_error("pycni-go-utf8",
                              lambda e: ("\ufffd" * (e.end - e.start), e.end))
    return bytes(data).decode("utf-8", "pycni-go-utf8")


def _depth(value) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        deepest = max(deepest, depth)
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return deepest if isinstance(value, (dict, list)) else 0


def _replace_surrogates(value):
    """A lone surrogate (\\ud800 not followed by a low one) is U+FFFD in Go."""
    table = dict.fromkeys(range(0xD800, 0xE000), 0xFFFD)

    def fix(text):
        return text if text.isascii() else text.translate(table)

    if isinstance(value, str):
        return fix(value)
    stack = [value] if isinstance(value, (dict, list)) else []
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            for i, child in enumerate(item):
                if isinstance(child, str):
                    item[i] = fix(child)
                elif isinstance(child, (dict, list)):
                    stack.append(child)
            continue
        pairs = list(item.items())
        item.clear()
        for k, child in pairs:
            if isinstance(child, str):
                child = fix(child)
            elif isinstance(child, (dict, list)):
                stack.append(child)
            k = fix(k)
            item.pop(k, None)
            item[k] = child
    return value


def key(name: str, **kwargs):
    """A dataclass field whose JSON key is `name` (matched case-insensitively)."""
    metadata = dict(kwargs.pop("metadata", {}) or {})
    metadata["json"] = name
    return model.field(metadata=metadata, **kwargs)


def json_name(field: model.Field) -> str:
    explicit = field.metadata.get("json")
    if explicit:
        return explicit
    head, *rest = field.name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def fold(name: str) -> str:
    """The key `name` as Go's encoding/json compares it to a field name.

    Go folds with Unicode simple case folding (bytes.EqualFold). For the
    ASCII field names configs use this is lower(), plus the two non-ASCII
    letters that fold to ASCII ones: KELVIN SIGN (lower() gives "k") and
    LATIN SMALL LETTER LONG S ("s"). Dotless i and dotted I do not fold
    to i, as in Go.
    """
    if name.isascii():
        return name.lower()
    return name.replace("\u017f", "s").lower()


def lookup(obj: dict, name: str, default=None):
    """Go-style key lookup: the last key (in document order, as `loads`
    keeps it) that matches `name` case-insensitively."""
    wanted = fold(name)
    for k in reversed(obj):
        if k == name or (isinstance(k, str) and fold(k) == wanted):
            return obj[k]
    return default


def folded_index(obj: dict) -> dict:
    """fold(key) -> value, the last matching key winning (as in Go)."""
    return {fold(k): v for k, v in obj.items()}


class GoKeys(dict):
    """A JSON object for code that reads fixed keys (``.get("dst")``,
    ``obj["address"]``, ``"ip4" in obj``) with Go's matching: any case,
    the last match winning. Holds the folded keys only."""

    def __init__(self, obj: dict):
        super().__init__(folded_index(obj))

    def get(self, name, default=None):
        """The value of the last key that folds to `name`."""
        return dict.get(self, fold(name), default)

    def __getitem__(self, name):
        return dict.__getitem__(self, fold(name))

    def __contains__(self, name):
        return dict.__contains__(self, fold(name))


class DecodeError(CNIError):
    """A config value of the wrong type or range: code 7, the JSON path
    (`path`, e.g. config.ipam.subnet) and what was expected."""

    def __init__(self, path: str, expected: str, value):
        super().__init__(
            INVALID_NETWORK_CONFIG,
            f"invalid value for {path}: expected {expected}",
            f"got {_describe(value)}")
        self.path = path


def _describe(value) -> str:
    text = jsontext.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def decode(cls, obj, path: str = "config", into=None):
    """Build dataclass `cls` from JSON object `obj`; raises DecodeError.

    Go's order: every key that matches a field is applied in document
    order, so the last one wins, a later null leaves a non-pointer field
    as it was, and a later object is decoded *into* the struct or map an
    earlier key filled (`into`: the instance to decode into)."""
    if not isinstance(obj, dict):
        raise DecodeError(path, "an object", obj)
    hints = _field_types(cls)
    index = folded_index(obj)
    groups = None
    if len(index) != len(obj):        # keys that differ only in case
        groups = {}
        for k, v in obj.items():
            groups.setdefault(fold(k), []).append(v)
    values = {} if into is None else \
        {f.name: getattr(into, f.name) for f, _, _ in _json_fields(cls)}
    for field, name, folded in _json_fields(cls):
        if groups is not None:
            raws = groups.get(folded, ())
        else:
            raw = index.get(folded, _MISSING)
            raws = () if raw is _MISSING else (raw,)
        if not raws:
            continue
        tp = hints[field.name]
        current = values.get(field.name, _MISSING)
        for raw in raws:
            current = _apply(tp, current, raw, f"{path}.{name}")
        if current is not _MISSING:
            values[field.name] = current
    try:
        return cls(**values)
    except TypeError as exc:  # a required field is missing
        missing = [json_name(f) for f in model.fields(cls)
                   if f.init and f.name not in values
                   and _is_missing(f.default) and _is_missing(f.default_factory)]
        if missing:
            raise CNIError(INVALID_NETWORK_CONFIG,
                           f"missing required field {path}.{missing[0]}") from exc
        raise


def lenient(cls, obj, path: str = "config", into=None):
    """Build dataclass `cls` from `obj` as `decode` does, but never fail on
    a value: the decode for DEL (and GC), which must undo what an earlier
    ADD made even when the config now holds something ADD would refuse
    (the spec: DEL should not fail; a DEL that fails stops the runtime's
    reverse chain and leaks what the plugins after it hold).

    - a value of the wrong JSON type or out of range is skipped: its field
      keeps what it had (an earlier key of the same name, else its default);
    - a nested object is decoded leniently too, a list of objects item by
      item (an item that is no object is dropped);
    - a required field that is missing gets its type's zero value ("", 0,
      False, [], {}, None, or a lenient instance of a nested class);
    - `obj` that is no object at all gives the defaults.

    Keys match as in `decode` (any case, the last one winning). It raises
    no DecodeError; a model's `__post_init__` still runs, so keep
    validation out of the classes you decode this way (pycni's plugins
    validate after decoding, on ADD and CHECK only). Stable API."""
    if not isinstance(obj, dict):
        obj = {}
    hints = _field_types(cls)
    groups: dict = {}
    for k, v in obj.items():
        if isinstance(k, str):
            groups.setdefault(fold(k), []).append(v)
    values = {} if into is None else \
        {f.name: getattr(into, f.name) for f, _, _ in _json_fields(cls)}
    for field, name, folded in _json_fields(cls):
        tp = hints[field.name]
        current = values.get(field.name, _MISSING)
        for raw in groups.get(folded, ()):
            current = _apply_lenient(tp, current, raw, f"{path}.{name}")
        if current is not _MISSING:
            values[field.name] = current
    for f in model.fields(cls):
        if (f.init and f.name not in values
                and _is_missing(f.default) and _is_missing(f.default_factory)):
            values[f.name] = _lenient_zero(hints[f.name], f"{path}.{json_name(f)}")
    return cls(**values)


def _record_type(tp):
    """The dataclass behind `tp` (itself or `T | None`), else None."""
    args = _union_args(tp)
    if args is not None:
        inner = [a for a in args if a is not type(None)]
        tp = inner[0] if len(inner) == 1 else None
    return tp if tp is not None and model.is_dataclass(tp) else None


def _apply_lenient(tp, current, raw, path: str):
    record = _record_type(tp)
    if record is not None and isinstance(raw, dict):
        into = current if model.is_dataclass(current) else None
        return lenient(record, raw, path, into=into)
    origin = getattr(tp, "__origin__", None)
    if origin is list and isinstance(raw, list):
        item = _record_type(tp.__args__[0])
        if item is not None:
            return [lenient(item, v, f"{path}[{i}]") for i, v in enumerate(raw)
                    if isinstance(v, dict)]
    try:
        return _apply(tp, current, raw, path)
    except DecodeError:
        return current


def _lenient_zero(tp, path: str):
    record = _record_type(tp)
    if record is not None and _union_args(tp) is None:
        return lenient(record, {}, path)
    return _zero(tp)


def _apply(tp, current, raw, path: str):
    """The field's value after Go decodes one more matching key into it."""
    if raw is None and not _nullable(tp):
        # Go: null leaves a non-pointer value (number, string, bool,
        # struct) untouched: what an earlier key set, or the default.
        return current
    if isinstance(raw, dict) and current is not _MISSING and current is not None:
        if model.is_dataclass(current):      # struct, or pointer to one
            return decode(type(current), raw, path, into=current)
        if isinstance(current, dict) and (tp is dict or getattr(tp, "__origin__", None) is dict):
            merged = dict(current)                 # a map gets more entries
            merged.update(_convert(tp, raw, path))
            return merged
    return _convert(tp, raw, path)


def _is_missing(value) -> bool:
    """No default: pycni.model's MISSING, or the standard library's for a
    class made with `dataclasses` (decode takes both kinds)."""
    if value is model.MISSING:
        return True
    std = sys.modules.get("dataclasses")
    return std is not None and value is std.MISSING


_MISSING = object()
_HINTS: dict = {}
_FIELDS: dict = {}


def _json_fields(cls) -> list:
    """(field, JSON key, folded key) of each init field of `cls`."""
    fields = _FIELDS.get(cls)
    if fields is None:
        fields = [(f, json_name(f), fold(json_name(f)))
                  for f in model.fields(cls) if f.init]
        _FIELDS[cls] = fields
    return fields


def _field_types(cls) -> dict:
    """Field name -> type, resolving postponed (string) annotations."""
    hints = _HINTS.get(cls)
    if hints is None:
        fields = model.fields(cls)
        if any(isinstance(f.type, str) for f in fields):
            import typing
            resolved = typing.get_type_hints(cls)
            hints = {f.name: resolved.get(f.name, f.type) for f in fields}
        else:
            hints = {f.name: f.type for f in fields}
        _HINTS[cls] = hints
    return hints


def _union_args(tp):
    """Members of `A | B` or typing.Union/Optional, else None. typing is
    only consulted if something already imported it (it is not free)."""
    if isinstance(tp, _UNION):
        return tp.__args__
    typing = sys.modules.get("typing")
    if typing is not None and typing.get_origin(tp) is typing.Union:
        return typing.get_args(tp)
    return None


def _nullable(tp) -> bool:
    """Types JSON null means something for: optional, raw, list, dict."""
    if tp is object or tp is dict or tp is list:
        return True
    args = _union_args(tp)
    if args is not None:
        return type(None) in args
    return getattr(tp, "__origin__", None) in (list, dict)


def _convert(tp, raw, path: str):
    if tp is object:
        return raw
    args = _union_args(tp)
    if args is not None:
        if raw is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _convert(inner[0], raw, path)
        raise TypeError(f"unsupported union {tp}")
    if raw is None:
        # null inside a list or map: Go's zero value
        if model.is_dataclass(tp):
            return decode(tp, {}, path)
        return _zero(tp)
    if tp is bool:
        if isinstance(raw, bool):
            return raw
        raise DecodeError(path, "a boolean", raw)
    if tp is int:
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        if isinstance(raw, int) and not isinstance(raw, bool):
            if INT64_MIN <= raw <= INT64_MAX:
                return raw
            raise DecodeError(path, "a 64-bit integer", raw)
        raise DecodeError(path, "an integer", raw)
    if tp is float:
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            try:
                return float(raw)
            except OverflowError:    # an integer literal beyond float64
                raise DecodeError(path, "a number in float64 range", raw) from None
        raise DecodeError(path, "a number", raw)
    if tp is str:
        if isinstance(raw, str):
            return raw
        raise DecodeError(path, "a string", raw)
    if tp is dict:
        if isinstance(raw, dict):
            return raw
        raise DecodeError(path, "an object", raw)
    if tp is list:
        if isinstance(raw, list):
            return raw
        raise DecodeError(path, "a list", raw)
    origin = getattr(tp, "__origin__", None)
    if origin is list:
        if not isinstance(raw, list):
            raise DecodeError(path, "a list", raw)
        (item,) = tp.__args__
        return [_convert(item, v, f"{path}[{i}]") for i, v in enumerate(raw)]
    if origin is dict:
        if not isinstance(raw, dict):
            raise DecodeError(path, "an object", raw)
        _, item = tp.__args__
        return {k: _convert(item, v, f"{path}.{k}") for k, v in raw.items()}
    if model.is_dataclass(tp):
        return decode(tp, raw, path)
    raise TypeError(f"unsupported field type {tp!r} at {path}")


def _zero(tp):
    if tp is bool:
        return False
    if tp is int:
        return 0
    if tp is float:
        return 0.0
    if tp is str:
        return ""
    origin = getattr(tp, "__origin__", None)
    if tp is list or origin is list:
        return []
    if tp is dict or origin is dict:
        return {}
    return None


def parse_bool_or_string(value, path: str) -> bool:
    """libcni accepts JSON booleans or case-insensitive "true"/"false"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise DecodeError(path, 'a boolean or "true"/"false"', value)
