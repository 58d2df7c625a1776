"""pycni.tuntap's clone-device checks, and tap STATUS, without root: a
/dev/net/tun that is missing, a FIFO, a plain file, a symlink or another
character device is refused at once (never opened blocking)."""

import os
import threading

import pytest

from pycni import skel, tuntap
from pycni.errors import CNIError
from pycni.plugins.tap.plugin import TapPlugin


@pytest.fixture
def clone_path(tmp_path, monkeypatch):
    path = tmp_path / "tun"
    monkeypatch.setattr(tuntap, "CLONE_DEVICE", str(path))
    return path


def opened_within(seconds: float):
    """open_clone_device's outcome, failing the test if it blocks."""
    outcome = {}

    def attempt():
        try:
            outcome["fd"] = tuntap.open_clone_device()
        except OSError as exc:
            outcome["error"] = exc

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "open_clone_device blocked"
    if "fd" in outcome:
        os.close(outcome["fd"])
    return outcome


def test_missing(clone_path):
    assert "does not exist" in tuntap.clone_device_problem()
    assert isinstance(opened_within(2)["error"], tuntap.NotCloneDevice)


def test_fifo_is_refused_without_blocking(clone_path):
    os.mkfifo(clone_path)
    assert tuntap.clone_device_problem() == f"{clone_path} is not a character device"
    assert isinstance(opened_within(2)["error"], tuntap.NotCloneDevice)


def test_regular_file_is_refused(clone_path):
    clone_path.write_text("")
    assert "not a character device" in tuntap.clone_device_problem()


def test_symlink_is_refused_even_to_the_real_device(clone_path):
    os.symlink("/dev/net/tun", clone_path)
    assert "not a character device" in tuntap.clone_device_problem()
    assert isinstance(opened_within(2)["error"], tuntap.NotCloneDevice)


def test_another_character_device_is_refused(clone_path, monkeypatch):
    monkeypatch.setattr(tuntap, "CLONE_DEVICE", "/dev/null")
    assert "not the TUN/TAP clone device" in tuntap.clone_device_problem()
    assert isinstance(opened_within(2)["error"], tuntap.NotCloneDevice)


def test_the_real_device_passes_the_check():
    if not os.path.exists("/dev/net/tun"):
        pytest.skip("no /dev/net/tun here")
    assert tuntap.clone_device_problem() == ""


def status(config: dict) -> None:
    env = {"CNI_COMMAND": "STATUS", "CNI_PATH": "/nonexistent"}
    req = skel.Request("STATUS", env, b"", config)
    TapPlugin().status(req)


def test_status_is_50_without_the_clone_device(clone_path):
    with pytest.raises(CNIError) as err:
        status({"cniVersion": "1.1.0", "name": "n", "type": "tap"})
    assert err.value.code == 50 and "does not exist" in err.value.details


def test_status_without_ipam_is_ok_with_the_device():
    if tuntap.clone_device_problem():
        pytest.skip("no usable /dev/net/tun here")
    status({"cniVersion": "1.1.0", "name": "n", "type": "tap"})
