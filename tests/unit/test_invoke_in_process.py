"""Delegation served in-process when the delegate is this very pycni."""

import json
import sys

import pytest

from pycni import invoke
from pycni.errors import CNIError
from pycni.launcher import launcher_text


def write(path, text):
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


def test_our_own_launcher_runs_in_process(tmp_path):
    binary = write(tmp_path / "host-local", launcher_text("host-local", str(tmp_path)))
    assert invoke.in_process_module(binary, "host-local", {}) == "pycni.ipam.host_local.plugin"


@pytest.mark.parametrize("why", ["other-python", "edited", "not-ours", "opt-out", "unknown"])
def test_anything_else_is_executed(tmp_path, why):
    name, env = "host-local", {}
    text = launcher_text(name, str(tmp_path))
    if why == "other-python":
        text = launcher_text(name, str(tmp_path), python="/usr/bin/python3.99")
    elif why == "edited":
        text += "import os\n"
    elif why == "not-ours":
        text = "#!/bin/sh\necho '{}'\n"
    elif why == "opt-out":
        env = {"PYCNI_EXEC_DELEGATES": "1"}
    elif why == "unknown":
        name = "some-other-ipam"
    binary = write(tmp_path / name, text)
    assert invoke.in_process_module(binary, name, env) is None


def test_run_in_process_returns_stdout_and_raises_errors():
    out = invoke.run_in_process("pycni.plugins.loopback.plugin", b"",
                                {"CNI_COMMAND": "VERSION"})
    assert "1.1.0" in json.loads(out)["supportedVersions"]
    with pytest.raises(CNIError) as err:
        invoke.run_in_process("pycni.plugins.loopback.plugin", b"{}",
                              {"CNI_COMMAND": "DEL"})
    assert err.value.code == 4
    assert sys.stdout  # nothing replaced or closed
