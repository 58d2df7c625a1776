"""Decode JSON objects into typed dataclasses the way Go's encoding/json does.

Runtimes differ in key spelling: containerd sends ``HostPort`` where podman
sends ``hostPort``, and the reference plugins (Go) accept both because
encoding/json matches keys case-insensitively, preferring an exact match.
Configs are decoded here once, at the edge, so plugin logic sees typed
fields only.

A field's JSON key is its name in lowerCamelCase (``ip_masq`` -> ``ipMasq``)
unless ``key("...")`` names it. Supported field types: str, int, float,
bool, dict, list[T], T | None, nested dataclasses and ``object`` (raw JSON).
Unknown keys are ignored, as the spec asks (they pass through untouched in
the raw config). JSON null keeps a field's default, except for optional
fields (None), lists ([]), maps ({}) and ``object`` fields (None), which
is what Go does with pointers, slices and maps.
"""

import dataclasses
import sys
import types

from .errors import CNIError, INVALID_NETWORK_CONFIG


def key(name: str, **kwargs):
    """A dataclass field whose JSON key is `name` (matched case-insensitively)."""
    metadata = dict(kwargs.pop("metadata", {}) or {})
    metadata["json"] = name
    return dataclasses.field(metadata=metadata, **kwargs)


def json_name(field: dataclasses.Field) -> str:
    explicit = field.metadata.get("json")
    if explicit:
        return explicit
    head, *rest = field.name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def lookup(obj: dict, name: str, default=None):
    """Go-style key lookup: exact match first, then case-insensitive."""
    if name in obj:
        return obj[name]
    lowered = name.lower()
    for k, v in obj.items():
        if isinstance(k, str) and k.lower() == lowered:
            return v
    return default


class DecodeError(CNIError):
    def __init__(self, path: str, expected: str, value):
        super().__init__(
            INVALID_NETWORK_CONFIG,
            f"invalid value for {path}: expected {expected}",
            f"got {_describe(value)}")
        self.path = path


def _describe(value) -> str:
    import json
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def decode(cls, obj, path: str = "config"):
    """Build dataclass `cls` from JSON object `obj`; raises DecodeError."""
    if not isinstance(obj, dict):
        raise DecodeError(path, "an object", obj)
    hints = _field_types(cls)
    values = {}
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        name = json_name(field)
        raw = lookup(obj, name, _MISSING)
        if raw is _MISSING:
            continue
        tp = hints[field.name]
        if raw is None and not _nullable(tp):
            # Go: null leaves a non-pointer value (number, string, bool,
            # struct) untouched, so the field keeps its default.
            continue
        values[field.name] = _convert(tp, raw, f"{path}.{name}")
    try:
        return cls(**values)
    except TypeError as exc:  # a required field is missing
        missing = [json_name(f) for f in dataclasses.fields(cls)
                   if f.init and f.name not in values
                   and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise CNIError(INVALID_NETWORK_CONFIG,
                           f"missing required field {path}.{missing[0]}") from exc
        raise


_MISSING = object()
_HINTS: dict = {}


def _field_types(cls) -> dict:
    """Field name -> type, resolving postponed (string) annotations."""
    hints = _HINTS.get(cls)
    if hints is None:
        fields = dataclasses.fields(cls)
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
    if isinstance(tp, types.UnionType):
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
        if dataclasses.is_dataclass(tp):
            return decode(tp, {}, path)
        return _zero(tp)
    if tp is bool:
        if isinstance(raw, bool):
            return raw
        raise DecodeError(path, "a boolean", raw)
    if tp is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        raise DecodeError(path, "an integer", raw)
    if tp is float:
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return float(raw)
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
    if dataclasses.is_dataclass(tp):
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
