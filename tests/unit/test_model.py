"""pycni.model behaves as `dataclasses` does for what pycni uses: each
check runs the same class body through both and compares."""

import dataclasses
import pickle

import pytest

from pycni import model
from pycni.decode import decode, key

FACTORIES = [pytest.param(dataclasses, id="dataclasses"), pytest.param(model, id="model")]


def make(lib, frozen=False):
    deco = lib.dataclass(frozen=True) if frozen else lib.dataclass

    @deco
    class Point:
        x: int
        y: int = 2
        tags: list[str] = lib.field(default_factory=list)
        note: str = lib.field(default="n", metadata={"json": "Note"})
        hidden: int = lib.field(default=7, init=False)

        def norm(self):
            return self.x + self.y
    return Point


@pytest.mark.parametrize("lib", FACTORIES)
def test_init_positional_keyword_defaults(lib):
    P = make(lib)
    p = P(1)
    assert (p.x, p.y, p.tags, p.note, p.hidden) == (1, 2, [], "n", 7)
    q = P(1, 3, ["a"], note="m")
    assert (q.x, q.y, q.tags, q.note) == (1, 3, ["a"], "m")
    assert P(y=5, x=4).norm() == 9
    assert P(1).tags is not P(1).tags          # a fresh list per instance
    assert P.y == 2 and P.note == "n" and not hasattr(P, "tags")


@pytest.mark.parametrize("lib", FACTORIES)
@pytest.mark.parametrize("args,kwargs", [
    ((), {}),                       # missing required
    ((1, 2, [], "n", 9), {}),       # too many positional (hidden is init=False)
    ((1,), {"x": 2}),               # twice
    ((1,), {"bogus": 2}),           # unknown
    ((1,), {"hidden": 2}),          # init=False
])
def test_init_errors_are_type_errors(lib, args, kwargs):
    with pytest.raises(TypeError):
        make(lib)(*args, **kwargs)


def test_same_results_as_dataclasses():
    D, M = make(dataclasses), make(model)
    for args, kwargs in [((1,), {}), ((1, 3, ["a", "b"]), {"note": "q'\"x"}), ((0,), {"y": -1})]:
        d, m = D(*args, **kwargs), M(*args, **kwargs)
        assert repr(d).replace(d.__class__.__qualname__, "P") == \
            repr(m).replace(m.__class__.__qualname__, "P")
        assert dataclasses.asdict(d) == model.asdict(m)
        assert [(f.name, f.type, "-" if f.default is dataclasses.MISSING else f.default,
                 f.init, dict(f.metadata)) for f in dataclasses.fields(d)] == \
               [(f.name, f.type, "-" if f.default is model.MISSING else f.default,
                 f.init, dict(f.metadata)) for f in model.fields(m)]
    assert D.__match_args__ == M.__match_args__


@pytest.mark.parametrize("lib", FACTORIES)
def test_eq_and_hash(lib):
    P = make(lib)
    assert P(1) == P(1) and P(1) != P(2) and P(1, tags=["a"]) != P(1)
    Q = make(lib)
    assert P(1) != Q(1)                    # another class is never equal
    assert P(1) != (1, 2, [], "n", 7)
    with pytest.raises(TypeError):
        hash(P(1))                         # eq, not frozen: unhashable
    F = make(lib, frozen=True)
    assert hash(F(1, tags=())) == hash(F(1, tags=()))
    assert len({F(1, tags=()), F(1, tags=()), F(2, tags=())}) == 2


@pytest.mark.parametrize("lib", FACTORIES)
def test_frozen_refuses_assignment(lib):
    F = make(lib, frozen=True)
    f = F(1)
    with pytest.raises(AttributeError) as err:
        f.x = 2
    assert type(err.value).__name__ == "FrozenInstanceError"
    with pytest.raises(AttributeError):
        del f.y
    assert f.x == 1
    assert lib.replace(f, x=5).x == 5 and f.x == 1


@pytest.mark.parametrize("lib", FACTORIES)
def test_inheritance_and_post_init(lib):
    @lib.dataclass
    class Base:
        name: str = ""
        items: list = lib.field(default_factory=list)

    @lib.dataclass
    class Child(Base):
        mtu: int = 0
        name: str = "child"                # redefined: keeps its place

        def __post_init__(self):
            self.seen = True

    c = Child("a", [1], 5)
    assert [f.name for f in lib.fields(Child)] == ["name", "items", "mtu"]
    assert (c.name, c.items, c.mtu, c.seen) == ("a", [1], 5, True)
    assert Child().name == "child"
    assert lib.is_dataclass(c) and lib.is_dataclass(Child) and not lib.is_dataclass(1)


@pytest.mark.parametrize("lib", FACTORIES)
def test_class_definition_errors(lib):
    with pytest.raises(TypeError):
        @lib.dataclass
        class Bad:
            a: int = 0
            b: int
    with pytest.raises(ValueError):
        @lib.dataclass
        class Mutable:
            a: list = []
    with pytest.raises(ValueError):
        lib.field(default=1, default_factory=list)


def test_own_methods_are_kept_and_repr_recursion_is_safe():
    @model.dataclass
    class Own:
        a: int = 0

        def __repr__(self):
            return "own"

    assert repr(Own()) == "own"

    @model.dataclass
    class Node:
        child: object = None
    n = Node()
    n.child = n
    assert repr(n) == "test_own_methods_are_kept_and_repr_recursion_is_safe.<locals>.Node(child=...)"


def test_instances_copy_and_pickle():
    import copy
    p = Pickled(1, ["a"])
    assert copy.deepcopy(p) == p and pickle.loads(pickle.dumps(p)) == p
    f = FrozenPickled(1)
    assert copy.copy(f) == f and pickle.loads(pickle.dumps(f)) == f


@model.dataclass
class Pickled:
    a: int
    b: list = model.field(default_factory=list)


@model.dataclass(frozen=True)
class FrozenPickled:
    a: int


def test_decode_with_model_classes():
    @model.dataclass
    class Inner:
        port: int = 0

    @model.dataclass
    class Outer:
        required: str = key("req")
        host_ip: str = key("hostIP", default="")
        inner: Inner = model.field(default_factory=Inner)

    o = decode(Outer, {"req": "r", "HOSTIP": "1.2.3.4", "inner": {"Port": 5}})
    assert o == Outer(required="r", host_ip="1.2.3.4", inner=Inner(5))


def test_class_creation_generates_no_code(monkeypatch):
    """No code generation per class (dataclasses exec()s source for every
    class, ~0.8 ms each): creating a model class must not compile anything.
    Its cost is measured in bench/, not asserted here."""
    import builtins

    def refuse(*a, **k):
        raise AssertionError("code generated while creating a class")
    monkeypatch.setattr(builtins, "exec", refuse)
    monkeypatch.setattr(builtins, "compile", refuse)
    make(model)
