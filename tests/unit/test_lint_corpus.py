"""Every conflist our README files show and our integration tests run
lints clean (with the plugins 'installed': lint_fakes.FakeProbe), and no
JSON at all makes lint fail with a traceback."""

import json
import os
import random
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import lint_extract   # noqa: E402
from lint_fakes import FakeProbe   # noqa: E402

from pycni.lint import main   # noqa: E402
from pycni.lint.findings import Finding   # noqa: E402

ENV = {"PYCNI_STATE_DIRS": "/tmp"}
MARKDOWN = lint_extract.markdown_configs()
TESTS, OPAQUE = lint_extract.test_configs()
# Conflists of the integration tests that are wrong on purpose.
ON_PURPOSE: dict[str, str] = {}


def lint_one(tmp_path, conf) -> list[Finding]:
    path = tmp_path / "10-net.conflist"
    path.write_text(json.dumps(conf))
    _, findings = main.lint([str(path)], ENV, FakeProbe())
    return findings


def test_the_corpus_is_found():
    assert len(MARKDOWN) >= 4, MARKDOWN
    assert len(TESTS) >= 8, (TESTS, OPAQUE)


@pytest.mark.parametrize("where,conf", MARKDOWN, ids=[w for w, _ in MARKDOWN])
def test_readme_conflists_lint_clean(tmp_path, where, conf):
    assert lint_one(tmp_path, conf) == []


@pytest.mark.parametrize("where,conf", TESTS, ids=[w for w, _ in TESTS])
def test_integration_test_conflists_lint_clean(tmp_path, where, conf):
    if where in ON_PURPOSE:
        pytest.skip(ON_PURPOSE[where])
    assert lint_one(tmp_path, conf) == []


# --- no input gives a traceback ------------------------------------------------------

KEYS = ["cniVersion", "name", "type", "plugins", "ipam", "ranges", "subnet", "bridge",
        "capabilities", "cniVersions", "disableCheck", "disableGC", "loadOnlyInlinedPlugins",
        "dns", "dataDir", "runtimeConfig", "args", "routes", "addresses", "sysctl", "mtu",
        "portMappings", "vlan", "master", "mode", "backend", "Type", "IPAM", "x/y", "~"]
TYPES = ["bridge", "host-local", "static", "tuning", "portmap", "firewall", "macvlan", "ptp",
         "tap", "host-device", "bandwidth", "sbr", "loopback", "vlan", "dhcp", "x/../y", "",
         "nosuch"]
STRINGS = ["1.0.0", "0.4.0", "1.1.0", "", "10.1.0.0/16", "fd00::/64", "10.1.0.1", "eth0",
           "cni0", "/tmp/x", "true", "\u2028", "\x00", "9.9.9", "a" * 300]


def random_value(rng, depth=0):
    pick = rng.random()
    if depth > 4 or pick < 0.35:
        return rng.choice([None, True, False, 0, -1, 1.5, 2 ** 70, rng.choice(STRINGS),
                           rng.choice(TYPES), 4095, 1e308])
    if pick < 0.7:
        obj = {}
        for _ in range(rng.randint(0, 6)):
            key = rng.choice(KEYS)
            obj[key] = rng.choice(TYPES) if key.lower() == "type" and rng.random() < 0.8 \
                else random_value(rng, depth + 1)
        return obj
    return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]


def random_conflist(rng):
    doc = {"cniVersion": rng.choice(STRINGS), "name": rng.choice(["n1", "n2", "", "a/b"])}
    doc["plugins"] = [random_value(rng, 1) if rng.random() < 0.3 else
                      {"type": rng.choice(TYPES), **random_value(rng, 2)}
                      if isinstance(random_value(rng, 5), dict) else
                      {"type": rng.choice(TYPES), "ipam": random_value(rng, 2)}
                      for _ in range(rng.randint(0, 4))]
    for _ in range(rng.randint(0, 3)):
        doc[rng.choice(KEYS)] = random_value(rng, 1)
    return doc


@pytest.mark.parametrize("seed", range(12))
def test_random_json_never_gives_a_traceback(tmp_path, seed):
    rng = random.Random(seed)
    for i in range(25):
        choice = rng.random()
        if choice < 0.6:
            data = json.dumps(random_conflist(rng)).encode()
        elif choice < 0.85:
            data = json.dumps(random_value(rng)).encode()
        else:
            data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
        ext = rng.choice([".conflist", ".conf", ".json"])
        (tmp_path / f"{i:02d}-f{ext}").write_bytes(data)
    side = tmp_path / "n1"
    side.mkdir()
    (side / "10.conf").write_text(json.dumps(random_value(rng)))
    loaded, findings = main.lint([str(tmp_path)], ENV, FakeProbe())
    doc = main.document([str(tmp_path)], [], "test", loaded, findings)
    json.dumps(doc)
    main.text_report(doc)
    assert all(f.severity in ("error", "warning") and isinstance(f.message, str)
               for f in findings)
    assert not [f for f in findings if "lint could not check" in f.message], \
        [f for f in findings if "lint could not check" in f.message]
