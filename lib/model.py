"""Typed record classes without `dataclasses`: the subset pycni uses.

Every CNI call is a fresh process. `dataclasses` costs milliseconds to
import (it pulls in re, copy, inspect, keyword, reprlib, ...) and ~0.6-0.8 ms
per class, because it exec()s generated `__init__`/`__repr__`/`__eq__` source
for each one; a plugin creates 17-29 of them per call. Here a class gets
generic methods that walk a per-class field tuple computed once at class
creation: no code generation, no imports.

Same observable behaviour as `dataclasses` for what the code uses:

- ``@dataclass`` / ``@dataclass(frozen=True)``; fields are the class's
  own annotations after its dataclass bases' fields (inheritance);
- ``field(default=, default_factory=, init=, metadata=)``; a factory runs
  once per instance; an ``init=False`` field with a default is set too;
- ``__init__`` takes the init fields positionally and by keyword, in
  order, raising TypeError for a missing, unknown, duplicated or extra
  argument; then ``__post_init__`` if the class has one;
- ``__repr__`` ``Name(a=1, b='x')``; ``__eq__`` compares the fields in
  order and only with the same class; eq classes are unhashable, frozen
  ones hash their field tuple and refuse assignment (FrozenInstanceError,
  an AttributeError as in dataclasses);
- a method the class body defines itself is kept;
- ``fields()``, ``is_dataclass()``, ``replace()``, ``asdict()``, ``MISSING``,
  and ``Field`` with ``name``, ``type``, ``default``, ``default_factory``,
  ``init``, ``metadata``. Annotations are kept as written (a string under
  postponed evaluation), as dataclasses keeps them.
"""

# A type checker sees the standard library's `dataclass` and `field` (the
# same signatures for the subset above), so that every record class gets a
# typed __init__; mypy and pyright take a name TYPE_CHECKING as true, and
# here it is False: nothing is imported.
TYPE_CHECKING = False

__all__ = ["dataclass", "field", "fields", "is_dataclass", "replace", "asdict",
           "MISSING", "Field", "FrozenInstanceError"]


class _Missing:
    __slots__ = ()

    def __repr__(self):
        return "MISSING"


MISSING = _Missing()
_EMPTY: dict = {}


class FrozenInstanceError(AttributeError):
    pass


class Field:
    __slots__ = ("name", "type", "default", "default_factory", "init", "metadata")

    def __init__(self, default=MISSING, default_factory=MISSING, init=True,
                 metadata=None):
        self.name = None
        self.type = None
        self.default = default
        self.default_factory = default_factory
        self.init = init
        self.metadata = _EMPTY if metadata is None else metadata

    def __repr__(self):
        return (f"Field(name={self.name!r},type={self.type!r},"
                f"default={self.default!r},default_factory={self.default_factory!r},"
                f"init={self.init!r},metadata={self.metadata!r})")


# ---------------------------------------------------------------- methods
# Each class gets: __dataclass_fields__ (name -> Field, in order),
# _model_names (all field names), _model_init (init fields:
# (name, default, factory)), _model_post (init=False fields with a default).

def _init(self, *args, **kwargs):
    cls = type(self)
    spec = cls._model_init
    if len(args) > len(spec):
        raise TypeError(f"{cls.__qualname__}.__init__() takes {len(spec) + 1} "
                        f"positional arguments but {len(args) + 1} were given")
    values = {}
    n = len(args)
    i = used = 0
    for name, default, factory in spec:
        if i < n:
            if name in kwargs:
                raise TypeError(f"{cls.__qualname__}.__init__() got multiple "
                                f"values for argument '{name}'")
            values[name] = args[i]
            i += 1
        elif name in kwargs:
            values[name] = kwargs[name]
            used += 1
        elif default is not MISSING:
            values[name] = default
        elif factory is not MISSING:
            values[name] = factory()
        else:
            raise TypeError(f"{cls.__qualname__}.__init__() missing 1 required "
                            f"positional argument: '{name}'")
    if used < len(kwargs):
        for name in kwargs:
            if name not in values:
                raise TypeError(f"{cls.__qualname__}.__init__() got an unexpected "
                                f"keyword argument '{name}'")
    for name, default, factory in cls._model_post:
        values[name] = default if factory is MISSING else factory()
    self.__dict__.update(values)
    post = getattr(self, "__post_init__", None)
    if post is not None:
        post()


_repr_running: set[int] = set()


def _repr(self):
    key = id(self)
    if key in _repr_running:
        return "..."
    _repr_running.add(key)
    try:
        return (type(self).__qualname__ + "("
                + ", ".join(f"{n}={getattr(self, n)!r}" for n in self._model_names) + ")")
    finally:
        _repr_running.discard(key)


def _eq(self, other):
    if other.__class__ is not self.__class__:
        return NotImplemented
    names = self._model_names
    return (tuple([getattr(self, n) for n in names])
            == tuple([getattr(other, n) for n in names]))


def _hash(self):
    return hash(tuple([getattr(self, n) for n in self._model_names]))


def _frozen_setattr(self, name, value):
    raise FrozenInstanceError(f"cannot assign to field '{name}'")


def _frozen_delattr(self, name):
    raise FrozenInstanceError(f"cannot delete field '{name}'")


_MUTABLE = (list, dict, set)


def _process(cls, frozen):
    own = cls.__dict__
    fields = {}
    for base in reversed(cls.__mro__[1:]):
        inherited = base.__dict__.get("__dataclass_fields__")
        if inherited:
            fields.update(inherited)
    for name, tp in own.get("__annotations__", _EMPTY).items():
        value = own.get(name, MISSING)
        if isinstance(value, Field):
            f = value
            if f.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
        else:
            f = Field(value)
        if f.default.__class__ in _MUTABLE:
            raise ValueError(f"mutable default {type(f.default)} for field {name} "
                             "is not allowed: use default_factory")
        f.name = name
        f.type = tp
        fields[name] = f
    init = []
    post = []
    seen_default = None
    for f in fields.values():
        has_default = f.default is not MISSING or f.default_factory is not MISSING
        if f.init:
            if has_default:
                seen_default = f.name
            elif seen_default is not None:
                raise TypeError(f"non-default argument '{f.name}' follows "
                                f"default argument '{seen_default}'")
            init.append((f.name, f.default, f.default_factory))
        elif has_default:
            post.append((f.name, f.default, f.default_factory))
    cls.__dataclass_fields__ = fields
    cls._model_names = tuple(fields)
    cls._model_init = tuple(init)
    cls._model_post = tuple(post)
    cls.__match_args__ = tuple(s[0] for s in init)  # type: ignore[misc]
    if "__init__" not in own:
        cls.__init__ = _init
    if "__repr__" not in own:
        cls.__repr__ = _repr
    if "__eq__" not in own:
        cls.__eq__ = _eq
    if frozen:
        if "__setattr__" in own or "__delattr__" in own:
            raise TypeError(f"cannot overwrite attribute __setattr__ in class {cls.__name__}")
        cls.__setattr__ = _frozen_setattr
        cls.__delattr__ = _frozen_delattr
        if "__hash__" not in own or own["__hash__"] is None:
            cls.__hash__ = _hash
    elif "__hash__" not in own:
        cls.__hash__ = None
    if own.get("__doc__") is None:
        cls.__doc__ = cls.__name__ + "(" + ", ".join(fields) + ")"
    return cls


if TYPE_CHECKING:
    from dataclasses import dataclass, field
else:
    def field(*, default=MISSING, default_factory=MISSING, init=True, metadata=None):
        """A field with a default, a default factory (run per instance), or
        metadata (pycni.decode.key names a field's JSON key), as dataclasses.field."""
        if default is not MISSING and default_factory is not MISSING:
            raise ValueError("cannot specify both default and default_factory")
        return Field(default, default_factory, init, metadata)

    def dataclass(cls=None, /, *, frozen=False):
        """Make `cls` a record class, as dataclasses.dataclass does for the
        subset above (also as ``@dataclass(frozen=True)``)."""
        if cls is None:
            return lambda c: _process(c, frozen)
        return _process(cls, frozen)


# ---------------------------------------------------------------- helpers

def is_dataclass(obj) -> bool:
    cls = obj if isinstance(obj, type) else type(obj)
    return hasattr(cls, "__dataclass_fields__")


def fields(class_or_instance) -> tuple:
    """The Field objects of a record class or instance, in order."""
    try:
        return tuple(class_or_instance.__dataclass_fields__.values())
    except AttributeError:
        raise TypeError("must be called with a dataclass type or instance") from None


def replace(obj, /, **changes):
    """A copy of record `obj` with `changes` applied."""
    for f in obj.__dataclass_fields__.values():
        if not f.init:
            if f.name in changes:
                raise ValueError(f"field {f.name} is declared with init=False, "
                                 "it cannot be specified with replace()")
        elif f.name not in changes:
            changes[f.name] = getattr(obj, f.name)
    return obj.__class__(**changes)


def asdict(obj) -> dict:
    """Record `obj` as a dict, recursively (lists, dicts, nested records)."""
    if not is_dataclass(obj) or isinstance(obj, type):
        raise TypeError("asdict() should be called on dataclass instances")
    return _asdict(obj)


def _asdict(value):
    if hasattr(type(value), "__dataclass_fields__"):
        return {n: _asdict(getattr(value, n)) for n in value._model_names}
    if isinstance(value, (list, tuple)):
        return type(value)(_asdict(v) for v in value)
    if isinstance(value, dict):
        return type(value)((_asdict(k), _asdict(v)) for k, v in value.items())
    return value
