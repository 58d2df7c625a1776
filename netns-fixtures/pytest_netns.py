"""pytest fixtures for real-kernel tests (loaded from tests/conftest.py).

  world         a fresh World per test, torn down even when the test fails
  plugin_dir    our plugins installed with `pycni install` into a temp dir
  ref_dir       the reference Go plugins (Debian containernetworking-plugins)

Tests that need them are skipped, not failed, when not running as root,
except under CI=true where a missing prerequisite is a failure; tests with
prerequisites of their own (a toolchain, a package) call
`missing_prerequisite(reason)` for the same behaviour.
"""

import os
import shutil
import subprocess
import sys

import pytest

try:    # installed: pycni.netns_fixtures.pytest_netns (the pytest11 entry point)
    from .netns_world import World, leftovers
except ImportError:     # the source tree's netns-fixtures/ on sys.path (tests/conftest.py)
    from netns_world import World, leftovers

REFERENCE_DIR = "/usr/lib/cni"


def missing_prerequisite(reason: str):
    """Skip the test, or fail it under CI=true where everything must be there."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI prerequisite missing: {reason}")
    pytest.skip(reason)


_missing = missing_prerequisite


def pytest_configure(config):
    config.addinivalue_line("markers", "netns: needs root and network namespaces (real kernel)")


@pytest.fixture
def world(request):
    if os.geteuid() != 0 or not shutil.which("ip"):
        _missing("needs root and iproute2 for network namespaces")
    w = World(request.node.name)
    try:
        yield w
    finally:
        w.close()


@pytest.fixture(scope="session")
def plugin_dir(tmp_path_factory):
    """Our plugin executables, installed the way users install them."""
    target = tmp_path_factory.mktemp("cni-bin")
    proc = subprocess.run([sys.executable, "-m", "pycni.cli", "install", "--dir", str(target)],
                          capture_output=True, text=True)
    if proc.returncode != 0:   # e.g. install refusing a venv others can write to
        pytest.fail(f"pycni install failed: {proc.stderr}")
    return str(target)


@pytest.fixture(scope="session")
def ref_dir():
    if not os.path.exists(os.path.join(REFERENCE_DIR, "loopback")):
        _missing("reference plugins not installed (apt-get install containernetworking-plugins)")
    return REFERENCE_DIR


@pytest.fixture(scope="session", autouse=True)
def _no_leftover_namespaces():
    yield
    left = leftovers() if shutil.which("ip") and os.geteuid() == 0 else []
    assert not left, f"test run left namespaces behind: {left}"
