"""pycni.jsontext gives the same text and values as the stdlib json, to the
byte, for what pycni uses of it (see its docstring)."""

import json
import os
import random
import subprocess
import sys

import pytest

import pycni
from pycni import jsontext


def _random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(10 if depth < 4 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1 << 70, -(1 << 63), rng.randrange(-10**6, 10**6)])
    if kind == 3:
        return rng.choice([0.0, -0.0, 1.5, 1e300, 2.5e-308, rng.random() * 1e6,
                           float("nan"), float("inf"), float("-inf")])
    if kind in (4, 5):
        return "".join(rng.choice(['a', 'é', '"', '\\', '\n', '\x00', '\u2028', '😀', '\udc80', ' ', '/'])
                       for _ in range(rng.randrange(6)))
    if kind in (6, 7):
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {str(rng.randrange(100)) + rng.choice(["", "é", "k"]):
            _random_value(rng, depth + 1) for _ in range(rng.randrange(4))}


VALUES = [None, True, 0, 1.0, "", [], {}, [[]], {"a": {}}, {"a": [1, [2, {"b": None}]]},
          {"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.2/24", "gateway": "10.0.0.1"}],
           "dns": {}}, ("tuple", 1), {"z": 1, "a": 2, "m": [3, 2]}]
VALUES += [_random_value(random.Random(seed)) for seed in range(400)]


def _same_text(value, **kw):
    assert jsontext.dumps(value, **kw) == json.dumps(value, **kw)


@pytest.mark.parametrize("kw", [{}, {"indent": 4}, {"indent": 1}, {"indent": "\t"},
                                {"separators": (",", ":")}, {"sort_keys": True},
                                {"indent": 4, "sort_keys": True}, {"indent": 0}])
def test_dumps_same_as_json(kw):
    for value in VALUES:
        _same_text(value, **kw)


def test_dumps_non_string_keys_and_objects_as_json():
    _same_text({1: "a", None: 2, False: 3, 2.5: 4}, indent=4)
    _same_text({1: "a", None: 2}, )
    with pytest.raises(TypeError):
        jsontext.dumps({"a": object()})
    with pytest.raises(TypeError):
        jsontext.dumps({"a": object()}, indent=4)
    with pytest.raises(TypeError):
        jsontext.dumps({(1, 2): 1}, indent=4)


def test_loads_same_as_json():
    for value in VALUES:
        for text in (json.dumps(value), json.dumps(value, indent=2)):
            got, want = jsontext.loads(text), json.loads(text)
            assert repr(got) == repr(want)
            assert repr(jsontext.loads(text.encode())) == repr(want)
    assert jsontext.loads(" \t\n 1 \r\n") == 1


def test_loads_hooks_as_json():
    seen = []

    def pairs(p):
        seen.append(p)
        return dict(p)
    text = '{"a": 1, "a": {"b": 1.5}}'
    assert jsontext.loads(text, object_pairs_hook=pairs) == {"a": {"b": 1.5}}
    assert seen == [[("b", 1.5)], [("a", 1), ("a", {"b": 1.5})]]
    assert jsontext.loads("[1.25]", parse_float=lambda t: ("f", t)) == [("f", "1.25")]
    with pytest.raises(ValueError, match="nope"):
        jsontext.loads("[NaN]", parse_constant=lambda name: (_ for _ in ()).throw(ValueError("nope")))


BAD = ["", " ", "{", "[1,]", '{"a" 1}', "1 2", "[1] x", '"\x01"', "tru", "\ufeff{}",
       '{"a": 1,}', "[", '"abc', "-", "01", '{"a":1}}', "nul"]


@pytest.mark.parametrize("text", BAD)
def test_loads_errors_are_jsons(text):
    with pytest.raises(json.JSONDecodeError) as want:
        json.loads(text)
    with pytest.raises(json.JSONDecodeError) as got:
        jsontext.loads(text)
    assert (str(got.value), got.value.pos) == (str(want.value), want.value.pos)


def test_loads_bytes_as_json():
    for data in (b'\xef\xbb\xbf{"a": 1}', '{"a": "é"}'.encode("utf-16"), '[1]'.encode("utf-32-le")):
        assert jsontext.loads(data) == json.loads(data)
    with pytest.raises(ValueError):
        jsontext.loads(b'"\xff"')


def test_errors_without_json_loaded():
    """In a plugin process `json` is not imported; the C scanner's error
    path needs it (it looks json.decoder up in sys.modules only)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(pycni.__file__)))
    code = (f"import sys\nsys.path.insert(0, {root!r})\nfrom pycni import jsontext\n"
            "assert 'json' not in sys.modules\n"
            "for text in ('{', '[1,]', '1 2', '\"\\x01\"'):\n"
            "    try:\n        jsontext.loads(text)\n    except ValueError as exc:\n"
            "        print(type(exc).__name__, exc)\n")
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                          text=True, timeout=30, cwd="/")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 4 and all(line.startswith("JSONDecodeError ") for line in lines), lines
